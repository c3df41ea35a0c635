"""What one training step is made of, for the estimators and the memory probe alike: the optimizer
(by name, with the state tensors it keeps per parameter), the loss on random targets, the inputs
(the model's own ``example_inputs``) and the dtype by name.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo import validation

GiB = 1024 ** 3
MiB = 1024 ** 2

# name -> (torch.optim class, constructor kwargs, state tensors kept per parameter)
OPTIMIZERS: dict[str, tuple[str, dict, int]] = {
    "adam": ("Adam", {"lr": 1e-3}, 2),            # exp_avg, exp_avg_sq
    "adamw": ("AdamW", {"lr": 1e-3}, 2),
    "sgd": ("SGD", {"lr": 1e-2}, 0),              # plain SGD keeps nothing
    "sgd-momentum": ("SGD", {"lr": 1e-2, "momentum": 0.9}, 1),  # momentum_buffer
}
LOSSES = ("cross_entropy", "mse")


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``dtype`` as a floating ``torch.dtype``: its name (``"float32"``, ``"bf16"``...), the dtype
    itself, or None for torch's default."""
    return validation.dtype("dtype", dtype) or torch.get_default_dtype()


def make_optimizer(name: str, params) -> torch.optim.Optimizer:
    """The optimizer ``name`` (one of :data:`OPTIMIZERS`) over ``params``."""
    validation.choice("optimizer", name, OPTIMIZERS)
    cls, kwargs, _ = OPTIMIZERS[name]
    return getattr(torch.optim, cls)(params, **kwargs)


def make_loss(out: torch.Tensor, loss: str) -> torch.Tensor:
    """A real training loss on random targets: cross-entropy over classes or MSE regression.

    ``out`` is (B, C) (or (N, C) node logits); the targets are drawn beside it.
    """
    if loss == "cross_entropy":
        target = torch.randint(0, out.shape[-1], out.shape[:-1], device=out.device)
        return F.cross_entropy(out.float(), target)
    target = torch.randn(out.shape, device=out.device, dtype=out.dtype)
    return F.mse_loss(out, target)


def make_inputs(model: nn.Module, batch_size: int, input_kwargs: dict | None) -> tuple:
    """``model.example_inputs(batch_size, **input_kwargs)`` (graphs take num_nodes/num_edges)."""
    return tuple(model.example_inputs(batch_size, **(input_kwargs or {})))
