"""``zoo-bench export``: how long ``zoo.export_onnx`` takes, per registered model and per data size.

Two tables, every export timed by ``time.perf_counter`` around :func:`zoo.export_onnx` (tracing,
translation, optimisation, checks and the atomic write included):

* **per model, default sizes** (registry defaults): each model in a fresh process, which reports
  its imports (torch and zoo; then, apart, the exporter's modules: onnx, onnxscript,
  ``torch.onnx``'s exporter and ``torch.export``), the *cold* export (the first in the process, paying the one-off warm-up of
  ``torch.export`` / onnxscript) and ``--runs`` *warm* exports after it. Goal: at most 5 s.
* **scaling**: the LSTM and the Transformer at ``--lengths`` steps (default 50, 200 and 2000), and
  the GCN at 256 and 1,000,000 edges (``num_nodes`` = edges / 4), all warm (one untimed export
  first), in one fresh process per model. Goal: the largest size within 2x of the smallest;
  printed as the ratio of medians, median [min-max] where the min/max pair the extreme runs.

Figures are seconds, median [min-max] over ``--runs``; ``--json`` holds them in ms (the suites'
convention). A model that fails gets an ``error`` and the exit status is 1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from zoo.factory.timing import runtime_info

from .report import fmt_count, print_header, print_table, progress, ratio, write_json

DEFAULT_LENGTHS = (50, 200, 2000)
SEQUENCE_MODELS = ("lstm", "transformer")
GCN_EDGES = (256, 1_000_000)
LIMIT_S, SCALING_LIMIT = 5.0, 2.0

_CHILD = """
import json, os, sys, tempfile, time
t0 = time.perf_counter()
import torch
import zoo
import zoo.onnx_export
imported = time.perf_counter() - t0
t0 = time.perf_counter()  # the exporter's own modules, which the first export would import lazily
import onnx, onnxscript, torch.export._trace, torch.onnx._internal.exporter._core
exporter_imported = time.perf_counter() - t0
name, sizes, runs, warm_first = json.loads(sys.argv[1])
out = {"import_s": imported, "exporter_import_s": exporter_imported, "sizes": []}
with tempfile.TemporaryDirectory(prefix="zoo-bench-export-") as tmp:
    path = os.path.join(tmp, "m.onnx")
    if warm_first:  # the one-off warm-up paid on a small model, outside the figures
        zoo.export_onnx(zoo.create("mlp").eval(), path)
    for overrides in sizes:
        torch.manual_seed(0)
        model = zoo.create(name, **overrides).eval()
        times = []
        for _ in range(runs + (0 if warm_first else 1)):
            start = time.perf_counter()
            zoo.export_onnx(model, path)
            times.append(time.perf_counter() - start)
        out["sizes"].append({"overrides": overrides, "seconds": times,
                             "params": sum(p.numel() for p in model.parameters()),
                             "bytes": os.path.getsize(path)})
print(json.dumps(out))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default=None, metavar="PATTERN",
                        help="shell-style pattern of registry names for the per-model table "
                             "(default: all)")
    parser.add_argument("--runs", type=int, default=3, metavar="N",
                        help="warm exports per figure (default 3)")
    parser.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)), metavar="T,T,..",
                        help="sequence lengths of the scaling table (default 50,200,2000)")
    parser.add_argument("--no-scaling", action="store_true",
                        help="skip the scaling table (the LSTM/Transformer lengths and GCN edges)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write every figure as JSON")


def _check(args) -> tuple[list[str], list[int]]:
    import zoo
    from zoo.validation import integer, positive_int

    positive_int("--runs", args.runs)
    parts = [t.strip() for t in args.lengths.split(",") if t.strip()]
    if not parts or not all(t.isdigit() for t in parts):
        raise ValueError(f"--lengths={args.lengths!r} is not accepted: expected comma-separated "
                         f"integers >= 2, e.g. 50,200,2000")
    lengths = sorted({integer("--lengths", int(t), minimum=2) for t in parts})
    names = zoo.list_models(args.filter)
    if not names:
        raise ValueError(f"--filter={args.filter!r} matches no model; registered: "
                         f"{', '.join(zoo.list_models())}")
    return names, lengths


