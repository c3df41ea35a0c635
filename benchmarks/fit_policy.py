"""Fit the factory's policy constants to ``zoo-bench learn`` results: ``python -m zoo.benchmarks.fit_policy``.

Reads one or more learn JSON files (``--json``, repeatable; rows of later files replace equal runs
of earlier ones), keeps the runs of data sets that are NOT ``held_out`` (benchmarks/datasets.py)
and writes ``factory/policy_fit.py`` (``FIT = {...}``, read by :mod:`zoo.factory.policy`); held-out
sets are reported apart and never move a constant.

Scores are in points: 100 x accuracy, or 100 x R^2. A *group* is one (data set, n); a candidate's
score in a group is its mean over seeds. "Within 2" means at most 2 points below the group's best.
Every row of the learn JSON maps to a policy candidate key (:func:`policy_key`).

What is fitted, per input kind:

* ``min_samples[key]`` -- a family (``mlp`` on tables; ``resnet18-small``/``mobilenetv2-small`` on
  small images; ``tcn``/``lstm``/``transformer`` on series) joins the candidates from the
  threshold t (one of the groups' n, or never) maximising ``sum over groups with n >= t of
  (+1 if the family's best variant is within 2 else -1)``; ties: the smaller t.
  Kept from the seed's table where a kind has no evidence.
* ``params_per_sample`` k -- the capacity cap is ``min(k n, the large-data anchor cap(n))``. The
  search picks the largest allowed model under the cap, so k is chosen by replaying that choice on
  the tested candidates: for k on a log grid, the pick in each group is the largest allowed
  candidate with params <= k n (none: the smallest); k maximises the groups whose pick is within 2,
  then minimises the summed shortfall of the picks (points below each group's best); among equal k,
  the smallest of the longest run: the least capacity that reaches those picks (larger is chosen
  only where the evidence says larger is better).
* ``small_stem_max_side`` -- the largest image side on which ``stem="small"`` scored at least the
  ImageNet stem (paired rows: same model and width).
* ``epochs_needed`` -- the 75th percentile of ``best_epoch + 1`` over the runs within 2 of their
  group's best (the epochs a model that learns needed), the training-budget filter's figure.
"""
from __future__ import annotations

import argparse
import json
import math
import pprint
import statistics
import sys
from pathlib import Path

from . import datasets as D

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "factory" / "policy_fit.py"
WITHIN = 2.0
LONG = 100  # zoo.factory.policy.LONG_SEQUENCE
MAX_WIDTH = {"mlp-flat": 1.0}  # zoo.factory.policy.CANDIDATES bounds below the tested ones
FAMILY_KEYS = {"tabular": ("mlp",), "image": ("mlp-flat", "resnet18-small", "mobilenetv2-small"),
               "sequence": ("tcn", "lstm", "transformer"), "graph": ()}
ALWAYS = {"tabular": ("linear",), "image": ("linear-flat", "mlp-flat"),
          "sequence": ("linear-flat", "mlp-flat"), "graph": ("gcn",)}


def policy_key(row: dict, kind: str) -> str:
    """The policy candidate key a learn row trained (see :data:`zoo.factory.policy.CANDIDATES`)."""
    model, stem, view = row["model"], row.get("stem"), row.get("view", "native")
    if kind in ("image", "sequence") and view == "flat":
        return f"{model}-flat"
    if stem == "small":
        return f"{model}-small"
    return model


def load_runs(paths: list[Path]) -> tuple[list[dict], dict]:
    """Successful runs of every file (later files replace equal runs) and the runtime of each."""
    runs: dict[tuple, dict] = {}
    runtimes = {}
    for p in paths:
        data = json.loads(Path(p).read_text())
        runtimes[str(p)] = {k: data.get("runtime", {}).get(k) for k in
                            ("load_average", "bench_threads", "torch", "cpu")}
        runtimes[str(p)]["budgets"] = data["results"].get("budgets")
        for r in data["results"]["runs"]:
            if "error" not in r and r["dataset"] in D.DATASETS:
                runs[(r["dataset"], r["n"], r["candidate"], r["seed"])] = r
    return list(runs.values()), runtimes


def groups(runs: list[dict]) -> dict[tuple, dict[str, dict]]:
    """(data set, n) -> candidate label -> {key, score (points, mean of seeds), params, ...}."""
    acc: dict[tuple, dict[str, list]] = {}
    for r in runs:
        acc.setdefault((r["dataset"], r["n"]), {}).setdefault(r["candidate"], []).append(r)
    out = {}
    for g, cands in acc.items():
        kind = D.DATASETS[g[0]].kind
        out[g] = {label: {"key": policy_key(rs[0], kind), "label": label,
                          "score": 100 * statistics.fmean(r["test_score"] for r in rs),
                          "params": rs[0]["params"], "seeds": len(rs),
                          "width": rs[0].get("width_mult", 1.0),
                          "best_epoch": [r.get("best_epoch") for r in rs],
                          "seconds_per_epoch": statistics.fmean(r.get("seconds_per_epoch") or 0
                                                                for r in rs)}
                  for label, rs in cands.items()}
    return out


