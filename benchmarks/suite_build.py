"""``zoo-bench build``: how long ``zoo build`` takes on the policy's examples, each from a cold
start (a fresh process: imports, tracing, exports and timings included), and what it chose.

Goals on the project's 2-core machine: the 32x32 image example under 20 s, a tabular build under
3 s. Reported as median [min-max] over ``--repeats``, with the number of ONNX exports.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from zoo.factory.timing import runtime_info

from .report import print_header, print_table, progress, write_json

EXAMPLES = {
    "tabular-300": ("tabular-classification", 300, 1, 10, dict(input_shape=(12,), num_classes=2)),
    "tabular-60k": ("tabular-classification", 60_000, 1, 10, dict(input_shape=(40,), num_classes=5)),
    "image-32px": ("image-classification", 50_000, 8, 30,
                   dict(input_shape=(3, 32, 32), num_classes=10)),
    "image-224px-8ms": ("image-classification", 1_000_000, 40, 8,
                        dict(input_shape=(3, 224, 224), num_classes=1000)),
    "sequence-short": ("sequence-classification", 20_000, 4, 10,
                       dict(input_shape=(30, 8), num_classes=3)),
    "sequence-long": ("sequence-classification", 500_000, 16, None,
                      dict(input_shape=(2000, 8), num_classes=3, batch_size=8)),
    "graph-20k": ("node-classification", 20_000, 4, None,
                  dict(input_shape=(20_000, 128), num_classes=7)),
}
DEFAULT = ("tabular-300", "tabular-60k", "image-32px", "sequence-short", "graph-20k")

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import zoo
task, n, vram, lat, kw = json.loads(sys.argv[1])
kw = {k: tuple(v) if k == "input_shape" else v for k, v in kw.items()}
m = zoo.build(task, n, vram, lat, **kw)
s = m.spec
print(json.dumps({"seconds": time.perf_counter() - t0, "search_seconds": s.search["seconds"],
                  "candidate": s.candidate, "registry": s.registry_name, "params": s.params,
                  "width_mult": s.width_mult, "depth_mult": s.depth_mult,
                  "measured": s.search["measured"], "costed": s.search["costed"],
                  "latency_ms": (s.latency or {}).get("median_ms"),
                  "memory_gb": s.memory["total"] / 1e9}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", default=",".join(DEFAULT),
                        help=f"comma-separated, of: {', '.join(EXAMPLES)} (or 'all')")
    parser.add_argument("--repeats", type=int, default=1, help="cold builds per example")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")


def _figure(samples: list[float]) -> dict:
    ms = [1000 * s for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "runs": len(ms)}


def run(args: argparse.Namespace) -> int:
    names = list(EXAMPLES) if args.examples == "all" else \
        [e.strip() for e in args.examples.split(",") if e.strip()]
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown or args.repeats < 1:
        raise ValueError(f"--examples={args.examples!r} / --repeats={args.repeats} are not "
                         f"accepted: expected names among {', '.join(EXAMPLES)} and repeats >= 1")
    info = runtime_info("cpu")
    print_header("build", info)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    rows, results = [], []
    for name in progress(names, desc="build"):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(EXAMPLES[name])],
                                  capture_output=True, text=True, env=env)
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"zoo build {name} failed: {proc.stderr[-2000:]}")
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            out["wall_seconds"] = wall
            runs.append(out)
        last = runs[-1]
        row = {"example": name, "wall": _figure([r["wall_seconds"] for r in runs]),
               "search": _figure([r["search_seconds"] for r in runs]),
               "chosen": f"{last['registry']} w{last['width_mult']:g} d{last['depth_mult']:g}",
               "params": last["params"], "exports": last["measured"], "costed": last["costed"]}
        rows.append(row)
        results.append({"example": name, "args": EXAMPLES[name], "runs": runs})
    sec = lambda f: f"{f['median_ms'] / 1000:.1f} [{f['min_ms'] / 1000:.1f}-{f['max_ms'] / 1000:.1f}]"  # noqa: E731
    print_table(rows, [("example", "example"), ("wall", "cold wall s", sec),
                       ("search", "build() s", sec), ("chosen", "chosen"), ("params", "params"),
                       ("exports", "exports"), ("costed", "costed")])
    if args.json:
        write_json(args.json, "build", info, vars(args), results)
    return 0
