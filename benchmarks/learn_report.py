"""Tables and plots of ``zoo-bench learn`` results (the ``results`` part of learn.json).

* :func:`summarize` — one row per (data set, n, candidate): test score mean [min-max] over seeds,
  validation score, parameters, seconds per epoch, best epoch, epochs run;
* :func:`stem_table` — issue 8: ``stem="small"`` vs ``"imagenet"`` for ResNet-18 x0.25 and
  MobileNetV2 x0.35 on the image sets (8x8 and 28x28 digits), at each set's largest n;
* :func:`series_table` — issue 8: temporal CNN vs LSTM vs an MLP over the flattened series on the
  long series, each family at the width multiplier with the best mean *validation* score (the test
  split never chooses), at each set's largest n;
* :func:`plot_dataset` — test score against parameters (log x), one line per n, a marker per family.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from zoo.atomic import atomic_path

from .report import fmt_count, print_table

STEM_MODELS = ("resnet18-x0.25", "mobilenetv2-x0.35")
SERIES_FAMILIES = (("tcn", "tcn"), ("lstm", "lstm"), ("mlp", "mlp (flattened)"))


def _mean(values):
    values = [x for x in values if x is not None]
    return statistics.fmean(values) if values else None


def summarize(runs: list[dict]) -> list[dict]:
    """Aggregate the seeds of each (data set, n, candidate); failed runs are counted in ``errors``."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["n"], r["candidate"]), []).append(r)
    out = []
    for (name, n, cand), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        scores = [r["test_score"] for r in ok]
        first = rs[0]
        out.append({"dataset": name, "n": n, "candidate": cand, "model": first["model"],
                    "family": first.get("family"), "width_mult": first["width_mult"],
                    "stem": first.get("stem"), "view": first.get("view"),
                    "metric": ok[0]["metric"] if ok else None,
                    "score": _mean(scores), "score_min": min(scores) if scores else None,
                    "score_max": max(scores) if scores else None, "seeds": len(ok),
                    "val_score": _mean(r.get("val_score") for r in ok),
                    "params": next((r["params"] for r in rs if "params" in r), None),
                    "seconds_per_epoch": _mean(r.get("seconds_per_epoch") for r in ok),
                    "best_epoch": _mean(r.get("best_epoch") for r in ok),
                    "epochs_run": _mean(r.get("epochs_run") for r in ok),
                    "epochs_min": min((r["epochs_run"] for r in ok), default=None),
                    "epochs_max": max((r["epochs_run"] for r in ok), default=None),
                    "errors": len(rs) - len(ok),
                    "error": next((r["error"] for r in rs if "error" in r), None)})
    return out


def _score(row: dict | None) -> str:
    if row is None or row["score"] is None:
        return "-"
    pct = row["metric"] == "accuracy"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.3f}")
    return f"{f(row['score'])} [{f(row['score_min'])}-{f(row['score_max'])}]"


def _largest_n(summary: list[dict], name: str) -> int | None:
    ns = [s["n"] for s in summary if s["dataset"] == name]
    return max(ns) if ns else None


def print_summary(summary: list[dict], datasets: dict, file=None) -> None:
    """One table per data set: candidates by n, scores in % (accuracy) or R^2."""
    for name in dict.fromkeys(s["dataset"] for s in summary):
        d = datasets.get(name, {})
        held = " (HELD OUT of the policy fit)" if d.get("held_out") else ""
        print(f"\n{name}: {d.get('kind')} {d.get('task')}, input {tuple(d.get('input_shape', ()))}, "
              f"source {d.get('source')}{held}", file=file)
        rows = [dict(s, _score=_score(s)) for s in summary if s["dataset"] == name]
        print_table(rows, _summary_columns(), file=file)
        for s in rows:
            if s["error"]:
                print(f"  {s['candidate']} n={s['n']}: FAILED {s['errors']}x: {s['error']}", file=file)


def _summary_columns():
    num = lambda fmt: (lambda x: "-" if x is None else fmt.format(x))  # noqa: E731
    return [("candidate", "candidate"), ("n", "n"), ("_score", "test score mean [min-max]"),
            ("val_score", "val", num("{:.3f}")), ("params", "params", fmt_count),
            ("seconds_per_epoch", "s/epoch", num("{:.3g}")), ("best_epoch", "best ep", num("{:.0f}")),
            ("epochs_run", "epochs", num("{:.0f}")), ("errors", "failed")]


