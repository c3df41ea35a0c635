"""Export-only operators whose ONNX translation costs the same whatever the input size.

``torch.export`` has no shape function for ``aten.lstm``: to learn its output shapes it runs
PyTorch's Python decomposition (``torch._decomp.decompositions.lstm_impl``) on fake tensors, one
LSTM cell per time step and layer, twice per export. On this project's 2-core machine that cost
about 0.04 s per step (11 s at 50 steps, 54 s at 400), although the ONNX graph torchlib finally
writes holds one ``LSTM`` node per layer. Here the LSTM becomes the custom operator
``zoo::onnx_lstm`` instead, whose fake (shape) function is a few ``new_empty`` calls, and whose
translation (:func:`onnx_lstm_translation`) writes ONNX ``LSTM`` nodes directly, its weights
already stored in ONNX's layout. :func:`swap_lstms` puts it into an export copy of a model;
:data:`TRANSLATIONS` is the ``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``.

Layouts. PyTorch stores one direction of layer ``l`` as ``weight_ih_l{l}`` (4H, I_l),
``weight_hh_l{l}`` (4H, H), ``bias_ih_l{l}`` and ``bias_hh_l{l}`` (4H,), the four gate blocks in
the order ``i, f, g, o``; the reverse direction's names end in ``_reverse``. ONNX's ``LSTM`` takes
``W`` (D, 4H, I_l), ``R`` (D, 4H, H) and ``B`` (D, 8H) = ``[Wb; Rb]``, gate blocks in the order
``i, o, f, c`` (``c`` is PyTorch's ``g``), D = 1 (forward) or 2 ([forward, reverse]). Both compute,
per step t, with sigma the logistic function::

    i = sigma(W_i x_t + R_i h_{t-1} + Wb_i + Rb_i)     f = sigma(W_f x_t + R_f h_{t-1} + Wb_f + Rb_f)
    g = tanh(W_g x_t + R_g h_{t-1} + Wb_g + Rb_g)      o = sigma(W_o x_t + R_o h_{t-1} + Wb_o + Rb_o)
    c_t = f * c_{t-1} + i * g                          h_t = o * tanh(c_t)

Layer l > 0 reads the previous layer's output, (T, B, D*H) with the directions concatenated
per step. Dropout between layers is a training-time operation and is absent from the export.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

# PyTorch gate block k (i, f, g, o) -> ONNX position: ONNX's order i, o, f, c is PyTorch's 0, 3, 1, 2.
_TO_ONNX = (0, 3, 1, 2)
_TO_TORCH = (0, 2, 3, 1)  # the inverse permutation: ONNX order -> PyTorch order


def _gates(w: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """Reorder the four gate blocks along dim 0 of ``w`` (4H, ...) into ``order``."""
    blocks = w.chunk(4, dim=0)
    return torch.cat([blocks[k] for k in order], dim=0)


def onnx_lstm_weights(lstm: nn.LSTM) -> list[torch.Tensor]:
    """``nn.LSTM``'s weights in ONNX's layout: ``[W_0, R_0, B_0, W_1, R_1, B_1, ...]`` per layer,
    ``W_l`` (D, 4H, I_l), ``R_l`` (D, 4H, H), ``B_l`` (D, 8H) (zeros when ``bias=False``)."""
    out = []
    suffixes = [""] + (["_reverse"] if lstm.bidirectional else [])
    for layer in range(lstm.num_layers):
        ws, rs, bs = [], [], []
        for s in suffixes:
            w_ih = getattr(lstm, f"weight_ih_l{layer}{s}")
            w_hh = getattr(lstm, f"weight_hh_l{layer}{s}")
            ws.append(_gates(w_ih, _TO_ONNX))
            rs.append(_gates(w_hh, _TO_ONNX))
            if lstm.bias:
                b_ih = getattr(lstm, f"bias_ih_l{layer}{s}")
                b_hh = getattr(lstm, f"bias_hh_l{layer}{s}")
                bs.append(torch.cat([_gates(b_ih, _TO_ONNX), _gates(b_hh, _TO_ONNX)]))
            else:
                bs.append(w_ih.new_zeros(8 * lstm.hidden_size))
        out += [torch.stack(ws), torch.stack(rs), torch.stack(bs)]
    return [t.detach().clone() for t in out]


def _torch_params(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """ONNX-layout weights back to ``aten.lstm``'s flat list ``[w_ih, w_hh, b_ih, b_hh]`` per
    layer and direction (PyTorch gate order)."""
    params = []
    for layer in range(len(weights) // 3):
        w, r, b = weights[3 * layer: 3 * layer + 3]
        for d in range(w.shape[0]):
            wb, rb = b[d].chunk(2)
            params += [_gates(w[d], _TO_TORCH), _gates(r[d], _TO_TORCH),
                       _gates(wb, _TO_TORCH), _gates(rb, _TO_TORCH)]
    return params


@torch.library.custom_op("zoo::onnx_lstm", mutates_args=())
def onnx_lstm(x: torch.Tensor, weights: list[torch.Tensor], h0: Optional[torch.Tensor],
              c0: Optional[torch.Tensor], hidden: int, bidirectional: bool,
              batch_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A multi-layer LSTM over ONNX-layout weights (see the module docstring); eager: ``aten.lstm``.

    Shapes: x (B, T, I) if ``batch_first`` else (T, B, I); h0, c0 (L*D, B, H) or None (zeros)
    -> output (B, T, D*H) (or (T, B, D*H)), h_n (L*D, B, H), c_n (L*D, B, H).
    """
    layers, dirs = len(weights) // 3, 2 if bidirectional else 1
    batch = x.shape[0] if batch_first else x.shape[1]
    if h0 is None:
        h0 = x.new_zeros(layers * dirs, batch, hidden)
    if c0 is None:
        c0 = x.new_zeros(layers * dirs, batch, hidden)
    out, h, c = torch.lstm(x, (h0, c0), _torch_params(weights), True, layers, 0.0, False,
                           bidirectional, batch_first)
    return out.clone(), h.clone(), c.clone()