def _best(cands: dict) -> float:
    return max(c["score"] for c in cands.values())


def _family_ok(cands: dict, key: str) -> bool | None:
    mine = [c for c in cands.values() if c["key"] == key]
    if not mine:
        return None
    return max(c["score"] for c in mine) >= _best(cands) - WITHIN


def fit_threshold(gs: dict, key: str) -> tuple[int | None, str]:
    """Smallest n from which ``key`` joins (None: never), and the rows it came from."""
    seen = sorted((g[1], g[0], ok) for g, c in gs.items() if (ok := _family_ok(c, key)) is not None)
    if not seen:
        return None, "no rows"
    best_t, best_net = None, 0
    for t in sorted({n for n, _, _ in seen}, reverse=True):
        net = sum(1 if ok else -1 for n, _, ok in seen if n >= t)
        if net >= best_net and net > 0:
            best_t, best_net = t, net
    rows = ", ".join(f"{d} n={n} {'within 2' if ok else 'below'}" for n, d, ok in seen)
    return best_t, rows


def allowed(kind: str, n: int, thresholds: dict, seq_len: int | None = None) -> set[str]:
    """The policy's candidates for a group (the rules of zoo.factory.policy, replayed)."""
    keys = set(ALWAYS[kind])
    keys |= {k for k in FAMILY_KEYS[kind] if thresholds.get(k) is not None and n >= thresholds[k]
             and not (k == "lstm" and (seq_len or 0) >= LONG)
             and not (k == "transformer" and n < 10_000)}
    return keys


def pick(cands: dict, keys: set[str], cap: float) -> dict | None:
    """The replayed search: the largest allowed candidate under ``cap`` (none: the smallest)."""
    mine = [c for c in cands.values() if c["key"] in keys
            and c["width"] <= MAX_WIDTH.get(c["key"], math.inf)]
    if not mine:
        return None
    under = [c for c in mine if c["params"] <= cap]
    if under:
        return max(under, key=lambda c: (c["params"], c["score"]))
    return min(mine, key=lambda c: c["params"])


def fit_capacity(gs: dict, kind: str, thresholds: dict) -> dict:
    grid = [10 ** (i / 20) for i in range(0, 121)]  # 1 .. 1e6 parameters per sample
    mine = {g: c for g, c in gs.items() if D.DATASETS[g[0]].kind == kind}
    if not mine:
        return {"params_per_sample": None, "rows": "no rows", "within": None}
    score = []
    for k in grid:
        hits, regret = 0, 0.0
        for (name, n), cands in mine.items():
            p = pick(cands, allowed(kind, n, thresholds, D.DATASETS[name].input_shape[0]), k * n)
            gap = _best(cands) - p["score"] if p is not None else 100.0
            hits += gap <= WITHIN
            regret += gap
        score.append((hits, -round(regret, 6)))
    top = max(score)
    runs, cur = [], []
    for k, s in zip(grid, score):
        if s == top:
            cur.append(k)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    run = max(runs, key=len)
    k = run[0]
    detail = []
    for (name, n), cands in sorted(mine.items()):
        p = pick(cands, allowed(kind, n, thresholds, D.DATASETS[name].input_shape[0]), k * n)
        best = max(cands.values(), key=lambda c: c["score"])
        detail.append(f"{name} n={n}: pick {p['label']} ({p['params']:,} params, {p['score']:.1f}) "
                      f"vs best {best['label']} ({best['params']:,}, {best['score']:.1f})")
    return {"params_per_sample": round(k, 3), "range": [round(run[0], 3), round(run[-1], 3)],
            "max_n": max(n for _, n in mine),
            "within": f"{top[0]}/{len(mine)}", "regret_points": -top[1], "rows": "; ".join(detail)}


def fit_stem(gs: dict) -> dict:
    diffs = []
    for (name, n), cands in gs.items():
        info = D.DATASETS[name]
        if info.kind != "image":
            continue
        for label, c in cands.items():
            if label.endswith("-small") and (twin := cands.get(label[:-6] + "-imagenet")):
                diffs.append((info.input_shape[-1], name, n, label[:-6], c["score"] - twin["score"]))
    if not diffs:
        return {"value": 64, "rows": "no paired rows: He et al. 2016's CIFAR stem for <= 64 px kept"}
    good = [side for side, *_, d in diffs if d >= 0]
    rows = ", ".join(f"{nm} n={n} {m}: {d:+.1f}" for _, nm, n, m, d in sorted(diffs))
    return {"value": max(64, max(good)) if good else None, "rows": f"small - imagenet stem: {rows}"}


