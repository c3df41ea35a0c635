"""What the image classifiers (ResNet, MobileNetV2, Inception) share: argument checks and inputs.

Not a family: it registers nothing. The CNN family files subclass :class:`ImageClassifier`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..base import ZooModel


def check_image_args(*, num_classes: int, in_chans: int, img_size: int, drop_rate: float) -> None:
    """Raise ``ValueError`` naming the first bad argument, its value and what is accepted."""
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans), ("img_size", img_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not accepted: expected an int >= 1")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) \
            or not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate={drop_rate!r} is not accepted: expected 0 <= drop_rate < 1")


class ImageClassifier(ZooModel):
    """Base of the CNN classifiers: ``x`` (B, in_chans, H, W) -> logits (B, num_classes).

    Subclasses implement ``forward_features`` ((B, C, H, W) -> (B, num_features, h, w)) and
    ``get_classifier()`` (the final linear layer, under the reference's name: ``fc`` for
    ResNet/Inception, ``classifier`` for MobileNetV2); :meth:`forward_head` is the shared global
    average pool -> dropout -> classifier, and ``forward`` their composition, as in timm. ``img_size`` only sizes :meth:`example_inputs`: every model here ends in a
    global average pool, so it accepts any input size its strides leave at least 1x1.
    """

    def __init__(self, *, num_classes: int, in_chans: int, img_size: int, drop_rate: float):
        super().__init__()
        check_image_args(num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         drop_rate=drop_rate)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.img_size = img_size
        self.drop_rate = float(drop_rate)

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
