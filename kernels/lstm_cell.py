"""Long short-term memory (Hochreiter & Schmidhuber, 1997), gates written out.

The fast path is ``torch.nn.LSTM`` itself (cuDNN on CUDA, MKL/oneDNN on CPU); this module is its
plain reference twin, numerically equal given the same weights. The cell, in PyTorch's gate order
(the rows of ``weight_ih`` / ``weight_hh`` are the blocks ``[i; f; g; o]``, each of size H):

    i = sigmoid(W_ii x_t + b_ii + W_hi h + b_hi)     input gate
    f = sigmoid(W_if x_t + b_if + W_hf h + b_hf)     forget gate
    g = tanh   (W_ig x_t + b_ig + W_hg h + b_hg)     cell candidate
    o = sigmoid(W_io x_t + b_io + W_ho h + b_ho)     output gate
    c' = f * c + i * g
    h' = o * tanh(c')

``lstm_ref`` runs whole sequences through ``num_layers`` stacked layers, each optionally
bidirectional (the reverse direction reads the sequence backwards; the two directions' outputs are
concatenated to feed the next layer), returning what ``nn.LSTM`` returns. ``proj_size`` is not
supported.

Agreement: to 1e-6 in float32 on CPU. On CUDA, cuDNN's LSTM uses TF32 matrix products by default
(``torch.backends.cudnn.allow_tf32``), which on an H200 put it about 1e-4 from this reference;
disable TF32 to compare at float32 precision.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["lstm_cell_ref", "lstm_ref", "lstm_weights"]


def lstm_cell_ref(x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih: torch.Tensor,
                  w_hh: torch.Tensor, b_ih: torch.Tensor | None = None,
                  b_hh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step; the equations in the module docstring.

    Shapes: x_t (B, I), h and c (B, H), w_ih (4H, I), w_hh (4H, H), b_ih and b_hh (4H,) or None
    -> (h', c'), each (B, H).
    """
    gates = F.linear(x_t, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 x (B, H), PyTorch's order
    i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
    c_next = f * c + i * g
    h_next = o * c_next.tanh()
    return h_next, c_next


def lstm_weights(lstm: nn.LSTM) -> list[list[torch.Tensor]]:
    """``lstm``'s weights in the layout :func:`lstm_ref` takes: ``lstm.all_weights``.

    One list per (layer, direction), in the order layer 0 forward, layer 0 reverse, layer 1 forward,
    ...; each ``[w_ih, w_hh, b_ih, b_hh]`` (or ``[w_ih, w_hh]`` without bias).
    """
    if lstm.proj_size:
        raise ValueError(f"lstm.proj_size={lstm.proj_size} is not accepted: lstm_ref supports "
                         f"proj_size=0 only")
    return [list(w) for w in lstm.all_weights]


def _run_direction(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                   weights: Sequence[torch.Tensor], reverse: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer, one direction over a time-major sequence x (T, B, I) -> (out (T, B, H), h, c)."""
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if len(weights) == 4 else (None, None)
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outs: list[torch.Tensor] = [None] * x.shape[0]  # type: ignore[list-item]
    for t in steps:
        h, c = lstm_cell_ref(x[t], h, c, w_ih, w_hh, b_ih, b_hh)
        outs[t] = h  # the reverse direction's output at t is its state after reading t..T-1
    return torch.stack(outs), h, c


def lstm_ref(x: torch.Tensor, weights: Sequence[Sequence[torch.Tensor]], *, num_layers: int,
             bidirectional: bool = False, batch_first: bool = True,
             hx: tuple[torch.Tensor, torch.Tensor] | None = None, dropout: float = 0.0,
             training: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Whole-sequence stacked LSTM, numerically ``nn.LSTM`` given the same weights.

    ``weights``: as :func:`lstm_weights` returns (``nn.LSTM.all_weights``). ``dropout`` is applied
    to each layer's output except the last, in training only, as ``nn.LSTM`` does.

    Shapes (D = 2 if bidirectional else 1, L = num_layers):
        x: (B, T, I) if batch_first else (T, B, I)
        hx: optional (h_0, c_0), each (D * L, B, H); zeros if omitted
        -> output (B, T, D * H) (or (T, B, D * H)), (h_n, c_n) each (D * L, B, H), rows ordered
        layer 0 forward, layer 0 reverse, layer 1 forward, ...
    """
    dirs = 2 if bidirectional else 1
    if len(weights) != num_layers * dirs:
        raise ValueError(f"len(weights)={len(weights)} is not accepted: expected num_layers * "
                         f"directions = {num_layers} * {dirs} = {num_layers * dirs}")
    if x.dim() != 3:
        raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: expected 3 dims "
                         f"({'(B, T, I)' if batch_first else '(T, B, I)'})")
    seq = x.transpose(0, 1) if batch_first else x  # (T, B, I), time-major
    hidden = weights[0][1].shape[1]  # w_hh: (4H, H)
    if hx is None:
        zeros = seq.new_zeros(num_layers * dirs, seq.shape[1], hidden)  # (D*L, B, H)
        hx = (zeros, zeros)
    h0, c0 = hx
    h_n, c_n = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            out, h, c = _run_direction(seq, h0[k], c0[k], weights[k], reverse=d == 1)
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        seq = torch.cat(outs, dim=-1)  # (T, B, D*H)
        if dropout > 0.0 and training and layer < num_layers - 1:
            seq = F.dropout(seq, p=dropout, training=True)
    output = seq.transpose(0, 1) if batch_first else seq
    return output, (torch.stack(h_n), torch.stack(c_n))
