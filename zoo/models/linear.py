"""Linear model: ``y = x W^T + b``, the baseline every tabular task starts from."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arguments import check, placement
from ..base import ZooModel
from ..registry import register_model
from ..standardize import Standardize


class Linear(ZooModel):
    """Per-feature standardisation, then a single affine map (numerically ``nn.Linear`` while the
    standardisation is the identity, as it is until :func:`zoo.fit` sets it).

    .. math:: y = W \\frac{x - \\mu}{\\sigma} + b

    Shapes: ``x`` (B, in_features) -> (B, num_classes).
    """

    def __init__(self, in_features: int, num_classes: int, *, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features = in_features
        self.standardize = Standardize(in_features, **fk)
        self.fc = nn.Linear(in_features, num_classes, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.standardize(x))  # (B, F) -> (B, num_classes)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.in_features, **self._placement()),)


@register_model(family="linear", input_kind="tabular", scales_width=False, scales_depth=False,
                reference="torch.nn.Linear")
def linear(*, in_features: int = 16, num_classes: int = 1, width_mult: float = 1.0,
           depth_mult: float = 1.0, device=None, dtype=None) -> Linear:
    """Linear (logistic/least-squares) model; width and depth multipliers do not apply."""
    return Linear(in_features, num_classes, device=device, dtype=dtype)
