"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
https://arxiv.org/abs/1801.04381).

Architecture, width rounding and parameter names are timm's ``mobilenetv2_*`` (``efficientnet.py``,
``_gen_mobilenet_v2``), so ``mobilenetv2(width_mult=m)`` loads a timm ``mobilenetv2_{050,100,140}``
``state_dict`` strictly and gives the same logits. Deviations from the paper, all timm's and
torchvision's too:

- the ``t = 1`` row has no expansion conv (the paper's table lists it as a bottleneck with t = 1); it
  is a depthwise-separable block, :class:`DepthwiseSeparable`, named as timm names it;
- the stem is rounded with the width multiplier, and the 1280-channel head is ``max(1280,
  make_divisible(1280 * m))``: never narrower than 1280, wider above m = 1 (the paper keeps it at
  1280 for m < 1 only);
- ``stem="small"`` (not in either reference; for inputs of about 64 px and less): stride 1 in the
  stem conv and in the first stride-2 stage (the ``t=6, c=24`` row), so the net down-samples 8x,
  not 32x: a 32x32 input reaches the last stage at 4x4 (the ImageNet stem: 1x1 from the
  ``c=160`` row on). No parameter changes: the same ``state_dict`` loads into either stem;
- ``se=True`` adds squeeze-and-excitation after the depthwise conv, as timm's ``se_layer`` does in
  MobileNetV3/EfficientNet: squeeze to ``round(0.25 * in_chs)`` channels, the block's ReLU6 inside,
  sigmoid gate (not part of MobileNetV2 as published).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import validation
from ..arguments import check, placement
from ..registry import register_model
from ..scaling import make_divisible, scale_depth, scale_width
from ._image import ImageClassifier
from .se import SEModule

# The paper's Table 2. t: expansion factor, c: output channels, n: blocks, s: stride of the first.
CONFIG: tuple[tuple[int, int, int, int], ...] = (
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
SE_RATIO = 0.25  # squeeze width as a fraction of the block's input channels (timm's "se0.25")


def _se(mid_chs: int, expand_ratio: int, se: bool, **fk) -> nn.Module:
    """SE on the ``mid_chs = t * in_chs`` depthwise output, squeezing to ``SE_RATIO * in_chs``
    channels, computed as timm does: ``SqueezeExcite(mid_chs, rd_ratio=0.25 / t)``."""
    if not se:
        return nn.Identity()
    return SEModule(mid_chs, round(mid_chs * (SE_RATIO / expand_ratio)), act_layer=nn.ReLU6, **fk)


class DepthwiseSeparable(nn.Module):
    r"""The ``t = 1`` block: 3x3 depthwise conv -> BN -> ReLU6 -> [SE] -> 1x1 conv -> BN (linear).

    .. math:: y = \mathrm{BN}(W_{pw} * \mathrm{SE}(\mathrm{ReLU6}(\mathrm{BN}(W_{dw} * x)))) \;[+\, x]

    Shapes: (B, in_chs, H, W) -> (B, out_chs, H/stride, W/stride); the residual is added when
    ``stride == 1`` and ``in_chs == out_chs``.
    """

    def __init__(self, in_chs: int, out_chs: int, *, stride: int = 1, se: bool = False,
                 device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_dw = nn.Conv2d(in_chs, in_chs, 3, stride=stride, padding=1, groups=in_chs, bias=False, **fk)
        self.bn1 = nn.BatchNorm2d(in_chs, **fk)
        self.act1 = nn.ReLU6(inplace=True)
        self.se = _se(in_chs, 1, se, **fk)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False, **fk)
        self.bn2 = nn.BatchNorm2d(out_chs, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.act1(self.bn1(self.conv_dw(x))))
        y = self.bn2(self.conv_pw(y))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    r"""Inverted residual with linear bottleneck: 1x1 expand by t -> BN -> ReLU6 -> 3x3 depthwise
    (carries the stride) -> BN -> ReLU6 -> [SE] -> 1x1 project -> BN, no activation (the "linear
    bottleneck": ReLU on the narrow output would destroy information, Sec. 3.2 of the paper).

    .. math:: y = \mathrm{BN}(W_{pwl} * \mathrm{SE}(\mathrm{ReLU6}(\mathrm{BN}(W_{dw} *
              \mathrm{ReLU6}(\mathrm{BN}(W_{pw} * x)))))) \;[+\, x]

    Shapes: (B, in_chs, H, W) -> (B, t * in_chs, H, W) -> (B, t * in_chs, H/s, W/s) ->
    (B, out_chs, H/s, W/s); the residual is added when ``stride == 1`` and ``in_chs == out_chs``.
    """

    def __init__(self, in_chs: int, out_chs: int, *, expand_ratio: int, stride: int = 1,
                 se: bool = False, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        mid_chs = make_divisible(in_chs * expand_ratio)  # timm's rule; exact when in_chs % 8 == 0
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_pw = nn.Conv2d(in_chs, mid_chs, 1, bias=False, **fk)
        self.bn1 = nn.BatchNorm2d(mid_chs, **fk)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_dw = nn.Conv2d(mid_chs, mid_chs, 3, stride=stride, padding=1, groups=mid_chs,
                                 bias=False, **fk)
        self.bn2 = nn.BatchNorm2d(mid_chs, **fk)
        self.act2 = nn.ReLU6(inplace=True)
        self.se = _se(mid_chs, expand_ratio, se, **fk)
        self.conv_pwl = nn.Conv2d(mid_chs, out_chs, 1, bias=False, **fk)
        self.bn3 = nn.BatchNorm2d(out_chs, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class MobileNetV2(ImageClassifier):
    """MobileNetV2: 3x3 stride-2 stem, the :data:`CONFIG` stages, 1x1 head conv, global average pool,
    linear classifier. ReLU6 throughout, BN eps 1e-5. ``stem="small"``: stride 1 in the stem and in
    the first stride-2 stage.

    Shapes: ``x`` (B, in_chans, H, W) -> features (B, head_chs, H/32, W/32) -> logits (B, num_classes)
    (``stem="small"``: H/8, W/8).

    Args:
        config: rows ``(t, c, n, s)`` with ``c`` and ``n`` already width- and depth-scaled.
        stem_chs / head_chs: stem and head widths (already scaled).
        se: squeeze-and-excitation in every block (see the module docstring).
        stem: ``"imagenet"`` or ``"small"`` (see the module docstring).
    """

    # Every stride-2 conv pads (3x3, padding 1): a 1x1 input stays 1x1 throughout.
    min_img_size = {"imagenet": 1, "small": 1}

    def __init__(self, config: tuple[tuple[int, int, int, int], ...], *, stem_chs: int, head_chs: int,
                 num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, se: bool = False,
                 drop_rate: float = 0.0, stem: str = "imagenet", device=None, dtype=None):
        super().__init__(num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         drop_rate=drop_rate, stem=stem)
        check(se=se)
        for row in config:
            validation.shape("config", row, ndim=4)
        fk = placement(device, dtype)
        small = stem == "small"
        self.conv_stem = nn.Conv2d(in_chans, stem_chs, 3, stride=1 if small else 2, padding=1,
                                   bias=False, **fk)
        self.bn1 = nn.BatchNorm2d(stem_chs, **fk)
        self.act1 = nn.ReLU6(inplace=True)
        stages = []
        in_chs = stem_chs
        first_stride2 = next((i for i, row in enumerate(config) if row[3] == 2), None)
        for row_index, (t, c, n, s) in enumerate(config):
            if small and row_index == first_stride2:
                s = 1
            blocks = []
            for i in range(n):
                stride = s if i == 0 else 1
                if t == 1:
                    blocks.append(DepthwiseSeparable(in_chs, c, stride=stride, se=se, **fk))
                else:
                    blocks.append(InvertedResidual(in_chs, c, expand_ratio=t, stride=stride, se=se, **fk))
                in_chs = c
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)  # timm's names: blocks.{stage}.{block}
        self.conv_head = nn.Conv2d(in_chs, head_chs, 1, bias=False, **fk)
        self.bn2 = nn.BatchNorm2d(head_chs, **fk)
        self.act2 = nn.ReLU6(inplace=True)
        self.num_features = head_chs
        self.classifier = nn.Linear(head_chs, num_classes, **fk)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """torchvision's MobileNetV2 init.

        - Conv: Kaiming-normal, fan_out (He et al. 2015), as torchvision (timm's "goog" init differs
          only for depthwise convs, whose fan_out it divides by the group count).
        - BatchNorm: weight 1, bias 0, the identity affine map.
        - Linear classifier: N(0, 0.01), bias 0, so the initial logits are near zero (torchvision).
        No zero-init of the last BN: neither reference does it for MobileNetV2.
        In-place ``nn.init`` calls: no-ops on the meta device.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))    # (B, stem, H/2, W/2); small: H, W
        x = self.blocks(x)                            # (B, 320 * m, H/32, W/32); small: H/8, W/8
        return self.act2(self.bn2(self.conv_head(x)))  # (B, head_chs, H/32, W/32); small: H/8, W/8

    def get_classifier(self) -> nn.Module:
        return self.classifier


@register_model(family="mobilenetv2", input_kind="image",
                reference="timm mobilenetv2_100 (width 0.5: mobilenetv2_050, 1.4: mobilenetv2_140)")
def mobilenetv2(*, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                width_mult: float = 1.0, depth_mult: float = 1.0, drop_rate: float = 0.0, se: bool = False,
                stem: str = "imagenet", device=None, dtype=None) -> MobileNetV2:
    """MobileNetV2: inverted residuals with linear bottlenecks (3.5 M parameters at width 1.0).

    stem: 'imagenet' (timm's, for about 128 px and more) or 'small' (stride 1 in the stem and the
    first stride-2 stage, for about 64 px and less).
    """
    config = tuple((t, scale_width(c, width_mult), scale_depth(n, depth_mult), s) for t, c, n, s in CONFIG)
    return MobileNetV2(config, stem_chs=scale_width(STEM_CHANNELS, width_mult),
                       head_chs=max(HEAD_CHANNELS, scale_width(HEAD_CHANNELS, width_mult)),
                       num_classes=num_classes, in_chans=in_chans, img_size=img_size, se=se,
                       drop_rate=drop_rate, stem=stem, device=device, dtype=dtype)
