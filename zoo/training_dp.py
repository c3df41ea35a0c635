"""The data-parallel parts of ``zoo.fit``: what changes when it runs under ``torchrun``.

``zoo.fit(model, train, ..., strategy="ddp" | "fsdp", save_path=...)`` in a script started by
``torchrun --nproc_per_node N script.py`` trains on N processes with PyTorch's own engine
(:mod:`zoo.distributed`): DDP (a replica per rank, gradients all-reduced) or FSDP2 (``fully_shard``
over the family's units, :func:`zoo.shard`). :func:`start` decides: a data-parallel run when a
process group is up, or ``WORLD_SIZE > 1`` in the environment (the group is then created from
torchrun's variables, Gloo on CPU, NCCL on CUDA); otherwise one process, ``strategy`` checked and
unused.

What a data-parallel run does differently (everything else is the one-process recipe):

- **Samples.** Every rank draws the same seeded permutation (``fit``'s shuffling generator) and
  takes ``batch[r::N]`` of each global batch of ``batch_size``: the N shares of a step are exactly
  the samples of the one-process step. A global batch of m samples is cut to ``m - m mod N``
  (all shares equal, so the averaged gradient is the gradient of the global mean loss; at most
  N - 1 samples of an epoch's last batch are left out, a different few each epoch). The
  arithmetic: ``L = (1/B) sum_i l_i``; rank r's loss is the mean over its B/N samples, and the
  average over ranks of the gradients of those means is ``grad L``. So with the same seed, N
  processes give the one-process loss curve (to float rounding), except for batch norm, whose
  batch statistics are per rank. A graph (full batch) is trained whole on every rank (the same
  gradient N times); a user's DataLoader is iterated as given (give it a ``DistributedSampler``
  and equal lengths on every rank).
- **Metrics.** The training sums (:class:`zoo.training.Meter`) are all-reduced (summed) over the
  ranks before the epoch's loss and metric are divided out. Validation runs on the whole
  validation split on every rank (the weights are the same on every rank), so every rank takes
  the same early-stopping decisions.
- **Clock.** With ``time_budget_s``, rank 0's elapsed time is broadcast at each use, so all ranks
  take the same learning rate and stop at the same step.
- **Progress** is shown on rank 0 only.
- **Weights.** After training the model object stays wrapped (DDP) or sharded (FSDP). The best
  weights are gathered and written once, by rank 0, to ``save_path`` (``zoo.save`` format:
  ``zoo.load(save_path)`` reads them on one device). ``save_path`` works the same in one process.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from . import distributed as zd
from . import validation as V
from .data import Samples


def start(strategy: str | None) -> "Parallel | None":
    """A :class:`Parallel` when this process is one of several (see the module doc), else None.

    ``strategy``: None (``"ddp"`` when several processes), ``"ddp"`` or ``"fsdp"``."""
    strategy = V.optional(V.choice, "strategy", strategy, choices=zd.STRATEGIES)
    if not zd.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        zd.setup()
    if zd.world_size() <= 1:
        return None
    return Parallel(strategy or "ddp")


class Parallel:
    """One rank's view of a data-parallel ``fit``: ``rank`` of ``world`` under ``strategy``."""

    def __init__(self, strategy: str):
        self.strategy, self.rank, self.world = strategy, zd.rank(), zd.world_size()

    def wrap(self, model: nn.Module, recipe) -> nn.Module:
        """The model made data-parallel (:func:`zoo.distributed.wrap`); call before the optimizer.
        FSDP replaces the parameters by shards, so regression's target scale, which rescales the
        final layer in place after training, is refused with it."""
        if self.strategy == "fsdp" and recipe.scale is not None:
            raise ValueError("strategy='fsdp' is not accepted for regression: expected 'ddp' "
                             "(the final layer is rescaled in place after training)")
        return zd.wrap(model, self.strategy)

    def share(self, split):
        """This rank's share of the training split (module doc, *Samples*)."""
        return RankShare(split, self.rank, self.world) if isinstance(split, Samples) else split

    def reduce(self, meter) -> None:
        """Sum the meter's float64 sums over the ranks, in place."""
        sums = meter.sums
        flat = sums.detach().to("cpu") if dist.get_backend() == "gloo" else sums
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        if flat is not sums:
            sums.copy_(flat)

    def recipe(self, recipe):
        """``recipe`` with rank 0's clock (module doc, *Clock*)."""
        if recipe.time_budget_s is not None:
            recipe.__class__ = _shared_clock(type(recipe))
        return recipe


class RankShare:
    """``split`` as rank ``rank`` of ``world`` sees it: ``batch[rank::world]`` of each global batch
    (cut to a multiple of ``world``). Shapes: a global batch X (m, ...) gives (floor(m/N), ...)."""

    def __init__(self, split: Samples, rank: int, world: int):
        self.split, self.rank, self.world = split, rank, world

    def __len__(self) -> int:
        return len(self.split)

    def __getattr__(self, name):   # name, X, y, features(), probe(), ... of the whole split
        return getattr(self.split, name)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator:
        for inputs, y, mask in self.split.batches(batch_size, generator):
            m = y.shape[0] - y.shape[0] % self.world
            if m == 0:
                continue
            take = slice(self.rank, m, self.world)
            yield tuple(x[take] for x in inputs), y[take], mask

    def steps(self, batch_size: int) -> int:
        n = len(self.split)
        full, rest = divmod(n, batch_size)
        last = rest - rest % self.world if not (n > 1 and rest == 1) else 0
        return full + (1 if last > 0 else 0)


def _shared_clock(base: type) -> type:
    class SharedClock(base):
        def elapsed(self) -> float:
            t = torch.tensor([super().elapsed()], dtype=torch.float64)
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.broadcast(t, src=0)
            return float(t.item())
    SharedClock.__name__ = f"SharedClock{base.__name__}"
    return SharedClock



def checked_path(name: str, value) -> str:
    """``value`` as a file path (a non-empty ``str`` or ``os.PathLike``), else ``ValueError``."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValueError(f"{name}={value!r} is not accepted: expected a file path (a non-empty "
                         f"str or os.PathLike)")
    return value


def save_best(model: nn.Module, path: str) -> None:
    """The model's (best) weights written once, by rank 0, with ``zoo.save`` (every rank calls:
    FSDP gathers the shards collectively)."""
    zd.save_rank0(model, path)
