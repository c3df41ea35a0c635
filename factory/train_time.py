"""Training time per epoch of a candidate on the build device, for ``build(train_budget_s=...)``.

An epoch of ``n`` samples at batch ``B`` is ``S = ceil(n / B)`` steps (``zoo.fit``'s default batch:
the power of two nearest n / 50 within [16, 256]; graphs: one full-graph step). One step of a model
of forward FLOPs ``f`` (per sample, batch 1) costs about ``3 f B`` FLOPs (forward + backward, the
backward twice the forward), so

    seconds per epoch ~= S * (3 f B / R_family + t0)

where ``R_family`` (FLOP/s) and ``t0`` (the optimizer/launch overhead per step) are *measured once
per process* per registry family and device: a few timed real training steps (AdamW, the task's
loss, after one warm-up step) at batch B of two points of the candidate's path, the smallest
(its step time is ``t0``) and the largest under :data:`REFERENCE_STEP_FLOPS` a step (``R`` = the
FLOPs difference over the time difference). Conv nets, LSTMs and MLPs run at very different FLOP rates; measuring per family keeps
that out of one global constant. The estimate is rough (±50 %): the machine may be busy.
"""
from __future__ import annotations

import math
import time

import torch

import zoo

from . import count_cache
from .counts import count_flops
from .train_step import make_inputs, make_loss

STEPS_TIMED = 3
_RATES: dict[tuple, tuple[float, float]] = {}   # (family, device, dtype) -> (FLOP/s, overhead s)


def default_batch(n_samples: int, graph: bool) -> int:
    """``zoo.fit``'s default batch size (graphs: the whole graph, one step)."""
    if graph:
        return 1
    from zoo.training import default_batch_size

    return default_batch_size(n_samples)


def measure_rate(small: dict, big: dict, *, batch_size: int, device: str = "cpu",
                 input_kwargs: dict | None = None, loss: str = "cross_entropy") -> tuple[float, float]:
    """(FLOP/s, overhead s per step) of real training steps, cached per registry family and device
    for the process: ``t0`` = the step time of ``small`` (a tiny model: overhead), ``R`` = the
    FLOPs of a step of ``big`` over its step time less ``t0``."""
    family = zoo.get_entry(small["name"]).family
    key = (family, device)
    if key not in _RATES:
        def timed(config: dict) -> tuple[float, int]:
            model = zoo.from_config(config, device=device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            inputs = make_inputs(model, batch_size, input_kwargs)

            def step():
                opt.zero_grad(set_to_none=True)
                make_loss(model(*inputs), loss).backward()
                opt.step()

            step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(STEPS_TIMED):
                step()
            flops = 3 * count_flops(config, batch_size=batch_size, input_kwargs=input_kwargs)
            return (time.perf_counter() - t0) / STEPS_TIMED, flops

        t_small, f_small = timed(small)
        t_big, f_big = timed(big) if big != small else (t_small, f_small)
        if big == small:  # one architecture: its measured step time is the whole estimate
            rate, overhead = 1e18, t_small
        elif f_big > f_small and t_big > t_small:
            rate, overhead = (f_big - f_small) / (t_big - t_small), t_small
        else:
            rate, overhead = f_big / t_big, 0.0
        _RATES[key] = (max(rate, 1e6), overhead)
    return _RATES[key]


REFERENCE_STEP_FLOPS = 2e9  # the timed reference point: the largest of the path under this per step


def seconds_per_epoch(flops_per_sample: int, n_samples: int, rate: tuple[float, float], *,
                      graph: bool = False) -> float:
    """``S (3 f B / R + t0)`` (module docstring); graphs: ``f`` is the whole graph's forward."""
    batch = default_batch(n_samples, graph)
    steps = 1 if graph else math.ceil(n_samples / batch)
    flops_step = 3 * flops_per_sample * (1 if graph else batch)
    return steps * (flops_step / rate[0] + rate[1])


def estimate(problem, config: dict, flops: int, *, path: list[dict]) -> float:
    """Seconds per epoch of ``config`` (forward ``flops`` at batch 1) for ``problem``'s data on its
    device; the family's rate is measured once on ``path`` (the candidate's configs, smallest
    first): its first point and its largest point of at most :data:`REFERENCE_STEP_FLOPS` a step."""
    graph = problem.task.kind.graph
    batch = default_batch(problem.n_samples, graph)
    family = zoo.get_entry(config["name"]).family
    if (family, problem.device) not in _RATES:
        big = path[0]
        for c in path[1:]:
            if 3 * batch * _flops(c, problem.input_kwargs) > REFERENCE_STEP_FLOPS:
                break
            big = c
        measure_rate(path[0], big, batch_size=batch, device=problem.device,
                     input_kwargs=problem.input_kwargs, loss=problem.loss)
    return seconds_per_epoch(flops, problem.n_samples, _RATES[(family, problem.device)],
                             graph=graph)


def _flops(config: dict, input_kwargs) -> int:
    return count_cache.flops(config, input_kwargs)


def fits(problem, config: dict, flops: int, *, path: list[dict]) -> bool:
    """Whether ``config`` gets the epochs it needs within ``problem.train_budget_s`` (always True
    without a budget). Epochs needed: ``problem.epochs`` or the evidence's
    (:func:`zoo.factory.policy.epochs_needed`)."""
    if getattr(problem, "train_budget_s", None) is None:
        return True
    return estimate(problem, config, flops, path=path) * problem.epochs_needed \
        <= problem.train_budget_s
