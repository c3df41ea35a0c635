"""``zoo-bench memory``: the training-memory estimate against the measured peak, per case.

For each case (every family at two sizes; ``tests/factory/test_memory.py`` checks the same :data:`CASES`)
the estimate of :func:`zoo.factory.estimate_training_memory` beside the peak measured by real
training steps in a fresh process (:func:`zoo.factory.measure_training_memory`): on CPU the growth of
the peak resident set plus the weights held before; with ``--device cuda``,
``torch.cuda.max_memory_allocated``. Measurements are median [min-max] over ``--repeats``.

Estimate time per case: ``trace s``, the estimate made from scratch (a trace, written to a fresh
cache folder of this run), and ``cached s``, the same estimate read back from that folder with the
in-process cache cleared (what a second build in a new process pays).

``--trace-cost`` prints instead what one fake-tensor trace of a training step costs at growing
batch sizes (:data:`TRACE_COST_CASES`): nothing is computed on fake tensors, so the cost is the
number of ops dispatched, not the batch or the resolution -- which is why the factory caches traces
across processes rather than tracing at a small batch and scaling.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import zoo
from zoo.factory.memprobe import measure_training_memory
from zoo.factory.train_step import MiB
from zoo.factory import training_memory
from zoo.factory.training_memory import estimate_training_memory
from zoo.factory.timing import runtime_info

from .report import print_header, print_table, progress, write_json

CASES = [  # (registry name, constructor arguments, batch size, example-input arguments)
    ("linear", dict(in_features=20000, num_classes=1000), 64, None),
    ("linear", dict(in_features=8000, num_classes=1000), 512, None),
    ("mlp", dict(in_features=2000, hidden=4096, depth=3, num_classes=100), 64, None),
    ("mlp", dict(in_features=1000, hidden=2048, depth=2, num_classes=10), 256, None),
    ("resnet18", dict(num_classes=10, img_size=32), 64, None),
    ("resnet18", dict(num_classes=10, img_size=32, width_mult=0.5), 256, None),
    ("resnet50", dict(num_classes=10, img_size=32), 32, None),
    ("resnet50", dict(num_classes=10, img_size=32, width_mult=0.5), 64, None),
    ("seresnet18", dict(num_classes=10, img_size=32), 64, None),
    ("seresnet50", dict(num_classes=10, img_size=32, width_mult=0.5), 64, None),
    ("mobilenetv2", dict(num_classes=10, img_size=32), 64, None),
    ("mobilenetv2", dict(num_classes=10, img_size=64, width_mult=0.5), 32, None),
    ("inception", dict(num_classes=10, img_size=64), 16, None),
    ("inception", dict(num_classes=10, img_size=64, width_mult=0.5), 32, None),
    ("lstm", dict(in_features=8, seq_len=30, num_classes=5, hidden=512, layers=2), 128, None),
    ("lstm", dict(in_features=8, seq_len=30, num_classes=5, hidden=256, layers=2), 256, None),
    ("transformer", dict(in_features=8, seq_len=128, num_classes=5), 32, None),
    ("transformer", dict(in_features=8, seq_len=256, num_classes=5), 32, None),
    ("tcn", dict(in_features=8, seq_len=500, num_classes=5), 64, None),
    ("tcn", dict(in_features=8, seq_len=256, num_classes=5, width_mult=0.5), 128, None),
    ("gcn", dict(in_features=128, num_classes=5, hidden=256, num_nodes=20000), 1,
     {"num_nodes": 20000, "num_edges": 200000}),
    ("gcn", dict(in_features=256, num_classes=10, hidden=512, num_nodes=50000), 1,
     {"num_nodes": 50000, "num_edges": 500000}),
]
LARGE_CASES = [  # bigger steps (seconds to a minute each on 2 cores): --large
    ("resnet50", dict(num_classes=1000, img_size=224), 16, None),
    ("mobilenetv2", dict(num_classes=100, img_size=160), 32, None),
    ("transformer", dict(in_features=8, seq_len=128, num_classes=5, d_model=256), 64, None),
    ("lstm", dict(in_features=16, seq_len=60, num_classes=5, hidden=1024, layers=2), 64, None),
]


TRACE_COST_CASES = [("mobilenetv2", dict(num_classes=1000)), ("resnet50", dict(num_classes=1000)),
                    ("transformer", dict(in_features=16, seq_len=512, num_classes=10))]
TRACE_COST_BATCHES = (1, 16, 256)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu: resident-set peak; cuda: torch.cuda.max_memory_allocated")
    parser.add_argument("--repeats", type=int, default=1, help="measurements per case")
    parser.add_argument("--parallel", type=int, default=2,
                        help="probe subprocesses at a time (CPU; CUDA runs one at a time)")
    parser.add_argument("--large", action="store_true", help="add larger cases")
    parser.add_argument("--only", default=None, help="comma-separated registry names")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    parser.add_argument("--trace-cost", action="store_true",
                        help="only time one fake-tensor trace per batch size (1, 16, 256) for a "
                             "few models: the trace costs the same at every batch")


def _describe(kw: dict, bs: int, ik: dict | None) -> str:
    parts = [f"{k}={v}" for k, v in kw.items() if k not in ("num_classes",)]
    parts.append(f"batch={bs}")
    if ik:
        parts.append(f"edges={ik.get('num_edges')}")
    return " ".join(parts)


def _timed_estimates(cfg: dict, **kw):
    """The estimate from scratch and read back from the (fresh) cache, with their seconds."""
    training_memory._MEMORY_CACHE.clear()
    t0 = time.perf_counter()
    est = estimate_training_memory(cfg, **kw)
    t1 = time.perf_counter()
    training_memory._MEMORY_CACHE.clear()
    again = estimate_training_memory(cfg, **kw)
    t2 = time.perf_counter()
    if again.to_dict() != est.to_dict():
        raise RuntimeError(f"the cached estimate differs from the traced one for {cfg}")
    return est, t1 - t0, t2 - t1


def _trace_cost(args: argparse.Namespace) -> int:
    import torch

    from zoo.factory.search import config_for
    from zoo.factory.step_trace import fake_trace

    info = runtime_info("cpu")
    print_header("memory --trace-cost", info)
    rows = []
    for name, kw in TRACE_COST_CASES:
        cfg = config_for(name, **kw)
        row = {"model": " ".join([name, *(f"{k}={v}" for k, v in cfg.items()
                                          if k in ("img_size", "seq_len", "in_features"))])}
        for b in TRACE_COST_BATCHES:
            seconds = []
            for _ in range(4):   # the first, warming the dispatcher's caches, is dropped
                t = time.perf_counter()
                trace = fake_trace(cfg, batch_size=b, optimizer="adam", dtype=torch.float32,
                                   loss="cross_entropy", input_kwargs=None, workspaces=True)
                seconds.append(time.perf_counter() - t)
            row[f"b{b}"] = statistics.median(seconds[1:])
            row["events"] = len(trace.events)
        rows.append(row)
    print_table(rows, [("model", "model"), ("events", "trace events"),
                       *((f"b{b}", f"batch {b} s", lambda v: f"{v:.2f}") for b in TRACE_COST_BATCHES)])
    if args.json:
        write_json(args.json, "memory-trace-cost", info, vars(args), rows)
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "trace_cost", False):
        return _trace_cost(args)
    saved = os.environ.get("ZOO_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="zoo-bench-memory-") as folder:
        os.environ["ZOO_CACHE_DIR"] = folder  # a fresh cache: every case is traced once
        try:
            return _run(args)
        finally:
            if saved is None:
                os.environ.pop("ZOO_CACHE_DIR", None)
            else:
                os.environ["ZOO_CACHE_DIR"] = saved


def _run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.parallel < 1:
        raise ValueError(f"--repeats={args.repeats} / --parallel={args.parallel} are not accepted: "
                         f"expected integers >= 1")
    info = runtime_info(args.device)
    print_header("memory", info)
    cases = CASES + (LARGE_CASES if args.large else [])
    if args.only:
        keep = {n.strip() for n in args.only.split(",")}
        cases = [c for c in cases if c[0] in keep]
        if not cases:
            raise ValueError(f"--only={args.only!r} is not accepted: expected registry names among "
                             f"{sorted({c[0] for c in CASES + LARGE_CASES})}")
    configs = [(name, zoo.create(name, device="meta", **kw).config, kw, bs, ik)
               for name, kw, bs, ik in cases]
    workers = args.parallel if args.device == "cpu" else 1
    rows, results = [], []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [[pool.submit(measure_training_memory, cfg, batch_size=bs, input_kwargs=ik,
                                optimizer=args.optimizer, device=args.device)
                    for _ in range(args.repeats)] for _, cfg, _, bs, ik in configs]
        for (name, cfg, kw, bs, ik), futs in progress(list(zip(configs, futures)), desc="memory"):
            est, t_trace, t_cached = _timed_estimates(cfg, batch_size=bs, input_kwargs=ik,
                                                      optimizer=args.optimizer,
                                                      device=args.device)
            peaks = [f.result().peak for f in futs]
            med = statistics.median(peaks)
            # cuda: the measured peak is max_memory_allocated, so the estimate's allocated part
            mine = est.allocated if args.device == "cuda" else est.total
            err = 100 * (mine / med - 1)
            fam = zoo.get_entry(name).family
            rows.append({"family": fam, "model": name, "size": _describe(kw, bs, ik),
                         "estimate": mine / MiB, "measured": statistics.median(peaks) / MiB,
                         "range": f"[{min(peaks) / MiB:.0f}-{max(peaks) / MiB:.0f}]",
                         "error": err, "trace": est.trace, "trace_s": t_trace,
                         "cached_s": t_cached})
            results.append({"family": fam, "model": name, "config": cfg, "batch_size": bs,
                            "input_kwargs": ik, "estimate": est.to_dict(),
                            "measured_bytes": peaks, "error_percent": err,
                            "estimate_seconds": {"trace": t_trace, "cached": t_cached}})
    fmt_mib = lambda v: f"{v:,.1f}"  # noqa: E731
    print_table(rows, [("family", "family"), ("model", "model"), ("size", "size"),
                       ("estimate", "estimate MiB", fmt_mib), ("measured", "measured MiB", fmt_mib),
                       ("range", "[min-max]"), ("error", "error %", lambda v: f"{v:+.1f}"),
                       ("trace", "trace"), ("trace_s", "trace s", lambda v: f"{v:.2f}"),
                       ("cached_s", "cached s", lambda v: f"{v:.3f}")])
    worst = max(abs(r["error"]) for r in rows)
    print(f"{len(rows)} cases, worst error {worst:.1f} %, {args.repeats} measurement(s) each, "
          f"{time.perf_counter() - t0:.0f} s; estimates {sum(r['trace_s'] for r in rows):.1f} s "
          f"traced, {sum(r['cached_s'] for r in rows):.2f} s read back from the cache")
    if args.json:
        write_json(args.json, "memory", info, vars(args), results)
    return 0
