"""``build(task, n_samples, vram_gb, latency_ms)``: the right model for a task, data and machine.

The policy (:mod:`zoo.factory.policy`) names the families whose inductive bias fits the task and caps
capacity by the data size; the search (:mod:`zoo.factory.search`) finds the largest model of those
families that trains within ``vram_gb`` and runs within ``latency_ms``; the result is a real,
seeded model in train mode carrying ``model.spec`` (:class:`zoo.factory.spec.ModelSpec`).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Iterable

import torch
import torch.nn as nn

import zoo

from . import estimators, policy, search
from .spec import ModelSpec

DEVICES = ("cpu", "cuda")


def _bad(name: str, value, accepted: str) -> ValueError:
    return ValueError(f"{name}={value!r} is not accepted: expected {accepted}")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(name, value, f"an integer >= {minimum}")
    return value


def _budget(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise _bad(name, value, "a finite number > 0, or None for no bound")
    return float(value)


def _shape(task: policy.Task, input_shape) -> tuple[int, ...]:
    kind = task.input_kind
    if input_shape is None:
        if kind == "image":
            return policy.DEFAULT_IMAGE_SHAPE
        raise _bad("input_shape", None, f"{task.shape_doc} for {task.name}")
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise _bad("input_shape", input_shape, f"{task.shape_doc} for {task.name}") from None
    rank = {"tabular": 1, "image": 3, "sequence": 2, "graph": 2}[kind]
    if len(shape) != rank or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                 for v in shape):
        raise _bad("input_shape", input_shape,
                   f"{task.shape_doc} of positive integers for {task.name}")
    if kind == "image" and min(shape[1:]) < 8:
        raise _bad("input_shape", input_shape, "images of at least 8 x 8 pixels")
    return shape


def _families(requested, kind: str, allowed: list[str], n_samples: int) -> list[str]:
    """Policy family keys for ``requested`` names (keys, registry names or registry families)."""
    if isinstance(requested, str) or not isinstance(requested, Iterable):
        raise _bad("families", requested, "a list of names, e.g. ['mobilenetv2']")
    requested = list(requested)
    here = [k for k, f in policy.FAMILIES.items() if zoo.get_entry(f.registry).input_kind == kind]
    names = sorted(set(here) | {policy.FAMILIES[k].registry for k in here}
                   | {zoo.get_entry(policy.FAMILIES[k].registry).family for k in here})
    keys: list[str] = []
    for name in requested:
        match = [k for k in here if name in (k, policy.FAMILIES[k].registry,
                                             zoo.get_entry(policy.FAMILIES[k].registry).family)]
        if not match:
            raise _bad("families", requested,
                       f"names of {kind} families: {', '.join(names)}")
        keys += [k for k in match if k not in keys]
    if "transformer" in keys and n_samples < policy.TRANSFORMER_MIN_SAMPLES:
        raise _bad("families", requested,
                   f"no transformer on {n_samples:,} samples: the policy never builds one on fewer "
                   f"than {policy.TRANSFORMER_MIN_SAMPLES:,} (its weak inductive bias needs data)")
    # The policy's preference order first, then the rest in the order asked.
    return [k for k in allowed if k in keys] + [k for k in keys if k not in allowed]


def build(task: str, n_samples: int, vram_gb: float | None, latency_ms: float | None, *,
          input_shape=None, num_classes: int | None = None, batch_size: int | None = None,
          optimizer: str = "adam", dtype: str = "float32", device: str = "cpu",
          families=None, seed: int = 0, progress: bool = False,
          n_edges: int | None = None) -> nn.Module:
    """The largest model whose inductive bias fits ``task`` that the data supports, that trains in
    ``vram_gb`` and answers in ``latency_ms``.

    Args:
        task: one of :data:`zoo.factory.policy.TASKS` (``"image-classification"``, ...).
        n_samples: training samples (rows, images, sequences; nodes for node classification).
        vram_gb: training memory at ``batch_size`` with ``optimizer`` (GB of 1e9 bytes; on CPU the
            process's resident memory), or None for no bound.
        latency_ms: median inference latency of the ONNX export at batch 1 in ONNX Runtime on this
            machine (CUDA provider with ``device="cuda"`` when available), or None.
        input_shape: tabular ``(n_features,)``; image ``(C, H, W)`` (default ``(3, 224, 224)``);
            sequence ``(seq_len, n_features)``; node ``(n_nodes, n_features)``.
        num_classes: required for classification (>= 2); regression predicts 1 value.
        batch_size: training batch for the memory budget (default per task; graphs: whole graph).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, ``"sgd-momentum"``.
        dtype, device: of the training (memory) and of the returned model.
        families: restrict the candidates to these (family keys, registry names or family
            names, e.g. ``["mobilenetv2"]``); the policy's order is kept.
        seed: seeds the returned model's initialisation.
        progress: show a progress bar (tqdm, on stderr) while searching.
        n_edges: node classification only: edges in the graph (default 10 per node).

    Returns a real model in train mode with ``model.spec`` (:class:`zoo.factory.spec.ModelSpec`).
    Raises ``ValueError`` for a bad argument and :class:`zoo.BudgetError` when nothing fits.
    """
    t0 = time.perf_counter()
    if task not in policy.TASKS:
        raise _bad("task", task, f"one of {', '.join(policy.TASKS)}")
    spec_task = policy.TASKS[task]
    kind = spec_task.input_kind
    n_samples = _positive_int("n_samples", n_samples)
    vram = _budget("vram_gb", vram_gb)
    latency = _budget("latency_ms", latency_ms)
    shape = _shape(spec_task, input_shape)
    if spec_task.classification:
        if num_classes is None:
            raise _bad("num_classes", num_classes, f"an integer >= 2 for {task}")
        _positive_int("num_classes", num_classes, 2)
    elif num_classes not in (None, 1):
        raise _bad("num_classes", num_classes, f"None or 1 for {task} (one predicted value)")
    else:
        num_classes = 1
    if batch_size is None:
        batch_size = spec_task.default_batch
    _positive_int("batch_size", batch_size)
    if kind == "graph" and batch_size != 1:
        raise _bad("batch_size", batch_size, "1 (or None) for node classification: a step trains "
                   "on the whole graph")
    estimators.check_choice("optimizer", optimizer, estimators.OPTIMIZERS)
    estimators.check_choice("dtype", dtype, estimators.DTYPES)
    estimators.check_choice("device", device, DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise _bad("device", device, "'cpu' (torch sees no CUDA device here)")
    _positive_int("seed", seed, 0)
    input_kwargs = None
    if kind == "graph":
        edges = policy.DEFAULT_EDGES_PER_NODE * shape[0] if n_edges is None else n_edges
        _positive_int("n_edges", edges, 0)
        input_kwargs = {"num_nodes": shape[0], "num_edges": edges}
    elif n_edges is not None:
        raise _bad("n_edges", n_edges, f"None for {task} (edges describe graphs only)")
    provider = "cpu"
    if device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            provider = "cuda"

    seq_len = shape[0] if kind == "sequence" else None
    img_size = min(shape[1:]) if kind == "image" else None
    allowed, fired = policy.candidate_families(kind, n_samples=n_samples, seq_len=seq_len,
                                               img_size=img_size, latency_ms=latency)
    candidates = allowed if families is None else _families(families, kind, allowed, n_samples)
    problem = search.Problem(task=spec_task, n_samples=n_samples, input_shape=shape,
                             num_classes=num_classes, batch_size=batch_size, optimizer=optimizer,
                             dtype=dtype, device=device, vram_gb=vram, latency_ms=latency,
                             input_kwargs=input_kwargs, provider=provider)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"zoo build {task}", unit="step", file=sys.stderr, leave=False)

    def report(msg: str) -> None:
        if bar is not None:
            bar.set_postfix_str(msg[:60])
            bar.update(1)

    try:
        result = search.search(problem, candidates, progress=report)
        chosen = result.chosen
        fam = policy.FAMILIES[chosen.family]
        if chosen.memory is None:  # cost the winner in full for the record
            search.FamilySearch(problem, fam, [], report).memory(chosen)
        flops = estimators.count_flops(chosen.config, input_kwargs=input_kwargs)
    finally:
        if bar is not None:
            bar.close()

    torch.manual_seed(seed)
    model = zoo.from_config(chosen.config, device=device, dtype=estimators.torch_dtype(dtype))
    model.train()
    from .timing import library_versions

    lat = chosen.latency.to_dict() if chosen.latency is not None else None
    if lat is not None:
        lat = {k: lat[k] for k in ("median_ms", "p90_ms", "min_ms", "max_ms", "mean_ms", "runs",
                                   "threads", "provider", "batch_size", "isolated")}
    reasons = list(result.reasons)
    if families is not None:
        reasons.insert(0, f"families={list(families)!r}: candidates restricted to "
                          f"{', '.join(candidates)}")
    if kind == "image" and shape[1] != shape[2]:
        reasons.insert(0, f"input {shape[1]}x{shape[2]} is not square: costed at "
                          f"{max(shape[1:])}x{max(shape[1:])} (the image models' img_size is one "
                          f"side; every one ends in a global pool and accepts any size)")
    if chosen.latency is None and chosen.latency_bound is None:
        reasons.append("no latency budget: latency not measured (zoo.export_onnx + "
                       "factory.latency.measure_latency measure it)")
    if device == "cuda" and provider == "cpu":
        reasons.insert(0, "device='cuda' but this onnxruntime has no CUDA provider: latency was "
                          "measured on the CPU provider")
    model.spec = ModelSpec(
        task=task, family=chosen.family, registry_name=chosen.config["name"],
        config=chosen.config, width_mult=chosen.width_mult, depth_mult=chosen.depth_mult,
        params=chosen.params, flops=flops, memory=chosen.memory.to_dict(), latency=lat,
        latency_bound_ms=chosen.latency_bound,
        budgets={"n_samples": n_samples, "vram_gb": vram, "latency_ms": latency,
                 "batch_size": batch_size, "optimizer": optimizer, "dtype": dtype,
                 "device": device, "provider": provider, "input_shape": list(shape),
                 "num_classes": num_classes, "n_edges": (input_kwargs or {}).get("num_edges"),
                 "latency_margin": search.LATENCY_MARGIN},
        data_cap=result.data_cap,
        candidates=[p.to_dict() for p in result.tried],
        rules=[{"name": r.name, "reason": r.reason} for r in fired],
        reasons=reasons,
        search={"measured": result.measured, "exported": result.exported,
                "costed": len(result.tried), "seconds": round(time.perf_counter() - t0, 3),
                "families": [{"family": o.family, "status": o.status, "reason": o.reason}
                             for o in result.outcomes]},
        versions=library_versions())
    return model

