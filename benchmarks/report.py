"""Shared output of every benchmark suite: header, table, JSON and plot. Small on purpose.

A suite collects its figures as rows of plain dicts, where every timing is a *figure*
``{"median_ms", "min_ms", "max_ms", ...}`` (:func:`figure`), then calls:

* :func:`print_header` once — device, threads, versions (from :func:`zoo.factory.timing.runtime_info`);
* :func:`print_table` — a fixed-width table; figures print as ``median [min-max]``;
* :func:`write_json` for ``--json PATH`` — ``{"suite", "runtime", "args", "results"}``, atomically;
* :func:`plot_figures` for ``--plot PATH`` — horizontal bars of medians, min-max whiskers (Agg);
* :func:`progress` around long loops — a tqdm bar on stderr (silent when stderr is not a TTY).

Example (a suite's ``run``)::

    info = runtime_info()
    print_header("models", info)
    rows = [{"model": "mlp", "eager": figure(timing)}]
    print_table(rows, [("model", "model"), ("eager", "eager ms")])
    if args.json:
        write_json(args.json, "models", info, vars(args), rows)
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from zoo.atomic import atomic_path, write_text_atomic


def figure(timing) -> dict:
    """A timing (``Timing``, ``LatencyResult`` or a dict with those keys) as a JSON figure:
    ``{"median_ms", "min_ms", "max_ms", "p90_ms", "runs"}``."""
    d = timing if isinstance(timing, dict) else timing.to_dict()
    return {k: d[k] for k in ("median_ms", "min_ms", "max_ms", "p90_ms", "runs") if k in d}


def ratio(numerator: dict, denominator: dict) -> dict:
    """``numerator / denominator`` of two figures, as a figure of ratios (no unit):
    median/median, and the extremes min/max .. max/min — the widest ratio the runs allow."""
    return {"median": numerator["median_ms"] / denominator["median_ms"],
            "min": numerator["min_ms"] / denominator["max_ms"],
            "max": numerator["max_ms"] / denominator["min_ms"]}


def fmt_figure(fig: dict | None, digits: int | None = None) -> str:
    """``median [min-max]``: a timing figure in ms, or a ratio figure (see :func:`ratio`) with 'x'."""
    if fig is None:
        return "-"
    if "median_ms" in fig:
        med, lo, hi, unit = fig["median_ms"], fig["min_ms"], fig["max_ms"], ""
    else:
        med, lo, hi, unit = fig["median"], fig["min"], fig["max"], "x"
    return f"{_num(med, digits)}{unit} [{_num(lo, digits)}-{_num(hi, digits)}]"


def _num(v: float, digits: int | None) -> str:
    if digits is None:  # three significant figures, readable from 0.001 to 99999
        digits = max(0, 2 - int(math.floor(math.log10(abs(v))))) if v else 0
    return f"{v:.{digits}f}"


def fmt_count(n: int | float | None) -> str:
    """1234567 -> '1.23M'; None -> '-'."""
    if n is None:
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def print_header(suite: str, info: dict, file=None) -> None:
    """Two lines naming the suite, device, thread settings, machine load and library versions."""
    file = file or sys.stdout
    threads = (f"torch threads {info.get('torch_threads')} (interop {info.get('torch_interop_threads')}), "
               f"physical cores {info.get('physical_cores')} of {info.get('available_cpus')} CPUs")
    env = ", ".join(f"{k}={v}" for k, v in info.get("env", {}).items()) or "no thread env vars"
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    load = info.get("load_average")
    load = f"load average {' '.join(map(str, load))}" if load else "load average unknown"
    print(f"zoo-bench {suite} | {info.get('device')} ({info.get('device_type')}) | {threads} | {env} "
          f"| {load}", file=file)
    print(f"versions: {versions}", file=file)


def print_table(rows: Sequence[dict], columns: Sequence[tuple], file=None) -> None:
    """Print ``rows`` as a table. ``columns``: ``(key, header)`` or ``(key, header, formatter)``.

    Without a formatter, figures (dicts) print as :func:`fmt_figure`, ints with thousands
    separators, floats with 3 significant figures, None as '-'.
    """
    file = file or sys.stdout
    cells = [[_cell(row.get(col[0]), col[2] if len(col) > 2 else None) for col in columns] for row in rows]
    headers = [col[1] for col in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    # First column (a name) left-aligned, numbers right-aligned.
    line = lambda vals: "  ".join(v.ljust(w) if i == 0 else v.rjust(w)  # noqa: E731
                                  for i, (v, w) in enumerate(zip(vals, widths)))
    print(line(headers), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        print(line(r), file=file)


def _cell(value: Any, formatter: Callable[[Any], str] | None) -> str:
    if formatter is not None:
        return formatter(value)
    if value is None:
        return "-"
    if isinstance(value, dict):
        return fmt_figure(value)
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def write_json(path: str | os.PathLike, suite: str, info: dict, args: dict, results: Any) -> Path:
    """Write ``{"suite", "runtime", "args", "results"}`` to ``path`` atomically (indented JSON)."""
    payload = {"suite": suite, "runtime": info, "args": _jsonable(args), "results": results}
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
    return Path(path)


def _jsonable(args: dict) -> dict:
    return {k: v for k, v in args.items() if not callable(v)}


def plot_figures(path: str | os.PathLike, labels: Sequence[str], series: dict[str, Sequence[dict | None]],
                 *, title: str, xlabel: str = "latency (ms, median; whiskers: min-max)",
                 log: bool = True) -> Path:
    """Horizontal grouped bars: one group per label, one bar per series (figures or None).

    Saved with matplotlib's Agg backend (no display needed), atomically; the format follows the
    extension of ``path`` (.png, .svg, .pdf).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, k = len(labels), max(1, len(series))
    height = 0.8 / k
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * n * k))
    for j, (name, figs) in enumerate(series.items()):
        ys, meds, lo, hi = [], [], [], []
        for i, f in enumerate(figs):
            if f is None:
                continue
            ys.append(i + (j - (k - 1) / 2) * height)
            meds.append(f["median_ms"])
            lo.append(f["median_ms"] - f["min_ms"])
            hi.append(f["max_ms"] - f["median_ms"])
        ax.barh(ys, meds, height=height, xerr=[lo, hi], capsize=2, label=name)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    suffix = Path(path).suffix or ".png"
    with atomic_path(path, suffix=suffix) as tmp:
        fig.savefig(tmp, format=suffix.lstrip("."), dpi=120)
    plt.close(fig)
    return Path(path)


def progress(iterable: Iterable, *, desc: str, total: int | None = None):
    """``tqdm`` on stderr; silent when stderr is not a terminal (logs, CI, tests)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=None, leave=False)