def stem_table(summary: list[dict], datasets: dict) -> list[dict]:
    """Rows (data set, model): small-stem vs ImageNet-stem score at the largest n, and the gap."""
    rows = []
    for name, d in datasets.items():
        if d.get("kind") != "image":
            continue
        n = _largest_n(summary, name)
        by = {s["candidate"]: s for s in summary if s["dataset"] == name and s["n"] == n}
        for model in STEM_MODELS:
            small, imnet = by.get(f"{model}-small"), by.get(f"{model}-imagenet")
            if small is None and imnet is None:
                continue
            gap = (100 * (small["score"] - imnet["score"]) if small and imnet and small["score"] is not None
                   and imnet["score"] is not None else None)
            rows.append({"dataset": name, "input": "x".join(map(str, d["input_shape"][1:])), "n": n,
                         "model": model, "small": _score(small), "imagenet": _score(imnet),
                         "gap_points": gap, "small_wins": None if gap is None else gap > 0,
                         "epochs": f"{_epochs(small)} / {_epochs(imnet)}",
                         "s_epoch_small": small and small["seconds_per_epoch"],
                         "s_epoch_imagenet": imnet and imnet["seconds_per_epoch"]})
    return rows


def _epochs(row: dict | None) -> str:
    """Epochs run, mean over seeds, and their range: what the budget let a model reach."""
    if row is None or row["epochs_run"] is None:
        return "-"
    lo, hi = row["epochs_min"], row["epochs_max"]
    return f"{row['epochs_run']:.0f}" + ("" if lo == hi else f" [{lo}-{hi}]")


def _best_of_family(rows: list[dict], family: str) -> dict | None:
    """The row of ``family`` whose multiplier has the best mean validation score; ties: fewer
    parameters."""
    cands = [r for r in rows if r["model"] == family and r["score"] is not None]
    if family == "mlp":
        cands = [r for r in cands if r["view"] == "flat"]
    # A tie on validation (a handful of samples: often) goes to the smaller model, never to the
    # test score ("start simple"; the test split must not choose).
    key = lambda r: (r["val_score"] if r["val_score"] is not None else -1e9,  # noqa: E731
                     -(r["params"] or 0))
    return max(cands, key=key) if cands else None


def series_table(summary: list[dict], datasets: dict) -> list[dict]:
    """Rows per long-series classification set: tcn, lstm and flattened-MLP scores (each family's
    multiplier chosen on validation), tcn - lstm and tcn - mlp in points, and issue 8's verdicts."""
    rows = []
    for name, d in datasets.items():
        if d.get("kind") != "sequence" or d.get("length") != "long" or d.get("task") != "classification":
            continue
        n = _largest_n(summary, name)
        here = [s for s in summary if s["dataset"] == name and s["n"] == n]
        best = {fam: _best_of_family(here, fam) for fam, _ in SERIES_FAMILIES}
        if not any(best.values()):
            continue
        row = {"dataset": name, "length": d["input_shape"][0], "n": n}
        for fam, head in SERIES_FAMILIES:
            row[head] = _score(best[fam]) + (f" ({best[fam]['candidate']})" if best[fam] else "")
            row[f"{fam}_epochs"] = _epochs(best[fam])
        t, l, m = (best[f] and best[f]["score"] for f in ("tcn", "lstm", "mlp"))
        row["tcn_minus_lstm"] = None if t is None or l is None else 100 * (t - l)
        row["tcn_minus_mlp"] = None if t is None or m is None else 100 * (t - m)
        row["tcn_beats_lstm"] = None if row["tcn_minus_lstm"] is None else row["tcn_minus_lstm"] > 0
        row["tcn_within_2_of_mlp"] = None if row["tcn_minus_mlp"] is None else row["tcn_minus_mlp"] >= -2
        rows.append(row)
    return rows


def _points(x):
    return "-" if x is None else f"{x:+.1f}"


def seed_noise(runs: list[dict], within: float = 5.0) -> dict[str, float]:
    """Per data set, at its largest n: the seed-to-seed standard deviation s of the test score
    (points), the median over the candidates within ``within`` points of the set's best (those
    the check's gaps are between). Sets with a single seed are left out."""
    out = {}
    for name in dict.fromkeys(r["dataset"] for r in runs):
        rows = [r for r in runs if r["dataset"] == name and "error" not in r]
        n = max(r["n"] for r in rows)
        scores: dict[str, list[float]] = {}
        for r in rows:
            if r["n"] == n:
                scores.setdefault(r["candidate"], []).append(100 * r["test_score"])
        best = max(statistics.fmean(v) for v in scores.values())
        sds = [statistics.stdev(v) for v in scores.values()
               if len(v) > 1 and statistics.fmean(v) >= best - within]
        if sds:
            out[name] = statistics.median(sds)
    return out


