"""Inception block and a GoogLeNet-style net built from it (Szegedy et al., "Going Deeper with
Convolutions", CVPR 2015, https://arxiv.org/abs/1409.4842).

Block layout, channel table and parameter names are torchvision's ``googlenet``, so at
``width_mult=1``, ``depth_mult=1`` and ``in_chans=3`` the net loads a torchvision
``googlenet(aux_logits=False, transform_input=False)`` ``state_dict`` strictly and gives the same
logits. Deviations, from the paper and from torchvision:

- the "5x5" branch uses a 3x3 conv, as torchvision does (a known torchvision bug kept for weight
  compatibility, https://github.com/pytorch/vision/issues/906); the paper says 5x5;
- every conv is conv (no bias) + BatchNorm (eps 0.001) + ReLU, torchvision's ``BasicConv2d`` (the
  paper predates BatchNorm and uses biased convs and local response normalisation);
- no auxiliary classifiers (training-only heads of the paper, ``aux_logits=False`` in torchvision):
  ``forward`` always returns one logits tensor;
- no ``transform_input`` (torchvision's re-normalisation of ImageNet-normalised inputs to the
  original weights' [-1, 1] convention): inputs go in as given;
- ``drop_rate`` defaults to 0.0 (the registry's default for every model); torchvision's is 0.2;
- ``stem="small"`` (not in torchvision; for inputs of about 64 px and less): conv1 is a 3x3 stride-1
  conv and the stem's first max-pool (``maxpool1``) is gone, so the stem keeps the input's size
  up to ``maxpool2``; the net down-samples 8x, not 32x, and a 32x32 input meets stage 3 at 16x16
  and the last stage at 4x4 (the ImageNet stem: 4x4 and 1x1). The pool that ends the stem is
  kept so that the small stem down-samples 8x like every family's (``stem="small"`` on ResNet
  and MobileNetV2): the CIFAR GoogLeNet that drops it too runs its 480-channel stage 3 at full
  size, for 4x the work. Only ``conv1``'s kernel shape changes;
- ``in_chans`` may differ from 3; ``depth_mult`` repeats the last block of each stage (extra blocks
  are named on from the stage's letters: ``inception3c``, ...), and below 1 keeps each stage's first
  ``ceil(n * depth_mult)`` blocks.
"""
from __future__ import annotations

import string

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import validation
from ..arguments import placement
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ._image import ImageClassifier

