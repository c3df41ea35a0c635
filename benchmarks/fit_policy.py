"""Fit the factory's policy constants to ``zoo-bench learn`` results: ``python -m zoo.benchmarks.fit_policy``.

Reads one or more learn JSON files (``--json``, repeatable; rows of later files replace equal runs
of earlier ones), keeps the runs of data sets that are NOT ``held_out`` (benchmarks/datasets.py)
and writes ``factory/policy_fit.json`` (the ``FIT`` of :mod:`zoo.factory.policy`); held-out
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
* ``capacity`` -- ``cap(n) = C (n / n_max)^b`` up to ``n_max``, the largest n measured for the
  kind (beyond it the policy's large-data anchors take over). The search picks the largest
  allowed model under the cap, so (C, b) are chosen by replaying that choice on the tested
  candidates: for C on a log grid and b in :data:`EXPONENTS`, the pick in each group is the
  largest allowed candidate with params <= cap(n) (none: the smallest); (C, b) maximise the groups
  whose pick is within 2, then minimise the summed shortfall (points below each group's best);
  ties go to the smallest C -- the least capacity that reaches those picks: larger is chosen only
  where the evidence says larger is better -- then the largest b.
* ``small_stem`` -- the largest image side up to which ``stem="small"`` never scored below the
  ImageNet stem (paired rows: same model and width); above it the narrow ImageNet-stem ResNet
  (``resnet18-narrow``) is the conv candidate up to 64 px.
* ``epochs_needed`` -- the 10th percentile of ``epochs_run`` over the runs that the time budget
  stopped and that still scored within 2 of their group's best: 90 % of the models cut short by
  the budget that learned had at least that many epochs, so a model the training budget gives
  fewer is outside the evidence (the training-budget filter's figure). Only runs the budget
  stopped: a run ended by early stopping trained past its best epoch, and one that ran its epoch
  count says nothing about fewer. A kind with no such run takes all its runs within 2.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

from . import datasets as D

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "factory" / "policy_fit.json"
WITHIN = 2.0
LONG = 100  # zoo.factory.policy.LONG_SEQUENCE
MAX_WIDTH = {"mlp-flat": 1.0}  # zoo.factory.policy.CANDIDATES bounds below the tested ones
SMALL_IMAGE = 64  # zoo.factory.policy.SMALL_IMAGE
FAMILY_KEYS = {"tabular": ("mlp",),
               "image": ("resnet18-small", "mobilenetv2-small", "resnet18-narrow"),
               "sequence": ("tcn", "lstm-narrow"), "graph": ()}
EPOCHS_QUANTILE = 0.1  # epochs_needed: 90 % of the budget-stopped runs that learned had at least
SMALL_STEM_KEYS = ("resnet18-small", "mobilenetv2-small")
ALWAYS = {"tabular": ("linear",), "image": ("linear-flat", "mlp-flat"),
          "sequence": ("linear-flat", "mlp-flat"), "graph": ("gcn-2",)}


def policy_key(row: dict, kind: str) -> str:
    """The policy candidate key a learn row trained (see :data:`zoo.factory.policy.CANDIDATES`)."""
    model, stem, view = row["model"], row.get("stem"), row.get("view", "native")
    if kind in ("image", "sequence") and view == "flat":
        return f"{model}-flat"
    if stem == "small":
        return f"{model}-small"
    if kind == "image" and model == "resnet18":  # ImageNet stem at x0.25-1 on small images
        return "resnet18-narrow"
    if model == "lstm":  # the measured widths, within learn.json's sizes
        return "lstm-narrow"
    if model == "gcn":  # 2 graph convolutions, the measured depth, within learn.json's sizes
        return "gcn-2"
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
                          "epochs_run": [r.get("epochs_run") for r in rs],
                          "stopped": [r.get("stopped") for r in rs],
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


def _offered(key: str, shape: tuple, stem_side: int) -> bool:
    """Whether the policy's rules offer ``key`` for inputs of ``shape`` at all (any n)."""
    if key == "lstm-narrow":
        return shape[0] < LONG
    if key in SMALL_STEM_KEYS:
        return shape[-1] <= stem_side
    if key == "resnet18-narrow":
        return stem_side < shape[-1] <= SMALL_IMAGE
    return True


