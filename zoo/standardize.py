"""Per-feature input standardisation stored in the model: ``y = (x - mean) / std`` over the last axis.

Tabular and float-sequence models (linear, MLP, LSTM, Transformer over features, temporal CNN)
hold one :class:`Standardize` as ``model.standardize`` and apply it first in ``forward``. It starts
as the identity (mean 0, std 1); :func:`zoo.fit` sets it from the training split. The statistics are
buffers, so :func:`zoo.save` / :func:`zoo.load` keep them and the ONNX export computes them inside
the graph: a deployed model takes raw inputs, exactly as it was trained on them.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Standardize(nn.Module):
    """``y = (x - mean) / std``, broadcast over every axis but the last.

    Shapes: x (..., F) -> (..., F); ``mean``, ``std``: (F,) buffers.
    """

    def __init__(self, num_features: int, *, device=None, dtype=None):
        super().__init__()
        self.num_features = num_features
        self.register_buffer("mean", torch.zeros(num_features, device=device, dtype=dtype))
        self.register_buffer("std", torch.ones(num_features, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @torch.no_grad()
    def fit_(self, x: torch.Tensor, eps: float = 1e-6) -> "Standardize":
        """Set ``mean``/``std`` from ``x`` (..., F): the statistics of every feature over all other
        axes (for a sequence, over samples and time steps). A constant feature gets std 1 (it is
        centred, not blown up)."""
        if x.shape[-1] != self.num_features:
            raise ValueError(f"x has {x.shape[-1]} features on its last axis; this model standardises "
                             f"{self.num_features}")
        flat = x.detach().reshape(-1, self.num_features).to(torch.float64)
        mean, std = flat.mean(0), flat.std(0, unbiased=False)
        std = torch.where(std < eps, torch.ones_like(std), std)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        return self

    def extra_repr(self) -> str:
        return f"{self.num_features}"
