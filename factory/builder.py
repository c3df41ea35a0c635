"""``build(task, n_samples, vram_gb, latency_ms)``: the right model for a task, data and machine.

The arguments become a :class:`zoo.factory.problem.Problem` (checked, and the policy's candidates
-- :mod:`zoo.factory.policy` -- whose inductive bias fits the task); the search
(:mod:`zoo.factory.search`) finds the largest model of those candidates the data supports that
trains within ``vram_gb`` and runs within ``latency_ms``; the result is a real, seeded model in
train mode carrying ``model.spec`` (:class:`zoo.factory.spec.ModelSpec`, assembled by
:meth:`~zoo.factory.spec.ModelSpec.from_search`).
"""
from __future__ import annotations

import math
import sys
import time

import torch
import torch.nn as nn

import zoo
from zoo import validation
from zoo.errors import BudgetError

from . import count_cache, device_budget, policy, search
from .counts import weight_bytes
from .problem import Problem
from .spec import ModelSpec
from .train_step import torch_dtype


def build(task: str, n_samples: int, vram_gb: float | None, latency_ms: float | None, *,
          input_shape=None, num_classes: int | None = None, batch_size: int | None = None,
          optimizer: str = "adam", dtype: str = "float32", device: str = "cpu",
          families=None, seed: int = 0, progress: bool = False,
          n_edges: int | None = None, train_budget_s: float | None = None,
          epochs: int | None = None, devices: int = 1, strategy: str = "ddp") -> nn.Module:
    """The largest model whose inductive bias fits ``task`` that the data supports, that trains in
    ``vram_gb`` and answers in ``latency_ms``.

    Args:
        task: one of :data:`zoo.factory.tasks.TASKS` (``"image-classification"``, ...).
        n_samples: training samples (rows, images, sequences; nodes for node classification).
        vram_gb: training memory at ``batch_size`` with ``optimizer`` (GB of 1e9 bytes; on CPU the
            process's resident memory), or None for no bound.
        latency_ms: median inference latency of the ONNX export at batch 1 in ONNX Runtime on this
            machine (CUDA provider with ``device="cuda"`` when available), or None.
        input_shape: tabular ``(n_features,)``; image ``(C, H, W)`` (default ``(3, 224, 224)``);
            sequence ``(seq_len, n_features)``; node ``(n_nodes, n_features)``
            (:data:`zoo.factory.tasks.INPUT_KINDS`).
        num_classes: required for classification (>= 2); regression predicts 1 value.
        batch_size: training batch for the memory budget (default per task; graphs: whole graph).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, ``"sgd-momentum"``.
        dtype, device: of the training (memory) and of the returned model.
        families: restrict the candidates to these: candidate keys (``"mobilenetv2-se"``, see
            :data:`zoo.factory.policy.CANDIDATES`), registry names (``"resnet18"``) or registry
            families (``"resnet"``); a non-empty list. The policy's order is kept.
        seed: seeds the returned model's initialisation.
        progress: show a progress bar (tqdm, on stderr) while searching.
        n_edges: node classification only: edges in the graph (default 10 per node).
        train_budget_s: seconds of training the user can spend (None: no bound). Only models
            whose estimated time per epoch (:mod:`zoo.factory.train_time`) times the epochs they
            need fit in it are kept.
        epochs: the epochs the model must get within ``train_budget_s`` (default: what
            learn.json says a model that learns needed, :func:`zoo.factory.policy.epochs_needed`).
        devices, strategy: data-parallel training on ``devices`` devices under ``"ddp"`` or
            ``"fsdp"`` (FSDP2): ``vram_gb`` is then per device and ``batch_size`` global, split
            across the devices (:mod:`zoo.factory.device_budget`); the spec states both.

    Returns a real model in train mode with ``model.spec`` (:class:`zoo.factory.spec.ModelSpec`).
    Raises ``ValueError`` naming a bad argument (before any work) and :class:`zoo.BudgetError`
    when nothing fits (also when even the memory floor of the smallest candidate -- weights,
    optimizer state, one batch of inputs -- exceeds ``vram_gb``: nothing that large is allocated).
    """
    t0 = time.perf_counter()
    seed = validation.seed("seed", seed)
    progress = validation.boolean("progress", progress)
    problem = Problem.from_arguments(task, n_samples, vram_gb, latency_ms, input_shape=input_shape,
                                     num_classes=num_classes, batch_size=batch_size,
                                     optimizer=optimizer, dtype=dtype, device=device,
                                     families=families, n_edges=n_edges,
                                     train_budget_s=train_budget_s, epochs=epochs,
                                     devices=devices, strategy=strategy)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"zoo build {task}", unit="step", file=sys.stderr, leave=False)

    def report(msg: str) -> None:
        if bar is not None:
            bar.set_postfix_str(msg[:60])
            bar.update(1)

    try:
        _check_train_budget(problem)
        result = search.search(problem, problem.candidates, progress=report)
        chosen = result.chosen
        if chosen.memory is None:  # cost the winner in full for the record
            search.CandidateSearch(problem, policy.CANDIDATES[chosen.candidate], [],
                                   report).memory(chosen)
        flops = count_cache.flops(chosen.config, problem.input_kwargs)
    finally:
        if bar is not None:
            bar.close()
    _check_weights_fit(chosen.config, problem)
    torch.manual_seed(seed)
    model = zoo.from_config(chosen.config, device=problem.device, dtype=torch_dtype(problem.dtype))
    model.train()
    result.evidence = evidence_reasons(problem, chosen)
    model.spec = ModelSpec.from_search(problem, result, flops=flops,
                                       seconds=time.perf_counter() - t0)
    _training_time(model.spec, problem, chosen, flops)
    device_budget.record(model.spec, problem)
    return model