def allowed(kind: str, n: int, thresholds: dict, shape: tuple, stem_side: int,
            tcn_max_len: int | None = None) -> set[str]:
    """The policy's candidates for a group (the rules of zoo.factory.policy, replayed): where the
    temporal CNN joins on series of <= ``tcn_max_len`` steps, it replaces the flat MLP."""
    keys = set(ALWAYS[kind])
    keys |= {k for k in FAMILY_KEYS[kind] if thresholds.get(k) is not None and n >= thresholds[k]
             and _offered(k, shape, stem_side)}
    if "tcn" in keys and tcn_max_len is not None and shape[0] <= tcn_max_len:
        keys.discard("mlp-flat")
    return keys


def pick(cands: dict, keys: set[str], cap: float, max_width: dict | None = None) -> dict | None:
    """The replayed search: the largest allowed candidate under ``cap`` (none: the smallest)."""
    bound = dict(MAX_WIDTH, **{k: v for k, v in (max_width or {}).items() if v is not None})
    mine = [c for c in cands.values() if c["key"] in keys
            and c["width"] <= bound.get(c["key"], math.inf)]
    if not mine:
        return None
    under = [c for c in mine if c["params"] <= cap]
    if under:
        return max(under, key=lambda c: (c["params"], c["score"]))
    return min(mine, key=lambda c: c["params"])


EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_capacity(gs: dict, kind: str, thresholds: dict, stem: int, max_width: dict,
                 tcn_max_len: int | None) -> dict:
    """``cap(n) = C (n / n_max)^b`` over the groups of ``kind`` (module docstring)."""
    mine = {g: c for g, c in gs.items() if D.DATASETS[g[0]].kind == kind}
    if not mine:
        return {"params_per_sample": None, "rows": "no rows", "within": None}
    n_max = max(n for _, n in mine)
    grid = [10 ** (i / 20) for i in range(20, 181)]  # C: 10 .. 1e9 parameters at n_max

    def replay(c: float, b: float):
        hits, regret, picks = 0, 0.0, []
        for (name, n), cands in sorted(mine.items()):
            info = D.DATASETS[name]
            p = pick(cands, allowed(kind, n, thresholds, info.input_shape, stem, tcn_max_len),
                     c * (n / n_max) ** b, max_width)
            gap = _best(cands) - p["score"] if p is not None else 100.0
            hits += gap <= WITHIN
            regret += gap
            picks.append((name, n, p, cands))
        return (hits, -round(regret, 6)), picks

    # best (hits, -regret); ties: the smallest C (least capacity at n_max), then the largest b
    best = max(((replay(c, b)[0], -c, b) for b in EXPONENTS for c in grid))
    (hits, neg_regret), c, b = best[0], -best[1], best[2]
    detail = []
    for name, n, p, cands in replay(c, b)[1]:
        top = max(cands.values(), key=lambda x: x["score"])
        detail.append(f"{name} n={n}: pick {p['label']} ({p['params']:,} params, {p['score']:.1f}) "
                      f"vs best {top['label']} ({top['params']:,}, {top['score']:.1f})")
    return {"params_at_n_max": round(c), "exponent": b, "n_max": n_max,
            "hits": hits, "within": f"{hits}/{len(mine)}", "regret_points": round(-neg_regret, 2),
            "rows": "; ".join(detail)}


def _objective(capacity: dict) -> tuple[int, float]:
    """What :func:`fit_capacity` maximises: groups whose replayed pick is within 2, -regret."""
    return (capacity.get("hits", 0), -capacity.get("regret_points", 0.0))


def refine_thresholds(gs: dict, kind: str, thresholds: dict, side: int, max_width: dict) -> dict:
    """The family thresholds of ``kind`` refitted jointly with its capacity cap.

    :func:`fit_threshold` asks whether a family's *best* variant is within 2 points; the policy
    then picks by the cap, so the two together are what the check judges. For each family key in
    turn, every measured n of the kind (and "never") is tried as its threshold with the cap
    refitted; a threshold moves only when the replayed picks improve: more groups within 2, or
    as many and a regret (summed points below each group's best) lower by more than 2 points --
    a smaller gain is within the noise the 2-point bar allows. Returns {key: (new threshold, old
    threshold)} for the keys that moved.
    """
    ns = sorted({n for (name, n) in gs if D.DATASETS[name].kind == kind})

    def score(th: dict) -> tuple:
        tl = fit_tcn_max_len(gs, th.get("tcn"))["value"] if kind == "sequence" else None
        return _objective(fit_capacity(gs, kind, th, side, max_width, tl))

    def better(a: tuple, b: tuple) -> bool:
        return a[0] > b[0] or (a[0] == b[0] and a[1] > b[1] + WITHIN)

    moved = {}
    best = score(thresholds)
    for key in FAMILY_KEYS[kind]:
        for t in [*ns, None]:
            trial = dict(thresholds, **{key: t})
            if better(got := score(trial), best):
                best, moved[key] = got, (t, moved.get(key, (None, thresholds[key]))[1])
                thresholds = trial
    return moved