def fit_epochs(gs: dict) -> dict:
    out = {}
    for kind in ("tabular", "image", "sequence", "graph"):
        eps = [e + 1 for g, cands in gs.items() if D.DATASETS[g[0]].kind == kind
               for c in cands.values() if c["score"] >= _best(cands) - WITHIN
               for e in c["best_epoch"] if e is not None]
        if eps:
            eps.sort()
            out[kind] = {"value": eps[min(len(eps) - 1, int(0.75 * len(eps)))], "runs": len(eps)}
    return out


def evidence(gs: dict) -> dict:
    """Per kind, per group: the best candidate, and the candidates above its size that scored lower
    by more than 2 points (what the spec's reasons cite)."""
    out: dict[str, list] = {}
    for (name, n), cands in sorted(gs.items()):
        best = max(cands.values(), key=lambda c: c["score"])
        worse = [c for c in cands.values() if c["params"] > best["params"]
                 and c["score"] < best["score"] - WITHIN]
        out.setdefault(D.DATASETS[name].kind, []).append(
            {"dataset": name, "n": n, "best": best["label"], "best_key": best["key"],
             "best_params": best["params"], "best_score": round(best["score"], 1),
             "larger_worse": [f"{c['label']} ({c['params']:,}: {c['score']:.1f})"
                              for c in sorted(worse, key=lambda c: c["params"])],
             "larger_within": [c["label"] for c in cands.values()
                               if c["params"] > best["params"] and c not in worse],
             "candidates": len(cands)})
    return out


def _rel(p) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(ROOT)) if ROOT in p.parents else str(p)


def fit(paths: list[Path]) -> dict:
    runs, runtimes = load_runs(paths)
    fitted = [r for r in runs if not D.DATASETS[r["dataset"]].held_out]
    gs = groups(fitted)
    thresholds, threshold_rows, seen = {}, {}, {}
    for kind, keys in FAMILY_KEYS.items():
        mine = {g: c for g, c in gs.items() if D.DATASETS[g[0]].kind == kind}
        for key in keys:
            if key == "lstm":  # the policy offers LSTMs on short series only (< LONG_SEQUENCE)
                mine = {g: c for g, c in mine.items() if D.DATASETS[g[0]].input_shape[0] < LONG}
            thresholds[key], threshold_rows[key] = fit_threshold(mine, key)
            seen[key] = max((g[1] for g, c in mine.items() if _family_ok(c, key) is not None),
                            default=None)
    capacity = {kind: fit_capacity(gs, kind, thresholds) for kind in FAMILY_KEYS}
    return {"sources": [_rel(p) for p in paths],
            "runtimes": runtimes, "within_points": WITHIN,
            "fitted_datasets": sorted({r["dataset"] for r in fitted}),
            "held_out_datasets": sorted({r["dataset"] for r in runs} - {r["dataset"] for r in fitted}),
            "min_samples": thresholds, "min_samples_rows": threshold_rows, "min_samples_max_n": seen, "capacity": capacity,
            "small_stem": fit_stem(gs), "epochs_needed": fit_epochs(gs), "evidence": evidence(gs),
            "held_out_evidence": evidence(groups([r for r in runs if D.DATASETS[r["dataset"]].held_out]))}


def render(fitted: dict) -> str:
    return ('"""Constants of the factory policy fitted to zoo-bench learn results. GENERATED by\n'
            '``python -m zoo.benchmarks.fit_policy``: do not edit; rerun it on new results."""\n\n'
            f"FIT = {pprint.pformat(fitted, width=100, sort_dicts=True)}\n")


def main(argv: list[str] | None = None) -> int:
    from zoo.atomic import write_text_atomic

    p = argparse.ArgumentParser(prog="python -m zoo.benchmarks.fit_policy", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="append", type=Path, metavar="PATH",
                   help="learn results (repeatable; default benchmarks/results/learn.json)")
    p.add_argument("--out", type=Path, default=OUT, help=f"module to write (default {OUT})")
    p.add_argument("--print", action="store_true", help="print the module, do not write it")
    args = p.parse_args(argv)
    paths = args.json or [RESULTS / "learn.json"]
    fitted = fit(paths)
    text = render(fitted)
    if args.print:
        print(text)
        return 0
    write_text_atomic(args.out, text)
    print(f"fitted on {', '.join(fitted['fitted_datasets'])}; held out: "
          f"{', '.join(fitted['held_out_datasets']) or 'none'}")
    for key, t in fitted["min_samples"].items():
        print(f"  min_samples[{key}] = {t}: {fitted['min_samples_rows'][key]}")
    for kind, c in fitted["capacity"].items():
        print(f"  params_per_sample[{kind}] = {c['params_per_sample']} ({c.get('within')} groups within "
              f"{WITHIN:g}): {c['rows']}")
    print(f"  small stem up to {fitted['small_stem']['value']} px: {fitted['small_stem']['rows']}")
    print(f"  epochs needed: {fitted['epochs_needed']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
