"""``zoo-bench distributed``: per-device training memory under DDP and FSDP2, estimated and measured.

For each case, :func:`zoo.factory.distributed_memory.estimate_per_device_memory` at 1, 2, 4, 8, 64
and 512 devices under ``ddp`` and ``fsdp`` (a fake process group: any world size on one CPU), term
by term: parameters, gradients, optimizer state, activations, DDP buckets, FSDP's unsharded units
and communication buffers, heap slack. Beside the 2- and 4-device estimates, the peaks measured by
real Gloo runs on this machine (:func:`zoo.factory.distributed_probe.launch`; each rank's
resident-set growth, the worst rank of ``--repeats`` runs shown with the range over ranks and
runs). ``batch`` is the GLOBAL batch; each rank trains on batch / N (at least 1).

After the table, the FSDP2 runs' largest error for other values of
:data:`zoo.factory.distributed_memory.FSDP_CPU_UNIT_FACTOR` (the one fitted term of the CPU FSDP
estimate): the figure it was fitted by. ``--glibc-dynamic`` measures FSDP2 without the fixed mmap
threshold :func:`zoo.shard` sets, to show what that fix changes.
"""
from __future__ import annotations

import argparse
import time

import zoo
from zoo import validation
from zoo.factory.distributed_memory import (FSDP_CPU_UNIT_FACTOR, estimate_per_device_memory,
                                            fsdp_unit_bytes)
from zoo.factory.distributed_probe import launch
from zoo.factory.timing import runtime_info

from .report import print_header, print_table, progress, write_json

MiB = 1024 ** 2
CASES = [  # (input kind, config arguments, global batch): one model of each input kind
    ("tabular", dict(name="mlp", in_features=256, hidden=1024, depth=3, num_classes=10), 256),
    ("image", dict(name="resnet18", width_mult=0.25, img_size=64, num_classes=10), 32),
    ("sequence", dict(name="transformer", d_model=128, depth=2, seq_len=64, num_classes=10), 128),
    ("graph", dict(name="gcn", in_features=128, hidden=256, layers=2, num_nodes=20000,
                   num_classes=5), 2),
]
DEVICES = (1, 2, 4, 8, 64, 512)
MEASURED = (2, 4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-measure", action="store_true",
                        help="estimates only (no Gloo runs)")
    parser.add_argument("--only", default=None, help="comma-separated input kinds or model names")
    parser.add_argument("--repeats", type=int, default=1, metavar="K",
                        help="Gloo runs per measured case (the worst rank over all of them counts)")
    parser.add_argument("--glibc-dynamic", action="store_true",
                        help="FSDP2 runs without zoo.shard's fixed glibc mmap threshold")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")


def _select(only: str | None):
    if not only:
        return CASES
    keep = {s.strip() for s in only.split(",")}
    cases = [c for c in CASES if c[0] in keep or c[1]["name"] in keep]
    if not cases:
        raise ValueError(f"--only={only!r} is not accepted: expected input kinds or names among "
                         f"{sorted({c[0] for c in CASES} | {c[1]['name'] for c in CASES})}")
    return cases


UNIT_FACTORS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0)


def unit_factor_sweep(results: list[dict]) -> dict[float, float]:
    """Largest |error| % of the measured FSDP2 runs' worst rank, per :data:`UNIT_FACTORS` value of
    ``FSDP_CPU_UNIT_FACTOR`` (each estimate recomputed with that factor)."""
    fsdp = [r for r in results if r["strategy"] == "fsdp" and r["measured_runs"]]
    out = {}
    for f in UNIT_FACTORS:
        errs = [abs(100 * ((r["estimate"]["total"] + (f - FSDP_CPU_UNIT_FACTOR) * r["unit_bytes"])
                           / max(run) - 1)) for r in fsdp for run in r["measured_runs"]]
        if errs:
            out[f] = max(errs)
    return out


def run(args: argparse.Namespace) -> int:
    repeats = validation.positive_int("--repeats", args.repeats)
    info = runtime_info("cpu")
    print_header("distributed", info)
    rows, results = [], []
    t0 = time.perf_counter()
    for kind, kw, batch in progress(_select(args.only), desc="distributed"):
        kw = dict(kw)
        config = zoo.create(kw.pop("name"), device="meta", **kw).config
        for strategy in ("ddp", "fsdp"):
            for n in DEVICES:
                t = time.perf_counter()
                est = estimate_per_device_memory(config, batch_size=batch, devices=n,
                                                 strategy=strategy)
                seconds = time.perf_counter() - t
                measured, runs = None, []
                if n in MEASURED and not args.no_measure:
                    for _ in range(repeats):
                        out = launch(dict(mode="memory", config=config, batch_size=batch, steps=2,
                                          strategy=strategy, glibc_dynamic=args.glibc_dynamic),
                                     nproc=n)
                        runs.append([r["peak"] for r in out["ranks"]])
                    measured = [p for run in runs for p in run]
                row = {"kind": kind, "model": config["name"], "strategy": strategy, "devices": n,
                       "batch": f"{batch}/{est.local_batch}", "params": est.params / MiB,
                       "grads": est.gradients / MiB, "optim": est.optimizer_state / MiB,
                       "acts": est.activations / MiB,
                       "buffers": (est.buckets + est.unsharded + est.comm_buffers) / MiB,
                       "heap": est.allocator / MiB, "total": est.total / MiB,
                       "seconds": seconds}
                if measured:
                    row["measured"] = max(measured) / MiB
                    row["range"] = f"[{min(measured) / MiB:.0f}-{max(measured) / MiB:.0f}]"
                    row["error"] = 100 * (est.total / max(measured) - 1)
                rows.append(row)
                results.append({"kind": kind, "config": config, "batch_size": batch,
                                "strategy": strategy, "devices": n, "estimate": est.to_dict(),
                                "estimate_seconds": seconds, "measured_bytes": measured,
                                "measured_runs": runs, "unit_bytes": sum(fsdp_unit_bytes(config))})
    mib = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
    print_table(rows, [("model", "model"), ("strategy", "strategy"), ("devices", "N"),
                       ("batch", "batch/rank"), ("params", "params", mib),
                       ("grads", "grads", mib), ("optim", "optim", mib),
                       ("acts", "acts", mib), ("buffers", "buckets+unsharded+comm", mib),
                       ("heap", "heap", mib), ("total", "estimate MiB", mib),
                       ("measured", "measured MiB (worst rank)", mib), ("range", "[ranks]"),
                       ("error", "error %", lambda v: "-" if v is None else f"{v:+.1f}"),
                       ("seconds", "est s", lambda v: f"{v:.1f}")])
    errors = [abs(r["error"]) for r in rows if r.get("error") is not None]
    if errors:
        print(f"{len(errors)} measured cases (Gloo, worst rank of {repeats} run(s)), worst error "
              f"{max(errors):.1f} %" + (" -- FSDP2 with glibc's dynamic mmap threshold"
                                          if args.glibc_dynamic else ""))
    sweep = unit_factor_sweep(results)
    if sweep and not args.glibc_dynamic:
        print(f"FSDP2 runs' largest error by FSDP_CPU_UNIT_FACTOR (now {FSDP_CPU_UNIT_FACTOR:g}): "
              + ", ".join(f"{f:g}: {e:.1f} %" for f, e in sweep.items()))
    print(f"{len(rows)} estimates, {time.perf_counter() - t0:.0f} s")
    if args.json:
        write_json(args.json, "distributed", info, vars(args), results)
    return 0
