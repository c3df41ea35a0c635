"""A user's own network, as ``zoo check`` meets it: a plain 31-layer CNN without skip connections.

The seed's first "network doesn't learn" case: 30 convolutions (3x3, batch norm, ReLU) in a
straight line, then a linear classifier. From this folder::

    zoo check plain_cnn:PlainCNN --input-shape 3,32,32 --task image-classification --n-samples 1000
"""
from __future__ import annotations

import torch
from torch import nn


class PlainCNN(nn.Module):
    """``depth`` 3x3 conv-BN-ReLU layers at ``width`` channels (stride 2 after each third of
    them), global average pooling, a linear head: (B, 3, H, W) -> (B, num_classes)."""

    def __init__(self, depth: int = 30, width: int = 32, num_classes: int = 10):
        super().__init__()
        layers, chans = [], 3
        for i in range(depth):
            stride = 2 if i in (depth // 3, 2 * depth // 3) else 1
            layers += [nn.Conv2d(chans, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            chans = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))