BOUNDED = ("mlp-flat", "tcn", "lstm-narrow", "resnet18-small", "resnet18-narrow", "mobilenetv2-small",
           "gcn-2")


def fit_max_width(gs: dict) -> dict:
    """Per family of :data:`BOUNDED`: the widest multiplier learn.json measured it at that scored
    within 2 points of its group's best (None: never) -- the policy does not stretch it further."""
    out = {}
    for key in BOUNDED:
        ok = [c["width"] for cands in gs.values() for c in cands.values()
              if c["key"] == key and c["score"] >= _best(cands) - WITHIN]
        out[key] = max(ok) if ok else None
    return out


def fit_tcn_max_len(gs: dict, threshold: int | None) -> dict:
    """The longest series on which the temporal CNN is preferred to the flat MLP: the geometric
    middle between the longest series where it was within 2 and the shortest longer one where it
    was not (groups with n >= its threshold)."""
    seen = sorted((D.DATASETS[g[0]].input_shape[0], g[0], ok) for g, c in gs.items()
                  if D.DATASETS[g[0]].kind == "sequence" and threshold is not None
                  and g[1] >= threshold and (ok := _family_ok(c, "tcn")) is not None)
    good = [t for t, _, ok in seen if ok]
    if not good:
        return {"value": None, "rows": "no rows with the tcn within 2"}
    top = max(good)
    worse = [t for t, _, ok in seen if not ok and t > top]
    value = int(math.sqrt(top * min(worse))) if worse else top
    rows = ", ".join(f"{name} T={t} {'within 2' if ok else 'below'}" for t, name, ok in seen)
    return {"value": value, "rows": rows}


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
    good = {side for side, *_, d in diffs if d >= 0}
    bad = {side for side, *_, d in diffs if d < 0}
    # the largest side where the small stem never lost to the ImageNet stem (0: nowhere)
    value = max([s for s in good if not any(b <= s for b in bad)], default=0)
    rows = ", ".join(f"{nm} {side}px n={n} {m}: {d:+.1f}" for side, nm, n, m, d in sorted(diffs))
    return {"value": value, "rows": f"small - imagenet stem points: {rows}"}


def fit_epochs(gs: dict) -> dict:
    out = {}
    for kind in ("tabular", "image", "sequence", "graph"):
        learned = [(e, stop) for g, cands in gs.items() if D.DATASETS[g[0]].kind == kind
                   for c in cands.values() if c["score"] >= _best(cands) - WITHIN
                   for e, stop in zip(c["epochs_run"], c["stopped"]) if e is not None]
        cut = sorted(e for e, stop in learned if stop == "time_budget")
        eps = cut or sorted(e for e, _ in learned)
        if eps:
            out[kind] = {"value": eps[int(EPOCHS_QUANTILE * len(eps))], "runs": len(eps),
                         "quantile": EPOCHS_QUANTILE,
                         "stopped": "time_budget" if cut else "any"}
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
    stem = fit_stem(gs)
    side = stem["value"] if stem["value"] is not None else SMALL_IMAGE
    thresholds, threshold_rows, seen = {}, {}, {}
    for kind, keys in FAMILY_KEYS.items():
        for key in keys:  # only the groups where the policy offers the family at all
            mine = {g: c for g, c in gs.items() if D.DATASETS[g[0]].kind == kind
                    and _offered(key, D.DATASETS[g[0]].input_shape, side)}
            thresholds[key], threshold_rows[key] = fit_threshold(mine, key)
            seen[key] = max((g[1] for g, c in mine.items() if _family_ok(c, key) is not None),
                            default=None)
    max_width = fit_max_width(gs)
    for kind in FAMILY_KEYS:
        for key, (new, old) in refine_thresholds(gs, kind, thresholds, side, max_width).items():
            thresholds[key] = new
            threshold_rows[key] += (f"; the family's own fit gave {old}, moved to {new} by the joint "
                                    f"fit with the {kind} capacity cap (refine_thresholds: the "
                                    f"replayed picks improve)")
    tcn_len = fit_tcn_max_len(gs, thresholds.get("tcn"))
    capacity = {kind: fit_capacity(gs, kind, thresholds, side, max_width, tcn_len["value"])
                for kind in FAMILY_KEYS}
    return {"sources": [_rel(p) for p in paths], "max_width": max_width, "tcn_max_len": tcn_len,
            "runtimes": runtimes, "within_points": WITHIN,
            "fitted_datasets": sorted({r["dataset"] for r in fitted}),
            "held_out_datasets": sorted({r["dataset"] for r in runs} - {r["dataset"] for r in fitted}),
            "min_samples": thresholds, "min_samples_rows": threshold_rows, "min_samples_max_n": seen, "capacity": capacity,
            "small_stem": stem, "epochs_needed": fit_epochs(gs), "evidence": evidence(gs)}


