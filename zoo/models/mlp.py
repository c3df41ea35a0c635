"""Multi-layer perceptron for tabular data."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arguments import check, placement
from ..base import ZooModel
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ..standardize import Standardize


class MLP(ZooModel):
    """Per-feature standardisation, ``depth`` hidden layers of ``Linear -> [Norm] -> ReLU ->
    [Dropout]``, then a linear head.

    Shapes: ``x`` (B, in_features) -> (B, num_classes). Init is PyTorch's default for ``nn.Linear``
    (Kaiming-uniform with a = sqrt(5)), the same as a hand-written ``nn.Sequential`` MLP. The
    standardisation (:class:`zoo.standardize.Standardize`) is the identity until :func:`zoo.fit`
    sets it from the training data.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int, depth: int, *,
                 dropout: float = 0.0, norm: str | None = None, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes, hidden=hidden, depth=depth,
              dropout=dropout, norm=norm)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features = in_features
        self.standardize = Standardize(in_features, **fk)
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers.append(nn.Linear(width, hidden, **fk))
            if norm == "batchnorm":
                layers.append(nn.BatchNorm1d(hidden, **fk))
            elif norm == "layernorm":
                layers.append(nn.LayerNorm(hidden, **fk))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.standardize(x)))  # (B, F) -> (B, hidden) -> (B, num_classes)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_features, **self._placement()),)


@register_model(family="mlp", input_kind="tabular", reference="hand-written nn.Sequential MLP")
def mlp(*, in_features: int = 16, num_classes: int = 1, hidden: int = 256, depth: int = 2,
        dropout: float = 0.0, norm: str | None = None, width_mult: float = 1.0,
        depth_mult: float = 1.0, device=None, dtype=None) -> MLP:
    """MLP: ``depth`` hidden layers of width ``hidden`` (both scaled), ReLU, optional norm/dropout."""
    return MLP(in_features, num_classes, scale_width(hidden, width_mult), scale_depth(depth, depth_mult),
               dropout=dropout, norm=norm, device=device, dtype=dtype)
