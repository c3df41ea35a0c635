"""Precise batch-norm statistics for :func:`zoo.fit`: the population mean and variance of each
batch-norm layer recomputed from training batches, instead of the running averages kept while
training (Ioffe & Szegedy 2015, "Batch Normalization", Alg. 2; Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm", "precise BN"). The running averages (momentum 0.1) lag behind weights that
change fast: with a few steps an epoch, a model is then scored with statistics of weights long
gone (the numbers are in :mod:`zoo.training`'s docstring).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .data import Split

RECALIBRATION_SAMPLES = 1024  # training samples the statistics are averaged over (at least a batch)


@torch.no_grad()
def recalibrate_norms(model: nn.Module, split: Split, batch_size: int,
                      generator: torch.Generator) -> bool:
    """Batch-norm statistics recomputed from the training split (the model's weights unchanged).

    Every ``_BatchNorm`` with running statistics is reset and, in train mode without gradients,
    sees seeded shuffled training batches of ``batch_size`` (at least one batch, then until
    :data:`RECALIBRATION_SAMPLES` samples) with ``momentum=None``: PyTorch's cumulative average,
    so ``running_mean = mean_b mu_b`` and ``running_var = mean_b (m / (m - 1)) sigma_b^2`` over the
    batches b of size m: the population statistics of Ioffe & Szegedy 2015, Alg. 2, as
    ``torch.optim.swa_utils.update_bn`` computes them. Momenta are restored after. Returns whether
    the model has any such layer (False: nothing was run).

    ``split`` is a :mod:`zoo.data` split (its ``batches`` yield ``(inputs, y, mask)``; a graph is
    one full batch); ``generator`` draws the order, apart from the training shuffle's.
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    try:
        for inputs, y, _ in split.batches(batch_size, generator):
            model(*inputs)
            seen += y.shape[0]
            if seen >= RECALIBRATION_SAMPLES:
                break
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return True
