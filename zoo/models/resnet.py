"""ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385) and SE-ResNet (Hu et al., CVPR 2018, https://arxiv.org/abs/1709.01507).

The architecture and every parameter name are timm's ``resnet*`` / ``seresnet*`` (the torchvision
"v1.5" layout: stride on the 3x3 conv of a bottleneck), so a timm ``state_dict`` loads strictly and
gives the same logits. At ``width_mult=1``, ``depth_mult=1`` and ``stem="imagenet"`` the models are
timm's exactly.

``stem="small"`` (for inputs of about 64 px and less) replaces the 7x7 stride-2 stem conv and its
3x3 stride-2 max-pool with one 3x3 stride-1 conv, as the CIFAR ResNets of He et al. (2016, Sec. 4.2)
do: a 32x32 input reaches ``layer1`` at 32x32 and ``layer4`` at 4x4 (the ImageNet stem: 8x8 and
1x1). Only ``conv1``'s kernel shape changes; every other parameter keeps its name and shape.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .. import validation
from ..arguments import placement
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ._image import ImageClassifier
from .se import SEModule


class BasicBlock(nn.Module):
    r"""Two 3x3 convs with an identity (or 1x1 projection) shortcut: ResNet-18/34.

    .. math:: y = \mathrm{ReLU}\big(\mathrm{SE}(\mathrm{BN}(W_2 * \mathrm{ReLU}(\mathrm{BN}(W_1 * x))))
              + \mathrm{shortcut}(x)\big)

    Shapes: (B, in_chs, H, W) -> (B, planes, H/stride, W/stride).
    """
    expansion = 1

    def __init__(self, in_chs: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 se: bool = False, act_layer: type[nn.Module] = nn.ReLU,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        out_chs = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, planes, 3, stride=stride, padding=1, bias=False, **fk)
        self.bn1 = norm_layer(planes, **fk)
        self.act1 = act_layer(inplace=True)
        self.conv2 = nn.Conv2d(planes, out_chs, 3, padding=1, bias=False, **fk)
        self.bn2 = norm_layer(out_chs, **fk)
        self.se = SEModule(out_chs, **fk) if se else None
        self.act2 = act_layer(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero the residual branch's last BN scale, so the block starts as the identity (Goyal et
        al. 2017, "Accurate, Large Minibatch SGD"; timm's default ``zero_init_last=True``)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:  # after the branch, as timm: one fewer live activation
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act2(x)


class Bottleneck(nn.Module):
    r"""1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand by 4, plus shortcut: ResNet-50/101.

    .. math:: y = \mathrm{ReLU}\big(\mathrm{SE}(\mathrm{BN}(W_3 * \mathrm{ReLU}(\mathrm{BN}(W_2 *
              \mathrm{ReLU}(\mathrm{BN}(W_1 * x)))))) + \mathrm{shortcut}(x)\big)

    Shapes: (B, in_chs, H, W) -> (B, 4 * planes, H/stride, W/stride). The stride sits on the 3x3
    conv (torchvision/timm "ResNet v1.5"), not on the first 1x1 as in the paper.
    """
    expansion = 4

    def __init__(self, in_chs: int, planes: int, *, stride: int = 1, downsample: nn.Module | None = None,
                 se: bool = False, act_layer: type[nn.Module] = nn.ReLU,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        out_chs = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, planes, 1, bias=False, **fk)
        self.bn1 = norm_layer(planes, **fk)
        self.act1 = act_layer(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False, **fk)
        self.bn2 = norm_layer(planes, **fk)
        self.act2 = act_layer(inplace=True)
        self.conv3 = nn.Conv2d(planes, out_chs, 1, bias=False, **fk)
        self.bn3 = norm_layer(out_chs, **fk)
        self.se = SEModule(out_chs, **fk) if se else None
        self.act3 = act_layer(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero the residual branch's last BN scale (see :meth:`BasicBlock.zero_init_last`)."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act3(x)


# Stage layout of each depth: (block, blocks per stage). Stage widths ("planes") are STAGE_PLANES;
# each stage's output is planes * block.expansion channels, stages 2-4 halve the resolution.
STAGE_PLANES = (64, 128, 256, 512)
STEM_WIDTH = 64
LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    #     block       blocks per stage
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(ImageClassifier):
    """ResNet / SE-ResNet: 7x7 stride-2 stem, 3x3 stride-2 max-pool, four residual stages, global
    average pool, linear classifier. With ``stem="small"``: one 3x3 stride-1 stem conv, no pool.

    Shapes: ``x`` (B, in_chans, H, W) -> features (B, 512 * expansion * w, H/32, W/32) ->
    logits (B, num_classes), ``w`` the width multiplier (``stem="small"``: H/8, W/8).

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage (already depth-scaled).
        stem_width / planes: stem and stage widths (already width-scaled).
        se: add an :class:`SEModule` at the end of every residual branch (SE-ResNet).
        stem: ``"imagenet"`` or ``"small"`` (see the module docstring).
    """

    # Every layer maps a 1x1 input to 1x1 (each stride-2 layer pads), so any size is processed.
    min_img_size = {"imagenet": 1, "small": 1}

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], *, num_classes: int = 1000,
                 in_chans: int = 3, img_size: int = 224, stem_width: int = STEM_WIDTH,
                 planes: tuple[int, ...] = STAGE_PLANES, se: bool = False, drop_rate: float = 0.0,
                 stem: str = "imagenet", device=None, dtype=None):
        super().__init__(num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         drop_rate=drop_rate, stem=stem)
        layers = validation.shape("layers", layers)
        planes = validation.shape("planes", planes, ndim=len(layers))
        stem_width = validation.positive_int("stem_width", stem_width)
        fk = placement(device, dtype)
        if stem == "small":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False, **fk)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False, **fk)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem_width, **fk)
        self.act1 = nn.ReLU(inplace=True)
        in_chs = stem_width
        for i, (stage_planes, n_blocks) in enumerate(zip(planes, layers)):
            stride = 1 if i == 0 else 2
            out_chs = stage_planes * block.expansion
            downsample = None
            if stride != 1 or in_chs != out_chs:  # 1x1 projection shortcut ("option B" of the paper)
                downsample = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False, **fk),
                                           nn.BatchNorm2d(out_chs, **fk))
            blocks = [block(in_chs, stage_planes, stride=stride, downsample=downsample, se=se, **fk)]
            blocks += [block(out_chs, stage_planes, se=se, **fk) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))  # timm's (torchvision's) names
            in_chs = out_chs
        self.num_features = in_chs
        self.fc = nn.Linear(in_chs, num_classes, **fk)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, zero_init_last: bool = True) -> None:
        """timm's ResNet init (and torchvision's with ``zero_init_residual=True``).

        - Conv: Kaiming-normal, fan_out, ReLU gain (He et al. 2015): keeps the activation variance
          of the backward pass constant through ReLU nets; timm and torchvision both use fan_out.
        - BatchNorm: weight 1, bias 0 (the identity affine map; PyTorch's default, set explicitly).
        - Last BN of each residual branch: weight 0 (``zero_init_last``), so every block starts as
          the identity and the deep net trains like a shallow one at first (Goyal et al. 2017).
        - Linear classifier: PyTorch's default (Kaiming-uniform, a = sqrt(5)), as timm leaves it.
        All of these are in-place ``nn.init`` calls, which are no-ops on the meta device.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))  # (B, stem, H/4, W/4); small: H, W
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)              # (B, num_features, H/32, W/32); small: H/8, W/8

    def get_classifier(self) -> nn.Module:
        return self.fc


