"""Temporal CNN: the residual network for time series of Wang, Yan & Oates, "Time Series
Classification from Scratch with Deep Neural Networks: A Strong Baseline", IJCNN 2017,
https://arxiv.org/abs/1611.06455 (their "ResNet", Fig. 1).

On small sets of long series, 1-D convolutional networks are the strong deep baselines (Wang et al.
2017; Fawaz et al. 2019, "Deep learning for time series classification: a review", where this
ResNet ranks first of nine deep models on the 85 UCR data sets); an LSTM often fails to learn there.

The network, as in the paper and its reference code:

- three residual blocks; each runs Conv1d(k=8) -> BN -> ReLU -> Conv1d(k=5) -> BN -> ReLU ->
  Conv1d(k=3) -> BN and adds a shortcut, then ReLU. The shortcut is a 1x1 conv + BN where the width
  changes and a BN alone where it does not (the reference code's ``BatchNormalization()(x)``);
- widths 64, 128, 128 (:data:`WIDTHS`), every conv stride 1 with "same" padding: the length never
  changes, so the model takes a series of any length;
- global average pooling over time, then a linear layer (the paper's softmax: logits here).

"Same" padding: a conv of kernel k gets k - 1 zeros in all, (k - 1) // 2 before the series and
k // 2 after it (TensorFlow's and PyTorch's ``padding="same"``). It is built as ``Conv1d(padding=k//2)``
whose first output is dropped when k is even: one Conv and one Slice in ONNX, no ``Pad``.

Deviations from the paper:

- the convs have no bias: each feeds a BN, whose shift makes a bias redundant;
- inputs are standardised per feature first (:class:`zoo.standardize.Standardize`, the identity until
  :func:`zoo.fit` sets it from the training split); the paper z-normalises each series;
- ``width_mult`` scales every width (:func:`zoo.scaling.scale_width`) and ``depth_mult`` the number of
  blocks (``scale_depth(3, depth_mult)``): extra blocks repeat the last width, fewer keep the first;
- with ``vocab_size``, token ids go through ``nn.Embedding(vocab_size, in_features)`` (as the LSTM's)
  and are not standardised;
- init: convs Kaiming-normal (fan_out, ReLU gain; He et al. 2015, as this zoo's ResNet), BN weight 1
  and bias 0; the reference code uses Keras' Glorot-uniform.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arguments import check, placement
from ..base import SequenceModel
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ..standardize import Standardize

WIDTHS = (64, 128, 128)     # output channels of the three blocks
KERNEL_SIZES = (8, 5, 3)    # the three convs of every block


class SameConv1d(nn.Conv1d):
    """``nn.Conv1d`` with stride 1, no bias and "same" padding: (B, C_in, T) -> (B, C_out, T).

    .. math:: y_{o,t} = \\sum_{c} \\sum_{j=0}^{k-1} W_{o,c,j}\\, x_{c,\\,t + j - \\lfloor (k-1)/2 \\rfloor}

    with :math:`x` zero outside ``[0, T)``: equal to ``nn.Conv1d(..., padding="same")``. Padded by
    ``k // 2`` on both sides; for an even ``k`` that is one zero too many in front, so the first
    output is dropped.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, *, device=None, dtype=None):
        super().__init__(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False,
                         device=device, dtype=dtype)
        self.trim = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)                        # (B, C_out, T + trim)
        return y[:, :, self.trim:] if self.trim else y  # (B, C_out, T)