def merge(paths: list[Path], out: Path, note: str | None = None) -> Path:
    """One learn JSON from several runs of ``zoo-bench learn`` with the same budget: runs united
    (later files replace equal runs), data sets united, each part's runtime, arguments and load
    kept under ``parts``; one learning-curve PNG per data set in ``<out stem>_plots``. Refuses
    parts whose epoch/second budgets differ."""
    from zoo.atomic import write_text_atomic

    parts, runs, datasets, budgets = [], {}, {}, None
    for p in paths:
        data = json.loads(Path(p).read_text())
        res = data["results"]
        b = {k: res["budgets"].get(k) for k in ("epochs", "time_budget_s", "val_fraction")}
        b["weights"] = res["budgets"].get("weights", "best")
        if budgets is not None and b != budgets:
            raise ValueError(f"json={str(p)!r} is not accepted: expected the budget {budgets}, "
                             f"got {b}: runs under different budgets do not compare")
        budgets = b
        parts.append({"file": Path(p).name, "runtime": data.get("runtime"), "args": data.get("args"),
                      "sizes": res["budgets"].get("sizes"), "datasets": list(res["datasets"])})
        datasets.update(res["datasets"])
        for r in res["runs"]:
            runs[(r["dataset"], r["n"], r["candidate"], r["seed"])] = r
        seeds = res.get("seeds")
    payload = {"suite": "learn", "runtime": parts[0]["runtime"], "args": {"merged": [x["file"] for x in parts]},
               "notes": note,
               "results": {"budgets": dict(budgets, sizes="per part"), "seeds": seeds,
                           "datasets": datasets, "runs": list(runs.values()), "parts": parts}}
    write_text_atomic(out, json.dumps(payload, indent=1) + "\n")
    from . import learn_report as R

    plots = out.with_name(out.stem + "_plots")
    plots.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(r["dataset"] for r in runs.values()):
        R.plot_dataset(plots / f"{name}.png", D.DATASETS[name],
                       [r for r in runs.values() if r["dataset"] == name])
    return out


GENERATED = "python -m zoo.benchmarks.fit_policy: do not edit; rerun it on new results"


def render(fitted: dict) -> str:
    """The fitted constants as the JSON text of ``factory/policy_fit.json`` (data, not code)."""
    return json.dumps({"generated_by": GENERATED, **fitted}, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    from zoo.atomic import write_text_atomic

    p = argparse.ArgumentParser(prog="python -m zoo.benchmarks.fit_policy", description=__doc__.split("\n")[0])
    p.add_argument("--json", action="append", type=Path, metavar="PATH",
                   help="learn results (repeatable; default benchmarks/results/learn.json)")
    p.add_argument("--out", type=Path, default=OUT, help=f"JSON file to write (default {OUT})")
    p.add_argument("--print", action="store_true", help="print the JSON, do not write it")
    p.add_argument("--merge", type=Path, metavar="OUT", help="first merge the --json files into the "
                   "learn JSON OUT (same budgets required) and fit that")
    p.add_argument("--note", help="with --merge: how the parts were run (machine load, budgets)")
    args = p.parse_args(argv)
    paths = args.json or [RESULTS / "learn.json"]
    if args.merge is not None:
        paths = [merge(paths, args.merge, args.note)]
        print(f"merged into {args.merge}")
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
        print(f"  capacity[{kind}] = {c.get('params_at_n_max')} (n / {c.get('n_max')})^{c.get('exponent')}"
              f" ({c.get('within')} groups within {WITHIN:g}): {c['rows']}")
    print(f"  small stem up to {fitted['small_stem']['value']} px: {fitted['small_stem']['rows']}")
    print(f"  epochs needed: {fitted['epochs_needed']}")
    print(f"  widest multipliers kept: {fitted['max_width']}")
    print(f"  tcn instead of the flat MLP up to T = {fitted['tcn_max_len']['value']}: "
          f"{fitted['tcn_max_len']['rows']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
