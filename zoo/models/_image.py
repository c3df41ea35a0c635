"""What the image classifiers (ResNet, MobileNetV2, Inception) share: stems, argument checks, inputs.

Not a family: it registers nothing. The CNN family files subclass :class:`ImageClassifier`.

Stems (the ``stem`` argument of every image family):

- ``"imagenet"`` (the default): the reference network's stem, unchanged (timm/torchvision parity).
  It down-samples 4x before the first stage (32x in all): meant for inputs of about 128 px and more
  (ImageNet's 224). A 32x32 input reaches the last stage at 1x1.
- ``"small"``: stride 1 and no early pooling (the CIFAR ResNets of He et al. 2016, Sec. 4.2): the
  network down-samples 8x in all, so a 32x32 input reaches the last stage at 4x4 and an 8x8 input
  at 1x1. Meant for inputs of about 64 px and less. Each family file says what it changes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import validation
from ..arguments import check
from ..base import ZooModel


class ImageClassifier(ZooModel):
    """Base of the CNN classifiers: ``x`` (B, in_chans, H, W) -> logits (B, num_classes).

    Subclasses implement ``forward_features`` ((B, C, H, W) -> (B, num_features, h, w)) and
    ``get_classifier()`` (the final linear layer, under the reference's name: ``fc`` for
    ResNet/Inception, ``classifier`` for MobileNetV2); :meth:`forward_head` is the shared global
    average pool -> dropout -> classifier, and ``forward`` their composition, as in timm.

    ``img_size`` sizes :meth:`example_inputs` and is checked against :attr:`min_img_size`, the
    smallest square input the subclass's strides and pools leave at least 1x1 with that stem (every
    model here ends in a global average pool, so it accepts any size from there up).
    """

    # stem -> the smallest img_size the network processes; each subclass sets its own.
    min_img_size: dict[str, int] = {"imagenet": 1, "small": 1}

    def __init__(self, *, num_classes: int, in_chans: int, img_size: int, drop_rate: float,
                 stem: str = "imagenet"):
        check(num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_rate=drop_rate,
              stem=stem)
        check_img_size(type(self), img_size, stem)
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.img_size = img_size
        self.drop_rate = float(drop_rate)
        self.stem = stem

    def get_classifier(self) -> nn.Module:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3))                       # (B, num_features): global average pool
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.get_classifier()(x)          # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_chans, self.img_size, self.img_size,
                            **self._placement()),)


def check_img_size(cls: type[ImageClassifier], img_size: int, stem: str) -> None:
    """Raise ``ValueError`` naming ``img_size`` when ``cls`` with ``stem`` cannot process it."""
    minimum = cls.min_img_size[stem]
    try:
        validation.integer("img_size", img_size, minimum=minimum)
    except ValueError as err:
        raise ValueError(f"{err}: {cls.__name__} with stem={stem!r} reduces a smaller input to "
                         f"nothing before its last layer") from None