def _resnet(depth: int, *, se: bool, num_classes: int, in_chans: int, img_size: int, width_mult: float,
            depth_mult: float, drop_rate: float, stem: str, device, dtype) -> ResNet:
    block, layers = LAYOUTS[depth]
    return ResNet(block, tuple(scale_depth(n, depth_mult) for n in layers),
                  num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                  stem_width=scale_width(STEM_WIDTH, width_mult),
                  planes=tuple(scale_width(c, width_mult) for c in STAGE_PLANES),
                  se=se, drop_rate=drop_rate, stem=stem, device=device, dtype=dtype)


def _register(depth: int, se: bool, params: str):
    """Register ``resnet{depth}`` / ``seresnet{depth}`` (one builder per row of the table below)
    and return the registered builder."""
    name = f"{'se' if se else ''}resnet{depth}"
    block, layers = LAYOUTS[depth]

    def builder(*, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
                width_mult: float = 1.0, depth_mult: float = 1.0, drop_rate: float = 0.0,
                stem: str = "imagenet", device=None, dtype=None) -> ResNet:
        return _resnet(depth, se=se, num_classes=num_classes, in_chans=in_chans,
                       img_size=img_size, width_mult=width_mult, depth_mult=depth_mult,
                       drop_rate=drop_rate, stem=stem, device=device, dtype=dtype)

    kind = "basic" if block is BasicBlock else "bottleneck"
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (f"{'SE-' if se else ''}ResNet-{depth}: {kind} blocks, "
                       f"{'-'.join(map(str, layers))}" + (", squeeze-and-excitation in every block"
                                                          if se else "") + f" ({params} at 1000 classes)."
                       "\n\nstem: 'imagenet' (timm's, for about 128 px and more) or 'small' (3x3 "
                       "stride 1, no max-pool, for about 64 px and less).")
    return register_model(family="seresnet" if se else "resnet", input_kind="image",
                          reference=f"timm {name}")(builder)


#                        depth  SE     parameters at 1000 classes (= timm's)
resnet18 = _register(18, False, "11.7M")
resnet34 = _register(34, False, "21.8M")
resnet50 = _register(50, False, "25.6M")
resnet101 = _register(101, False, "44.5M")
seresnet18 = _register(18, True, "11.8M")
seresnet34 = _register(34, True, "22.0M")
seresnet50 = _register(50, True, "28.1M")
seresnet101 = _register(101, True, "49.3M")