class ResidualBlock1d(nn.Module):
    r"""Three "same" convs with BN, ReLU between them, and a shortcut (Wang et al. 2017).

    .. math:: y = \mathrm{ReLU}\big(\mathrm{BN}_3(W_3 * \mathrm{ReLU}(\mathrm{BN}_2(W_2 *
              \mathrm{ReLU}(\mathrm{BN}_1(W_1 * x))))) + \mathrm{shortcut}(x)\big)

    ``shortcut`` = BN(1x1 conv(x)) when ``in_chs != out_chs``, else BN(x).

    Shapes: (B, in_chs, T) -> (B, out_chs, T).
    """

    def __init__(self, in_chs: int, out_chs: int, *, kernel_sizes: tuple[int, ...] = KERNEL_SIZES,
                 device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        chans = (in_chs,) + (out_chs,) * len(kernel_sizes)
        self.convs = nn.ModuleList(SameConv1d(a, b, k, **fk)
                                   for a, b, k in zip(chans[:-1], chans[1:], kernel_sizes))
        self.bns = nn.ModuleList(nn.BatchNorm1d(out_chs, **fk) for _ in kernel_sizes)
        self.act = nn.ReLU(inplace=True)
        if in_chs != out_chs:
            self.shortcut = nn.Sequential(nn.Conv1d(in_chs, out_chs, 1, bias=False, **fk),
                                          nn.BatchNorm1d(out_chs, **fk))
        else:
            self.shortcut = nn.Sequential(nn.BatchNorm1d(out_chs, **fk))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(conv(y))
            if i < len(self.convs) - 1:
                y = self.act(y)
        return self.act(y + self.shortcut(x))  # (B, out_chs, T)


class TemporalCNN(SequenceModel):
    """ResNet for time series: standardise (or embed), residual 1-D blocks, mean over time, linear.

    Shapes: x (B, T, in_features) float, or (B, T) long token ids when ``vocab_size`` is set ->
    (B, T, in_features) -> transposed to (B, in_features, T) -> blocks (B, C, T) -> mean over T
    (B, C) -> (B, num_classes). ``seq_len`` only sizes :meth:`example_inputs`: any T >= 1 works.

    Args:
        widths: output channels of each block (already width- and depth-scaled).
    """

    def __init__(self, in_features: int, num_classes: int, widths: tuple[int, ...], *,
                 seq_len: int = 128, vocab_size: int | None = None, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes, seq_len=seq_len,
              vocab_size=vocab_size)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features, self.seq_len, self.vocab_size = in_features, seq_len, vocab_size
        if vocab_size:
            self.embed = nn.Embedding(vocab_size, in_features, **fk)
        else:
            self.embed = None
            self.standardize = Standardize(in_features, **fk)
        chans = (in_features,) + tuple(widths)
        self.blocks = nn.Sequential(*(ResidualBlock1d(a, b, **fk)
                                      for a, b in zip(chans[:-1], chans[1:])))
        self.num_features = chans[-1]
        self.head = nn.Linear(chans[-1], num_classes, **fk)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Convs Kaiming-normal (fan_out, ReLU gain: He et al. 2015), BN weight 1 and bias 0, the
        head PyTorch's default (Kaiming-uniform, a = sqrt(5)). No-ops on the meta device."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input: the last block's output averaged over time, (B, num_features)."""
        if self.embed is not None:
            x = self.embed(x)          # (B, T) -> (B, T, in_features)
        else:
            x = self.standardize(x)    # (B, T, in_features), per feature
        h = self.blocks(x.transpose(1, 2))  # (B, in_features, T) -> (B, C, T)
        return h.mean(dim=2)                # (B, C): global average pool over time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


@register_model(family="tcn", input_kind="sequence",
                reference="ResNet of Wang et al. 2017, written with nn.Conv1d(padding='same')")
def tcn(*, in_features: int = 16, seq_len: int = 128, vocab_size: int | None = None,
        num_classes: int = 1, width_mult: float = 1.0, depth_mult: float = 1.0,
        device=None, dtype=None) -> TemporalCNN:
    """Temporal CNN (ResNet-1D of Wang et al. 2017): 3 residual blocks of k = 8, 5, 3 convs, widths
    64, 128, 128 (blocks and widths scaled), global average pool, linear head."""
    n = scale_depth(len(WIDTHS), depth_mult)
    widths = WIDTHS[:n] + (WIDTHS[-1],) * (n - len(WIDTHS))  # repeat the last width to deepen
    return TemporalCNN(in_features, num_classes, tuple(scale_width(c, width_mult) for c in widths),
                       seq_len=seq_len, vocab_size=vocab_size, device=device, dtype=dtype)