@onnx_lstm.register_fake
def _(x, weights, h0, c0, hidden, bidirectional, batch_first):
    layers, dirs = len(weights) // 3, 2 if bidirectional else 1
    batch, steps = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    out_shape = (batch, steps, dirs * hidden) if batch_first else (steps, batch, dirs * hidden)
    state = (layers * dirs, batch, hidden)
    return x.new_empty(out_shape), x.new_empty(state), x.new_empty(state)


def onnx_lstm_translation(x, weights, h0, c0, hidden: int, bidirectional: bool,
                          batch_first: bool):
    """ONNX graph of ``zoo::onnx_lstm``: one ``LSTM`` node per layer, whatever the length.

    Per layer: ``Y, Y_h, Y_c = LSTM(seq, W_l, R_l, B_l, initial_h=h0[lD:(l+1)D], ...)`` with
    ``Y`` (T, D, B, H) -> Transpose (T, B, D, H) -> Reshape (T, B, D*H), the next layer's input.
    """
    from onnxscript import opset18 as op

    dirs = 2 if bidirectional else 1
    direction = "bidirectional" if bidirectional else "forward"
    seq = op.Transpose(x, perm=[1, 0, 2]) if batch_first else x  # (T, B, I)
    hs, cs = [], []
    for layer in range(len(weights) // 3):
        w, r, b = weights[3 * layer: 3 * layer + 3]
        start, stop = op.Constant(value_ints=[layer * dirs]), op.Constant(value_ints=[(layer + 1) * dirs])
        axes = op.Constant(value_ints=[0])
        ih = op.Slice(h0, start, stop, axes) if h0 is not None else None
        ic = op.Slice(c0, start, stop, axes) if c0 is not None else None
        y, y_h, y_c = op.LSTM(seq, w, r, b, None, ih, ic, direction=direction, hidden_size=hidden)
        y = op.Transpose(y, perm=[0, 2, 1, 3])  # (T, D, B, H) -> (T, B, D, H)
        seq = op.Reshape(y, op.Constant(value_ints=[0, 0, dirs * hidden]))  # (T, B, D*H)
        hs.append(y_h)
        cs.append(y_c)
    out = op.Transpose(seq, perm=[1, 0, 2]) if batch_first else seq
    h_n = op.Concat(*hs, axis=0) if len(hs) > 1 else op.Identity(hs[0])
    c_n = op.Concat(*cs, axis=0) if len(cs) > 1 else op.Identity(cs[0])
    return out, h_n, c_n


class ExportLSTM(nn.Module):
    """Stand-in for an ``nn.LSTM`` in an export copy: same call and results, one custom operator.

    Holds the weights in ONNX's layout (buffers ``w{l}``, ``r{l}``, ``b{l}``, see
    :func:`onnx_lstm_weights`). ``forward(x, hx=None) -> (output, (h_n, c_n))`` as ``nn.LSTM``'s,
    for batched inputs (x 3-D); packed sequences and projections are not supported.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if not isinstance(lstm, nn.LSTM) or lstm.proj_size:
            raise ValueError(f"lstm={lstm!r} is not accepted: expected an nn.LSTM without proj_size")
        self.hidden, self.layers = lstm.hidden_size, lstm.num_layers
        self.bidirectional, self.batch_first = lstm.bidirectional, lstm.batch_first
        for k, t in enumerate(onnx_lstm_weights(lstm)):
            self.register_buffer(f"{'wrb'[k % 3]}{k // 3}", t)

    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"{n}{layer}") for layer in range(self.layers) for n in "wrb"]

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None):
        if x.dim() != 3:
            raise ValueError(f"x.shape={tuple(x.shape)} is not accepted: expected a batched 3-D "
                             f"input (ExportLSTM)")
        h0, c0 = hx if hx is not None else (None, None)
        out, h, c = onnx_lstm(x, self.weights(), h0, c0, self.hidden, self.bidirectional,
                              self.batch_first)
        return out, (h, c)


def swap_lstms(net: nn.Module) -> int:
    """Replace, in place, every ``nn.LSTM`` inside ``net`` (an export copy) by :class:`ExportLSTM`;
    return how many were replaced. ``net`` itself must not be an ``nn.LSTM``."""
    swapped = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.LSTM and not child.proj_size:
                setattr(parent, name, ExportLSTM(child))
                swapped += 1
    return swapped


# ``custom_translation_table`` entries for ``torch.onnx.export(dynamo=True)``.
TRANSLATIONS = {torch.ops.zoo.onnx_lstm.default: onnx_lstm_translation}
