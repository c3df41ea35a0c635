"""Squeeze-and-Excitation channel attention (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018,
https://arxiv.org/abs/1709.01507), shared by SE-ResNet and MobileNetV2's ``se=True`` option.

Registers no model: it is a block, used by :mod:`zoo.models.resnet` and :mod:`zoo.models.mobilenetv2`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..scaling import make_divisible


def se_reduced_channels(channels: int, rd_ratio: float = 1.0 / 16, divisor: int = 8) -> int:
    """SE-ResNet's squeeze width: ``channels * rd_ratio`` rounded to ``divisor`` without the
    10 % bump (timm's ``SEModule``: ``make_divisible(c * rd_ratio, 8, round_limit=0.)``)."""
    return make_divisible(channels * rd_ratio, divisor, round_limit=0.0)


class SEModule(nn.Module):
    r"""Squeeze-and-Excitation: rescale each channel by a gate computed from the global context.

    .. math::
        s = \frac{1}{HW}\sum_{h,w} x_{:,h,w}, \qquad
        g = \sigma\big(W_2\,\delta(W_1 s + b_1) + b_2\big), \qquad
        y_{c,h,w} = g_c\, x_{c,h,w}

    with :math:`W_1 \in \mathbb{R}^{r \times C}` (squeeze), :math:`W_2 \in \mathbb{R}^{C \times r}`
    (excite), :math:`\delta` = ``act_layer`` (ReLU in SE-ResNet, the block's ReLU6 in MobileNetV2) and
    :math:`\sigma` the sigmoid. ``fc1``/``fc2`` are 1x1 convolutions (as timm's ``SEModule``, whose
    parameter names these are), so the (B, C, 1, 1) context never needs a reshape.

    Shapes: ``x`` (B, C, H, W) -> (B, C, H, W).

    Args:
        channels: C.
        rd_channels: r; default :func:`se_reduced_channels` (C/16 rounded to 8, the paper's
            reduction ratio 16 with timm's rounding).
    """

    def __init__(self, channels: int, rd_channels: int | None = None, *,
                 act_layer: type[nn.Module] = nn.ReLU, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        rd_channels = rd_channels or se_reduced_channels(channels)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True, **fk)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)        # (B, C, 1, 1): squeeze
        g = self.fc2(self.act(self.fc1(s)))     # (B, r, 1, 1) -> (B, C, 1, 1): excite
        return x * g.sigmoid()                  # (B, C, H, W), broadcast over H, W