# torchvision googlenet's channel table, one row per Inception block, grouped by stage; the input
# width of each block is the sum of the previous block's four outputs (ch1x1 + ch3x3 + ch5x5 + pool_proj).
STAGES: tuple[tuple[tuple[int, int, int, int, int, int], ...], ...] = (
    # ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj
    ((64, 96, 128, 16, 32, 32),        # 3a: 192 -> 256
     (128, 128, 192, 32, 96, 64)),     # 3b: 256 -> 480
    ((192, 96, 208, 16, 48, 64),       # 4a: 480 -> 512
     (160, 112, 224, 24, 64, 64),      # 4b: 512 -> 512
     (128, 128, 256, 24, 64, 64),      # 4c: 512 -> 512
     (112, 144, 288, 32, 64, 64),      # 4d: 512 -> 528
     (256, 160, 320, 32, 128, 128)),   # 4e: 528 -> 832
    ((256, 160, 320, 32, 128, 128),    # 5a: 832 -> 832
     (384, 192, 384, 48, 128, 128)),   # 5b: 832 -> 1024
)
STEM = (64, 64, 192)  # conv1 (7x7 s2), conv2 (1x1), conv3 (3x3)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm (eps 0.001, torchvision's) -> ReLU.

    Shapes: (B, in_chs, H, W) -> (B, out_chs, H', W') with H', W' set by ``conv_kwargs``.
    """

    def __init__(self, in_chs: int, out_chs: int, *, device=None, dtype=None, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, bias=False, device=device, dtype=dtype, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_chs, eps=0.001, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    r"""Four parallel branches concatenated on channels:

    .. math:: y = [\,b_1(x);\ b_2(x);\ b_3(x);\ b_4(x)\,], \quad
        b_1 = C_{1\times1},\ b_2 = C_{3\times3} \circ C_{1\times1},\ b_3 = C_{3\times3} \circ C_{1\times1},\
        b_4 = C_{1\times1} \circ \mathrm{MaxPool}_{3\times3,\,s1}

    each :math:`C` a :class:`BasicConv2d`. :math:`b_3` is the paper's 5x5 branch, built with a 3x3
    conv as torchvision does (see the module docstring). The 1x1 convs before the 3x3s are the
    paper's dimension reductions.

    Shapes: (B, in_chs, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
    """

    def __init__(self, in_chs: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, *, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.out_chs = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_chs, ch1x1, kernel_size=1, **fk)
        self.branch2 = nn.Sequential(BasicConv2d(in_chs, ch3x3red, kernel_size=1, **fk),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1, **fk))
        self.branch3 = nn.Sequential(BasicConv2d(in_chs, ch5x5red, kernel_size=1, **fk),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1, **fk))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_chs, pool_proj, kernel_size=1, **fk))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _block_name(stage: int, index: int) -> str:
    # inception3a, inception3b, ...; past 26 blocks in a stage (depth_mult > 5) the index is spelled out.
    suffix = string.ascii_lowercase[index] if index < 26 else f"_{index}"
    return f"inception{stage}{suffix}"


class GoogLeNet(ImageClassifier):
    """GoogLeNet-style net: stem (7x7/2 conv, 3x3/2 max-pool, 1x1 conv, 3x3 conv, 3x3/2 max-pool),
    three stages of :class:`Inception` blocks with a max-pool between stages (3x3/2, then 2x2/2, all
    ``ceil_mode=True``), global average pool, linear classifier. ``stem="small"``: conv1 3x3/1 and
    no ``maxpool1``.

    Shapes: ``x`` (B, in_chans, H, W) -> features (B, num_features, ~H/32, ~W/32) ->
    logits (B, num_classes); num_features = 1024 at width 1 (``stem="small"``: ~H/8, ~W/8).

    Args:
        stem_widths: widths of conv1, conv2, conv3 (already scaled).
        stages: per stage, the rows ``(ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`` of its
            blocks (already width- and depth-scaled).
        stem: ``"imagenet"`` or ``"small"`` (see the module docstring).
    """

    # The unpadded 3x3/2 max-pool after stage 3 (maxpool3) needs a 2x2 input, so the stem must
    # leave at least 2x2: 15 px through the ImageNet stem (7x7/2 conv, two unpadded 3x3/2 pools),
    # 4 px through the small one (one pool). tests/zoo/test_stems.py proves both bounds tight.
    min_img_size = {"imagenet": 15, "small": 4}

    def __init__(self, stem_widths: tuple[int, int, int],
                 stages: tuple[tuple[tuple[int, ...], ...], ...], *, num_classes: int = 1000,
                 in_chans: int = 3, img_size: int = 224, drop_rate: float = 0.0,
                 stem: str = "imagenet", device=None, dtype=None):
        super().__init__(num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         drop_rate=drop_rate, stem=stem)
        stem_widths = validation.shape("stem_widths", stem_widths, ndim=3)
        stages = tuple(tuple(validation.shape("stages", row, ndim=6) for row in rows) for rows in stages)
        fk = placement(device, dtype)
        # The order forward_features runs the modules in, by name (torchvision's names).
        if stem == "small":
            self.conv1 = BasicConv2d(in_chans, stem_widths[0], kernel_size=3, padding=1, **fk)
            order = ["conv1", "conv2", "conv3", "maxpool2"]
        else:
            self.conv1 = BasicConv2d(in_chans, stem_widths[0], kernel_size=7, stride=2, padding=3, **fk)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            order = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
        self.conv2 = BasicConv2d(stem_widths[0], stem_widths[1], kernel_size=1, **fk)
        self.conv3 = BasicConv2d(stem_widths[1], stem_widths[2], kernel_size=3, padding=1, **fk)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        in_chs = stem_widths[2]
        for s, rows in enumerate(stages):
            for i, row in enumerate(rows):
                block = Inception(in_chs, *row, **fk)
                self.add_module(_block_name(s + 3, i), block)
                order.append(_block_name(s + 3, i))
                in_chs = block.out_chs
            if s < len(stages) - 1:  # max-pool between stages: maxpool3 (3x3/2), maxpool4 (2x2/2)
                k = 3 if s == 0 else 2
                self.add_module(f"maxpool{s + 3}", nn.MaxPool2d(k, stride=2, ceil_mode=True))
                order.append(f"maxpool{s + 3}")
        self.feature_order = tuple(order)
        self.num_features = in_chs
        self.fc = nn.Linear(in_chs, num_classes, **fk)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """torchvision's GoogLeNet init (``init_weights=True``).

        - Conv and Linear weights: truncated normal, std 0.01, cut at +-2 (absolute, as torchvision
          writes it): the small-Gaussian init of the original GoogLeNet. Every conv feeds a BN, so
          the conv scale does not set the activation scale; Kaiming would serve as well.
        - BatchNorm: weight 1, bias 0, the identity affine map.
        - Linear bias: PyTorch's default (uniform in +-1/sqrt(fan_in)), which torchvision leaves.
        In-place ``nn.init`` calls: no-ops on the meta device.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> stem (B, 192 w, ~H/8, ~W/8) -> stages -> (B, num_features, ~H/32, ~W/32)
        # stem="small": stem (B, 192 w, ~H/2, ~W/2) -> ... -> (B, num_features, ~H/8, ~W/8)
        for name in self.feature_order:
            x = getattr(self, name)(x)
        return x

    def get_classifier(self) -> nn.Module:
        return self.fc


@register_model(family="inception", input_kind="image",
                reference="torchvision googlenet(aux_logits=False, transform_input=False)")
def inception(*, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, width_mult: float = 1.0,
              depth_mult: float = 1.0, drop_rate: float = 0.0, stem: str = "imagenet", device=None,
              dtype=None) -> GoogLeNet:
    """GoogLeNet-style Inception net, torchvision's block layout (6.6 M parameters at 1000 classes).

    stem: 'imagenet' (torchvision's, for about 128 px and more) or 'small' (3x3 stride-1 conv1, no
    first max-pool, for about 64 px and less).
    """
    stem_widths = tuple(scale_width(c, width_mult) for c in STEM)
    stages = []
    for rows in STAGES:
        n = scale_depth(len(rows), depth_mult)
        rows = rows[:n] + (rows[-1],) * (n - len(rows))   # repeat the last block to deepen
        stages.append(tuple(tuple(scale_width(c, width_mult) for c in row) for row in rows))
    return GoogLeNet(stem_widths, tuple(stages), num_classes=num_classes, in_chans=in_chans,
                     img_size=img_size, drop_rate=drop_rate, stem=stem, device=device, dtype=dtype)