def _check_train_budget(problem: Problem) -> None:
    """BudgetError naming ``train_budget_s`` when no candidate's smallest model gets the epochs it
    needs within it (times a few real steps of each candidate's smallest model)."""
    if problem.train_budget_s is None:
        return
    from . import train_time
    from .budget_errors import round_up

    need = {}
    for key in problem.candidates:
        path = search.candidate_path(problem, policy.CANDIDATES[key])
        flops = count_cache.flops(path[0].config, problem.input_kwargs)
        need[key] = train_time.estimate(problem, path[0].config, flops,
                                        path=[p.config for p in path]) * problem.epochs_needed
    key = min(need, key=need.get)
    if need[key] > problem.train_budget_s:
        would = round_up(need[key])
        raise BudgetError(
            f"train_budget_s={problem.train_budget_s:g}: the fastest candidate ({key}, smallest "
            f"model) needs ~{need[key]:.3g} s for the {problem.epochs_needed} epochs it needs "
            f"(estimated here: timed steps, FLOPs); train_budget_s >= {would:g} would work, or "
            f"fewer epochs", budget="train_budget_s", would_work=would)


def _training_time(spec: ModelSpec, problem: Problem, chosen, flops: int) -> None:
    """The chosen model's estimated seconds per epoch and the epochs ``train_budget_s`` allows,
    into ``spec.budgets`` (estimated only when a budget or ``epochs`` was given: it times a few
    real steps)."""
    if problem.train_budget_s is None and problem.epochs is None:
        return
    from . import train_time

    path = search.candidate_path(problem, policy.CANDIDATES[chosen.candidate])
    s = train_time.estimate(problem, chosen.config, flops, path=[p.config for p in path])
    spec.budgets["seconds_per_epoch"] = round(s, 4)
    spec.budgets["epochs_needed"] = problem.epochs_needed
    if problem.train_budget_s is not None:
        spec.budgets["epochs_allowed"] = int(problem.train_budget_s // s)
        spec.reasons.append(f"training budget {problem.train_budget_s:g} s: ~{s:.3g} s per epoch "
                            f"here (timed steps, FLOPs), {int(problem.train_budget_s // s):,} "
                            f"epochs allowed; {problem.epochs_needed} needed")


def evidence_reasons(problem: Problem, chosen) -> list[str]:
    """What learn.json says at this data size for this kind (the nearest measured n)."""
    rows = policy.evidence_rows(problem.task.input_kind)
    if not rows:
        return [f"no learn.json evidence for {problem.task.input_kind} inputs: the seed's rules"]
    n = problem.n_samples
    near = sorted(rows, key=lambda r: abs(math.log(r["n"] / n)))[:3]
    lo, hi = min(r["n"] for r in rows), max(r["n"] for r in rows)
    if not lo / 2 <= n <= 2 * hi:  # beyond a factor 2 of what was measured: no row speaks for n
        r = near[0]
        return [f"learn.json measured {problem.task.input_kind} data at n={lo:,}-{hi:,} only; "
                f"at n={n:,} the seed's rules decide (nearest row: {r['dataset']} at "
                f"n={r['n']:,}, best {r['best']})"]
    out = []
    for r in near:
        text = (f"learn.json, {r['dataset']} at n={r['n']:,}: best {r['best']} "
                f"({r['best_params']:,} parameters, {r['best_score']:g} points)")
        if r.get("larger_worse"):
            text += f"; larger, > 2 points lower: {', '.join(r['larger_worse'])}"
        if r.get("larger_within"):
            text += f"; larger, within 2: {', '.join(r['larger_within'])}"
        out.append(text)
    return out


def _check_weights_fit(config: dict, problem: Problem) -> None:
    """Refuse, before allocating, a model whose weights alone exceed the memory this machine has
    available (possible only without a ``vram_gb`` budget)."""
    need = weight_bytes(config, problem.dtype)
    have = available_memory_bytes() if problem.device == "cpu" else None
    if have is not None and need > have:
        raise BudgetError(
            f"vram_gb={problem.vram_gb}: the chosen model ({config['name']}) holds "
            f"{need / 1e9:.3g} GB of weights, more than the {have / 1e9:.3g} GB this machine has "
            f"available; a vram_gb budget makes the search choose a smaller one",
            budget="vram_gb", would_work=None)


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