def _child(name: str, sizes: list[dict], runs: int, warm_first: bool) -> dict:
    """Run :data:`_CHILD` in a fresh interpreter; its JSON answer, or ``{"error": ...}``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([name, sizes, runs, warm_first])],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _figure(seconds: list[float]) -> dict:
    ms = sorted(1000 * s for s in seconds)
    mid = len(ms) // 2
    median = ms[mid] if len(ms) % 2 else (ms[mid - 1] + ms[mid]) / 2
    return {"median_ms": median, "min_ms": ms[0], "max_ms": ms[-1], "runs": len(ms)}


def _sec(fig: dict | None) -> str:
    if fig is None:
        return "-"
    return f"{fig['median_ms'] / 1e3:.2f} [{fig['min_ms'] / 1e3:.2f}-{fig['max_ms'] / 1e3:.2f}]"


def _ratio(fig: dict | None) -> str:
    return "-" if fig is None else f"{fig['median']:.2f}x [{fig['min']:.2f}-{fig['max']:.2f}]"


def measure_models(names: list[str], runs: int) -> list[dict]:
    """Per model at its defaults: imports, the cold first export and ``runs`` warm ones."""
    import zoo

    rows = []
    for name in progress(names, desc="export: models"):
        out = _child(name, [{}], runs, warm_first=False)
        row = {"model": name, "family": zoo.get_entry(name).family}
        if "error" in out:
            rows.append({**row, "error": out["error"]})
            continue
        (size,) = out["sizes"]
        cold, warm = size["seconds"][0], size["seconds"][1:]
        rows.append({**row, "params": size["params"], "bytes": size["bytes"],
                     "import_s": out["import_s"], "exporter_import_s": out["exporter_import_s"],
                     "cold_s": cold, "warm": _figure(warm)})
    return rows


def scaling_cases(lengths: list[int]) -> list[tuple[str, str, list[int], list[dict]]]:
    """``(model, axis, sizes, overrides per size)`` of the scaling table."""
    cases = [(name, "steps", lengths, [{"seq_len": t} for t in lengths]) for name in SEQUENCE_MODELS]
    cases.append(("gcn", "edges", list(GCN_EDGES), [{"num_nodes": e // 4} for e in GCN_EDGES]))
    return cases


def measure_scaling(lengths: list[int], runs: int) -> list[dict]:
    """Warm export time per size; one row per (model, size), the ratio on the largest size's row."""
    rows = []
    for name, axis, sizes, overrides in progress(scaling_cases(lengths), desc="export: scaling"):
        out = _child(name, overrides, runs, warm_first=True)
        if "error" in out:
            rows.append({"model": name, "axis": axis, "size": None, "error": out["error"]})
            continue
        base = None
        for size, res in zip(sizes, out["sizes"]):
            fig = _figure(res["seconds"])
            base = base or fig
            rows.append({"model": name, "axis": axis, "size": size, "warm": fig,
                         "bytes": res["bytes"], "over_smallest": ratio(fig, base)})
    return rows


def run(args: argparse.Namespace) -> int:
    names, lengths = _check(args)
    info = runtime_info("cpu")
    print_header("export", info)
    load_start = os.getloadavg()
    print(f"zoo.export_onnx wall time, seconds, median [min-max] of {args.runs} warm runs; "
          f"'cold' = the first export in a fresh process (one-off warm-up included; imports "
          f"not: 'imports' = torch and zoo, 'exporter imports' = onnx, onnxscript and the "
          f"torch.onnx/torch.export modules the first export would otherwise import); "
          f"load average at start {load_start[0]:.1f}; goal: <= {LIMIT_S:g} s per model, "
          f"largest size <= {SCALING_LIMIT:g}x the smallest\n")
    models = measure_models(names, args.runs)
    print_table(models, [("model", "model"), ("params", "params", fmt_count),
                         ("import_s", "imports s", lambda v: "-" if v is None else f"{v:.2f}"),
                         ("exporter_import_s", "exporter imports s",
                          lambda v: "-" if v is None else f"{v:.2f}"),
                         ("cold_s", "cold export s", lambda v: "-" if v is None else f"{v:.2f}"),
                         ("warm", "warm export s", _sec),
                         ("bytes", "file", lambda v: "-" if v is None else fmt_count(v) + "B")])
    ok = [r for r in models if "error" not in r]
    failed = [r for r in models if "error" in r]
    if ok:
        worst_warm = max(ok, key=lambda r: r["warm"]["median_ms"])
        worst_cold = max(ok, key=lambda r: r["cold_s"])
        print(f"\nslowest warm: {worst_warm['model']} {worst_warm['warm']['median_ms'] / 1e3:.2f} s; "
              f"slowest cold: {worst_cold['model']} {worst_cold['cold_s']:.2f} s; "
              f"models over {LIMIT_S:g} s warm: "
              f"{sum(r['warm']['median_ms'] > 1e3 * LIMIT_S for r in ok)}, cold: "
              f"{sum(r['cold_s'] > LIMIT_S for r in ok)} of {len(ok)}")
    scaling = []
    if not args.no_scaling:
        print()
        scaling = measure_scaling(lengths, args.runs)
        print_table(scaling, [("model", "model"), ("axis", "axis"), ("size", "size"),
                              ("warm", "warm export s", _sec),
                              ("over_smallest", "/ smallest", _ratio),
                              ("bytes", "file", lambda v: "-" if v is None else fmt_count(v) + "B")])
        for r in scaling:
            if r.get("size") is not None and r["size"] == max(x["size"] for x in scaling
                                                             if x["model"] == r["model"] and x.get("size")):
                smallest = min(x["size"] for x in scaling if x["model"] == r["model"] and x.get("size"))
                verdict = "ok" if r["over_smallest"]["median"] <= SCALING_LIMIT else "TOO SLOW"
                print(f"{r['model']} {r['size']}/{smallest} {r['axis']}: "
                      f"{_ratio(r['over_smallest'])} ({verdict})")
    failed += [r for r in scaling if "error" in r]
    for r in failed:
        print(f"{r['model']}: FAILED: {r['error']}")
    if args.json:
        load = {"start": list(load_start), "end": list(os.getloadavg())}
        write_json(args.json, "export", info, vars(args),
                   {"models": models, "scaling": scaling, "load_average": load})
        print(f"\nwrote {args.json}")
    return 1 if failed else 0
