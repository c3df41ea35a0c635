"""Training time per epoch of a candidate on the build device, for ``build(train_budget_s=...)``.

An epoch of ``n`` samples at batch ``B`` is ``S = ceil(n / B)`` steps (``zoo.fit``'s default batch:
the power of two nearest n / 50 within [16, 256]; graphs: one full-graph step). One step of a model
of forward FLOPs ``f`` (per sample, batch 1) costs ``F = 3 f B`` FLOPs (forward + backward, the
backward twice the forward). Its time is read off two real, timed steps of the candidate's own
path on *this* problem (its input shape, batch and device), measured once per process:

    t(F) = t_s + (F - F_s) / R,     R = (F_b - F_s) / (t_b - t_s)

where ``s`` is the path's smallest point and ``b`` its largest under :data:`REFERENCE_STEP_FLOPS`
a step (each: the median of :data:`STEPS_TIMED` AdamW steps of the task's loss after
:data:`WARMUP_STEPS` warm-up steps, which build the allocator's and oneDNN's caches). Where the
path has one point under the reference, or none, a step is taken as FLOP-bound:
``t(F) = t_s F / F_s``. Then

    seconds per epoch ~= S t(3 f B)

It counts all ``n`` samples as training steps and leaves out the validation pass (forward only):
``zoo.fit`` on a split of ``n`` trains on fewer, so the estimate errs long, by ~10-25 %. The
machine may be busy: it is a measurement, not a promise.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch

import zoo

from . import count_cache
from .train_step import make_inputs, make_loss

WARMUP_STEPS = 2
STEPS_TIMED = 3
REFERENCE_STEP_FLOPS = 1e10  # the timed larger point: the largest of the path under this a step


@dataclass(frozen=True)
class StepTime:
    """Seconds of one training step of ``F`` FLOPs, from two timed points of one path (module
    docstring): ``t_s`` at ``F_s`` and the increment rate ``R`` (None: FLOP-bound from ``t_s``)."""
    flops_small: float
    seconds_small: float
    rate: float | None = None

    def seconds(self, step_flops: float) -> float:
        if self.rate is None:
            return self.seconds_small * step_flops / max(self.flops_small, 1.0)
        return max(0.0, self.seconds_small + (step_flops - self.flops_small) / self.rate)


_STEPS: dict[tuple, StepTime] = {}   # (family, device, batch, input kwargs, loss) -> StepTime


def default_batch(n_samples: int, graph: bool) -> int:
    """``zoo.fit``'s default batch size (graphs: the whole graph, one step)."""
    if graph:
        return 1
    from zoo.training import default_batch_size

    return default_batch_size(n_samples)


def time_step(config: dict, *, batch_size: int, device: str = "cpu",
              input_kwargs: dict | None = None, loss: str = "cross_entropy") -> float:
    """Median seconds of one real training step of ``config`` at ``batch_size``, after
    :data:`WARMUP_STEPS` warm-up steps: ``zoo.fit``'s step (AdamW over its parameter groups,
    gradient-norm clipping) on ``loss`` with random targets, so what is timed is what it runs."""
    from zoo.training import DEFAULT_WEIGHT_DECAY, optimizer_step, param_groups

    model = zoo.from_config(config, device=device).train()
    opt = torch.optim.AdamW(param_groups(model, DEFAULT_WEIGHT_DECAY), lr=1e-3)
    inputs = make_inputs(model, batch_size, input_kwargs)
    times = []
    for i in range(WARMUP_STEPS + STEPS_TIMED):
        t0 = time.perf_counter()
        optimizer_step(model, opt, make_loss(model(*inputs), loss))
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_time(problem, path: list[dict]) -> StepTime:
    """The :class:`StepTime` of ``path`` (a candidate's configs, smallest first) on ``problem``'s
    data and device, timed once per process."""
    graph = problem.task.kind.graph
    batch = default_batch(problem.n_samples, graph)
    kwargs = problem.input_kwargs or {}
    key = (zoo.get_entry(path[0]["name"]).family, problem.device, batch,
           tuple(sorted(kwargs.items())), problem.loss, repr(path[0]))
    if key not in _STEPS:
        def step_flops(config: dict) -> float:
            return 3.0 * batch * count_cache.flops(config, problem.input_kwargs)

        def timed(config: dict) -> float:
            return time_step(config, batch_size=batch, device=problem.device,
                             input_kwargs=problem.input_kwargs, loss=problem.loss)

        small = path[0]
        f_s, t_s = step_flops(small), timed(small)
        big = None
        for c in path[1:]:
            if step_flops(c) > REFERENCE_STEP_FLOPS:
                break
            big = c
        rate = None
        if big is not None and step_flops(big) > f_s:
            t_b = timed(big)
            if t_b > t_s:
                rate = (step_flops(big) - f_s) / (t_b - t_s)
        _STEPS[key] = StepTime(f_s, t_s, rate)
    return _STEPS[key]


def seconds_per_epoch(flops_per_sample: int, n_samples: int, step: StepTime, *,
                      graph: bool = False) -> float:
    """``S t(3 f B)`` (module docstring); graphs: ``f`` is the whole graph's forward, one step."""
    batch = default_batch(n_samples, graph)
    steps = 1 if graph else math.ceil(n_samples / batch)
    return steps * step.seconds(3.0 * flops_per_sample * batch)


def estimate(problem, config: dict, flops: int, *, path: list[dict]) -> float:
    """Seconds per epoch of ``config`` (forward ``flops`` at batch 1) for ``problem``'s data on its
    device, from the timed steps of ``path`` (the candidate's configs, smallest first)."""
    return seconds_per_epoch(flops, problem.n_samples, step_time(problem, path),
                             graph=problem.task.kind.graph)


def fits(problem, config: dict, flops: int, *, path: list[dict]) -> bool:
    """Whether ``config`` gets the epochs it needs within ``problem.train_budget_s`` (always True
    without a budget). Epochs needed: ``problem.epochs`` or the evidence's
    (:func:`zoo.factory.policy.epochs_needed`)."""
    if getattr(problem, "train_budget_s", None) is None:
        return True
    return estimate(problem, config, flops, path=path) * problem.epochs_needed \
        <= problem.train_budget_s
