"""Pre-norm Transformer encoder for sequence classification / regression.

Encoder of Vaswani et al. (2017, "Attention Is All You Need") with the LayerNorm moved in front of
each sub-layer (pre-norm, Xiong et al. 2020, "On Layer Normalization in the Transformer
Architecture"), as GPT-2 and ViT do; numerically ``nn.TransformerEncoderLayer(norm_first=True)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.kernels.attention import attention

from .. import validation
from ..arguments import check, placement
from ..base import SequenceModel
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ..standardize import Standardize


def check_heads(num_heads: int, d_model: int) -> None:
    """Raise ``ValueError`` naming ``num_heads`` unless it divides ``d_model`` (every head gets
    ``d_model / num_heads`` dimensions)."""
    small = [h for h in range(1, math.isqrt(d_model) + 1) if d_model % h == 0]
    divisors = sorted(set(small + [d_model // h for h in small]))
    validation.choice("num_heads", num_heads, divisors)


class TransformerBlock(nn.Module):
    """``x = x + Drop(Attn(LN1(x)));  x = x + Drop(MLP(LN2(x)))``, MLP = Linear -> GELU -> Linear.

    Equal to ``nn.TransformerEncoderLayer(d_model, num_heads, mlp_hidden, dropout=0,
    activation="gelu", batch_first=True, norm_first=True)`` given the same weights (see
    :meth:`from_torch`). Attention uses one fused ``qkv`` Linear (d -> 3d, rows ``[q; k; v]``,
    exactly ``in_proj_weight``'s layout) and :func:`zoo.kernels.attention.attention`
    (``scaled_dot_product_attention``). GELU is the exact (erf) one, as ``activation="gelu"``.
    Dropout ``p`` sits where PyTorch's layer has it: on the attention weights, after each
    sub-layer, and after the GELU.

    Shapes: x (B, T, d_model), key_padding_mask (B, T) bool (True = padding) -> (B, T, d_model).
    """

    def __init__(self, d_model: int, num_heads: int, mlp_hidden: int, *, dropout: float = 0.0,
                 norm_eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not accepted with num_heads={num_heads}: "
                             f"expected a multiple of num_heads")
        fk = dict(device=device, dtype=dtype)
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        self.norm1 = nn.LayerNorm(d_model, eps=norm_eps, **fk)
        self.qkv = nn.Linear(d_model, 3 * d_model, **fk)
        self.proj = nn.Linear(d_model, d_model, **fk)
        self.norm2 = nn.LayerNorm(d_model, eps=norm_eps, **fk)
        self.fc1 = nn.Linear(d_model, mlp_hidden, **fk)
        self.fc2 = nn.Linear(mlp_hidden, d_model, **fk)
        self.drop = nn.Dropout(dropout)

    def attn(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, d // self.num_heads)  # (B, T, 3, nh, hs)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        y = attention(q, k, v, key_padding_mask=key_padding_mask,
                      dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))  # (B, T, nh, hs) -> (B, T, d)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_padding_mask))
        return x + self.drop(self.mlp(self.norm2(x)))

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "TransformerBlock":
        """A block holding a copy of ``layer``'s weights (same device and dtype).

        ``layer`` must be ``batch_first=True, norm_first=True`` with ``activation="gelu"`` and the
        usual packed ``in_proj_weight``; ``in_proj_weight`` / ``in_proj_bias`` become ``qkv``
        unchanged (both are ``[q; k; v]``), ``out_proj`` -> ``proj``, ``linear1/2`` -> ``fc1/2``.
        """
        attn = layer.self_attn
        act = layer.activation
        is_gelu = act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none") or \
            getattr(layer, "activation_relu_or_gelu", 0) == 2
        problems = [name for name, ok in (
            ("norm_first=True", layer.norm_first), ("batch_first=True", attn.batch_first),
            ('activation="gelu"', is_gelu), ("packed in_proj_weight", attn._qkv_same_embed_dim),
            ("bias=True", attn.in_proj_bias is not None)) if not ok]
        if problems:
            raise ValueError(f"layer={layer!r} is not accepted: expected an "
                             f"nn.TransformerEncoderLayer with {', '.join(problems)}")
        w = layer.linear1.weight
        block = cls(attn.embed_dim, attn.num_heads, layer.linear1.out_features,
                    dropout=layer.dropout.p, norm_eps=layer.norm1.eps, device=w.device, dtype=w.dtype)
        block.load_torch_weights(layer)
        return block

    @torch.no_grad()
    def load_torch_weights(self, layer: nn.TransformerEncoderLayer) -> None:
        """Copy ``layer``'s weights into this block (shapes must match)."""
        pairs = [(self.qkv.weight, layer.self_attn.in_proj_weight),
                 (self.qkv.bias, layer.self_attn.in_proj_bias),
                 (self.proj.weight, layer.self_attn.out_proj.weight),
                 (self.proj.bias, layer.self_attn.out_proj.bias),
                 (self.fc1.weight, layer.linear1.weight), (self.fc1.bias, layer.linear1.bias),
                 (self.fc2.weight, layer.linear2.weight), (self.fc2.bias, layer.linear2.bias),
                 (self.norm1.weight, layer.norm1.weight), (self.norm1.bias, layer.norm1.bias),
                 (self.norm2.weight, layer.norm2.weight), (self.norm2.bias, layer.norm2.bias)]
        for ours, theirs in pairs:
            if ours.shape != theirs.shape:
                raise ValueError(f"layer weight of shape {tuple(theirs.shape)} is not accepted: "
                                 f"this block expects {tuple(ours.shape)}")
            ours.copy_(theirs)


class Transformer(SequenceModel):
    """Input projection + learned positions, ``depth`` pre-norm blocks, final LayerNorm, masked mean
    pooling, linear head.

    * Input: token ids through ``nn.Embedding(vocab_size, d_model)`` when ``vocab_size`` is set,
      else features standardised per feature (:class:`zoo.standardize.Standardize`, the identity
      until :func:`zoo.fit` sets it), then ``nn.Linear(in_features, d_model)``.
    * Positions: a learned table (1, seq_len, d_model) added to the first T <= seq_len positions
      (BERT / GPT-2 / ViT style), not sinusoids: sequences longer than ``seq_len`` are refused.
    * Pooling: the mean over the valid (non-padding) positions, not a CLS token; a fully padded
      sequence pools to zeros, so its output is the head's bias.
    * Init (nanoGPT / timm ViT): Linear and Embedding weights N(0, 0.02) (truncated at 2 std for
      Linear), biases 0, the position table N(0, 0.02) truncated; LayerNorm weight 1, bias 0.

    Shapes: x (B, T, in_features) float or (B, T) long ids, key_padding_mask (B, T) bool
    (True = padding) or None -> (B, num_classes).
    """

    def __init__(self, in_features: int, num_classes: int, d_model: int, num_heads: int, depth: int,
                 *, seq_len: int = 128, vocab_size: int | None = None, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes, d_model=d_model,
              num_heads=num_heads, depth=depth, seq_len=seq_len, vocab_size=vocab_size,
              mlp_ratio=mlp_ratio, dropout=dropout)
        check_heads(num_heads, d_model)
        # The MLP must keep at least one unit: mlp_ratio >= 1 / d_model.
        validation.number("mlp_ratio", mlp_ratio, minimum=1.0 / d_model)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features, self.seq_len, self.vocab_size = in_features, seq_len, vocab_size
        if vocab_size:
            self.embed = nn.Embedding(vocab_size, d_model, **fk)
        else:
            self.standardize = Standardize(in_features, **fk)
            self.embed = nn.Linear(in_features, d_model, **fk)
        self.pos = nn.Parameter(torch.empty(1, seq_len, d_model, **fk))
        self.drop = nn.Dropout(dropout)
        mlp_hidden = int(d_model * mlp_ratio)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, mlp_hidden, dropout=dropout, **fk)
            for _ in range(depth))
        self.norm = nn.LayerNorm(d_model, **fk)
        self.head = nn.Linear(d_model, num_classes, **fk)
        self.init_weights()

    def init_weights(self) -> None:
        """GPT-2 / ViT initialisation: N(0, 0.02) weights, zero biases (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = x.shape[1]
        if t > self.seq_len:
            raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: sequence length {t} exceeds "
                             f"seq_len={self.seq_len}, the length of the learned position table")
        if self.vocab_size is None:
            x = self.standardize(x)  # (B, T, in_features), per feature
        h = self.drop(self.embed(x) + self.pos[:, :t])  # (B, T, d)
        for block in self.blocks:
            h = block(h, key_padding_mask)
        h = self.norm(h)
        if key_padding_mask is None:
            pooled = h.mean(dim=1)  # (B, d)
        else:
            valid = (~key_padding_mask).unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            pooled = (h * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)  # (B, d)
        return self.head(pooled)  # (B, num_classes)


@register_model(family="transformer", input_kind="sequence",
                reference="torch.nn.TransformerEncoderLayer(norm_first=True)")
def transformer(*, in_features: int = 16, seq_len: int = 128, vocab_size: int | None = None,
                num_classes: int = 1, d_model: int = 128, num_heads: int = 4, depth: int = 4,
                mlp_ratio: float = 4.0, dropout: float = 0.0, width_mult: float = 1.0,
                depth_mult: float = 1.0, device=None, dtype=None) -> Transformer:
    """Pre-norm Transformer encoder: ``depth`` blocks of width ``d_model`` (both scaled).

    ``d_model`` is scaled in steps of ``num_heads * 8`` so every head stays a multiple of 8 wide.
    """
    return Transformer(in_features, num_classes,
                       scale_width(d_model, width_mult, divisor=num_heads * 8), num_heads,
                       scale_depth(depth, depth_mult), seq_len=seq_len, vocab_size=vocab_size,
                       mlp_ratio=mlp_ratio, dropout=dropout, device=device, dtype=dtype)