def print_seed_noise(runs: list[dict], file=None, ks: tuple[int, ...] = (5, 10)) -> None:
    """How many sets a k-seed gap resolves to 1 point: the check's gap is a difference of two
    k-seed means, standard error sqrt(2 / k) s (:func:`seed_noise`)."""
    s = seed_noise(runs)
    if not s:
        return
    counts = ", ".join(f"{sum((2 / k) ** 0.5 * v <= 1.0 for v in s.values())} at k = {k}" for k in ks)
    print(f"\nseed noise at each set's largest n: s = {min(s.values()):.1f}-{max(s.values()):.1f} points "
          f"(median {statistics.median(s.values()):.1f}; per set, the median standard deviation over "
          f"the candidates within 5 points of its best); a gap of two k-seed means has a standard "
          f"error sqrt(2 / k) s <= 1 point on {counts} of {len(s)} sets", file=file)


def print_all(results: dict, file=None) -> None:
    """The summary, the two issue-8 tables and the held-out list, from learn.json's ``results``."""
    summary = summarize(results["runs"])
    datasets = results["datasets"]
    print_summary(summary, datasets, file=file)
    b = results.get("budgets", {})
    epochs = b.get("epochs") or "fit's default"
    print(f"\nissue 8, stems: same zoo.fit budget ({epochs} epochs or {b.get('time_budget_s')} s), "
          f"seeds {results.get('seeds')}, largest n; accuracy % mean [min-max]; epochs reached mean "
          f"[min-max]", file=file)
    stems = stem_table(summary, datasets)
    if stems:
        print_table(stems, [("dataset", "data"), ("input", "input"), ("n", "n"), ("model", "model"),
                            ("small", "stem small"), ("imagenet", "stem imagenet"),
                            ("gap_points", "small - imagenet", _points),
                            ("epochs", "epochs small / imagenet")], file=file)
    else:
        print("  (no stem pairs in these results)", file=file)
    print(f"\nissue 8, long series: each family at its best multiplier on validation, same zoo.fit "
          f"budget ({epochs} epochs or {b.get('time_budget_s')} s), seeds {results.get('seeds')}, "
          f"largest n; accuracy % mean [min-max]; epochs reached mean [min-max]", file=file)
    series = series_table(summary, datasets)
    if series:
        print_table(series, [("dataset", "data"), ("length", "T"), ("n", "n")]
                    + [(h, h) for _, h in SERIES_FAMILIES]
                    + [("tcn_minus_lstm", "tcn - lstm", _points), ("tcn_minus_mlp", "tcn - mlp", _points)]
                    + [(f"{f}_epochs", f"epochs {f}") for f, _ in SERIES_FAMILIES],
                    file=file)
    else:
        print("  (no long-series results)", file=file)
    print_seed_noise(results["runs"], file=file)
    held = [n for n, d in datasets.items() if d.get("held_out")]
    print(f"\nheld out of the policy fit: {', '.join(held) or 'none in these results'}", file=file)


def print_saved(path: str | Path) -> int:
    """``--tables``: print the tables of a saved learn.json; 2 when it is missing."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"--json={str(path)!r} is not accepted: no such file (run zoo-bench learn first)")
    print_all(json.loads(path.read_text())["results"])
    return 0


def plot_dataset(path: str | Path, info, runs: list[dict]) -> Path:
    """Test score (mean over seeds) against parameters (log x) for one data set: a line per n
    through its candidates in order of size, a marker per family; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = [s for s in summarize(runs) if s["score"] is not None and s["params"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip(sorted({s["model"] for s in summary}), "osD^v<>phX*"))
    for n in sorted({s["n"] for s in summary}):
        pts = sorted((s for s in summary if s["n"] == n), key=lambda s: s["params"])
        line, = ax.plot([s["params"] for s in pts], [s["score"] for s in pts], "-", alpha=0.5,
                        label=f"n = {n}")
        for s in pts:
            ax.plot(s["params"], s["score"], markers[s["model"]], color=line.get_color(),
                    markerfacecolor="none" if s.get("stem") == "imagenet" else line.get_color())
    for model, m in markers.items():
        ax.plot([], [], m, color="gray", label=model)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test " + (summary[0]["metric"] if summary else "score"))
    stems = "; open markers: stem imagenet" if any(s.get("stem") for s in summary) else ""
    ax.set_title(f"{info.name} ({info.source}){stems}", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
