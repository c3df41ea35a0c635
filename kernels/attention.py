"""Scaled dot-product attention (Vaswani et al., 2017, "Attention Is All You Need", eq. 1).

    Attention(Q, K, V) = softmax(Q K^T / sqrt(D) + M) V

``attention`` is the fast path (``torch.nn.functional.scaled_dot_product_attention``, which picks a
fused flash / memory-efficient kernel when it can); ``attention_ref`` is its plain twin, the
softmax written out. Both take the same arguments and give the same numbers.

Shapes:
    q: (B, H, T, D), k: (B, H, S, D), v: (B, H, S, Dv) -> (B, H, T, Dv)
    key_padding_mask: (B, S) bool, ``True`` = padding: that key is ignored by every query
    (the convention of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``).

Masks: ``M[b, :, t, s]`` is 0 where query ``t`` may attend to key ``s`` and -inf elsewhere; a key is
hidden when it is padding, or (``causal=True``) when ``s > t`` (top-left aligned, as
``is_causal=True`` in PyTorch).

Fully masked rows: a query that may attend to no key at all (its whole sequence is padding, or a
causal prefix that is all padding) gets an output of **zeros** and zero gradients, in both
functions, in eager mode and in ONNX Runtime: the empty-sum convention. This deviates from
``nn.MultiheadAttention``, whose softmax over an all ``-inf`` row gives NaN. It is done without any
NaN ever being formed: such rows are first un-masked (so the softmax is finite), then their output
is multiplied by 0, which keeps the backward NaN-free too and exports to plain ONNX ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["attention", "attention_ref"]


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
           key_padding_mask: torch.Tensor | None, dropout_p: float) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name}.shape={tuple(t.shape)} is not accepted: expected 4 dims "
                             f"(B, H, T, D)")
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask.dtype={key_padding_mask.dtype} is not accepted: "
                             f"expected torch.bool (True = padding)")
        if key_padding_mask.dim() != 2:
            raise ValueError(f"key_padding_mask.shape={tuple(key_padding_mask.shape)} is not "
                             f"accepted: expected (B, S) = ({k.shape[0]}, {k.shape[2]})")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p={dropout_p!r} is not accepted: expected 0 <= dropout_p < 1")


def _allowed(q: torch.Tensor, k: torch.Tensor, key_padding_mask: torch.Tensor | None,
             causal: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(allowed, has_key)``: where each query may look, and whether it may look anywhere.

    ``allowed`` is a bool mask broadcastable to (B, H, T, S) (True = attend) in which fully masked
    rows are opened up, so no softmax ever sees an all -inf row; ``has_key`` (B, 1, T or 1, 1) is
    False on exactly those rows, whose output is then zeroed. ``(None, None)`` when nothing is masked.
    """
    if key_padding_mask is None and not causal:
        return None, None
    allowed = None
    if key_padding_mask is not None:
        allowed = ~key_padding_mask[:, None, None, :]  # (B, S) -> (B, 1, 1, S)
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        tril = torch.ones(t, s, dtype=torch.bool, device=q.device).tril()  # (T, S), top-left
        allowed = tril if allowed is None else allowed & tril  # (B, 1, T, S)
    has_key = allowed.any(dim=-1, keepdim=True)  # (B, 1, T or 1, 1)
    return allowed | ~has_key, has_key


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
              key_padding_mask: torch.Tensor | None = None, causal: bool = False,
              dropout_p: float = 0.0) -> torch.Tensor:
    """Fast path: ``F.scaled_dot_product_attention`` with the padding/causal mask.

    Without a padding mask, ``causal=True`` is passed as ``is_causal`` (no mask tensor at all), so
    the fused kernels are used. ``dropout_p`` is applied to the attention weights: pass 0 in eval.
    Shapes as in the module docstring; fully masked rows give zeros.
    """
    _check(q, k, v, key_padding_mask, dropout_p)
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
    allowed, has_key = _allowed(q, k, key_padding_mask, causal)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
    return out * has_key.to(out.dtype)  # zero the rows that may attend to no key


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                  key_padding_mask: torch.Tensor | None = None, causal: bool = False,
                  dropout_p: float = 0.0) -> torch.Tensor:
    """Reference twin: ``softmax(Q K^T / sqrt(D) + M) V`` written out, same arguments and numbers.

    ``dropout_p`` drops attention weights with ``F.dropout`` (inverted scaling), as SDPA does.
    """
    _check(q, k, v, key_padding_mask, dropout_p)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    allowed, has_key = _allowed(q, k, key_padding_mask, causal)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (B, H, T, S) @ (B, H, S, Dv) -> (B, H, T, Dv)
    if has_key is not None:
        out = out * has_key.to(out.dtype)
    return out
