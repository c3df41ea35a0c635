"""``zoo-bench learn``: learning curves on real data, the evidence the factory's policy is fitted to.

For each data set of :mod:`zoo.benchmarks.datasets`, each training-set size ``n`` (seeded
subsamples of the train split, :func:`~zoo.benchmarks.datasets.train_sizes`), each candidate of the
data set's kind (:func:`candidates`: families at several width multipliers and, for images, both
stems) and each seed, one model is built with ``torch.manual_seed(seed)`` and trained by
``zoo.fit`` under the same budget (``--epochs`` and ``--time-budget`` seconds, whichever ends
first). Of the ``n`` samples, 20 % (seeded, stratified) are fit's validation split, which picks the
best epoch whose weights are kept; the score is then measured on the data set's own test split:
accuracy (classification) or R^2 = 1 - SS_res / SS_tot (regression, in the target's own units:
zoo.fit standardises targets while training and folds the scale back into the head).

Recorded per run: test score, validation score at the best epoch, best epoch, epochs run, seconds
per epoch (wall, cumulative seconds / epochs), parameters, why training stopped. Output: JSON
(default ``benchmarks/results/learn.json``; ``--quick``: ``learn_quick.json``) with the runtime
(device, threads, versions), seeds, budgets and each data set's source, rewritten atomically after
every data set (``--resume`` skips runs already there); one PNG per data set (score vs parameters,
a line per n); a summary table; the two tables of issue 8 (``--tables`` prints them from the JSON
without training). Models built with images use ``img_size`` = the data's height (square inputs).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from . import datasets as D
from .report import print_header, progress, write_json

RESULTS = Path(__file__).resolve().parent / "results"
# epochs None: zoo.fit's own rule (ceil(2000 / steps per epoch) within [10, 200]; graphs 200), the
# recipe a user gets; the seconds cap every run alike (fit's cosine schedule ends with the budget).
FULL = {"epochs": None, "time_budget_s": 60.0, "seeds": 2, "sizes": "all"}
QUICK = {"epochs": None, "time_budget_s": 10.0, "seeds": 2, "sizes": "largest"}
QUICK_DATASETS = ("digits", "iris", "diabetes", "italy_power_demand", "gunpoint", "karate_club")
VAL_FRACTION = 0.2
# A test split of m samples scores in steps of 100/m points: under 100 samples one sample moves the
# score by more than the 2-point bar the factory is judged by (issue 10), so such sets train at
# least this many seeds and compare means (graphs: 15-18 test nodes, 5.6-6.7 points a node).
SMALL_TEST = 100
SMALL_TEST_SEEDS = 5
# At a data set's largest n, the size ``zoo-bench learn --check`` judges, a candidate's mean must
# resolve the 2-point bar: a mean over k seeds on m test samples has a binomial standard error of
# about 100 sqrt(p (1 - p) / (k m)) points, <= 1.6 points (p = 0.5) once k m >= 1,000 predictions.
# Two seeds did not: on breast_cancer (m = 171) the pick's 2-seed mean sat 2.0 points under the
# linear baseline (learn_check.json of commit 1704bdf); over the 6 seeds this rule gives, 0.5 points
# under it and 0.6 under the best. 10 to 100 seeds: the sets with the smallest test splits (graphs:
# 15-18 test nodes; sktime's UnitTest: 22 series) need 46-67 seeds for the bound to hold; an
# earlier cap of 20 left their standard errors at 2.4-2.9 points. Small sets train fast. The floor
# of 10 is for the training's own noise, which no test split averages away. The check judges a gap,
# a difference of two k-seed means, with a standard error of sqrt(2 / k) s for a seed-to-seed
# standard deviation s (learn_report.seed_noise; `zoo-bench learn --tables` prints it). Over the
# 30 sets learn.json held before this floor, that error was <= 1 point on 12 sets at k = 5 and on
# 20 at k = 10 (s = 0.4-13.9 points).
JUDGED_PREDICTIONS = 1000
JUDGED_SEEDS = (10, 100)


def seeds_for(info: D.DatasetInfo, seeds: list[int], n: int | None = None) -> list[int]:
    """The seeds a data set trains at ``n`` samples: ``seeds``, or 0..k-1 when more are needed: k =
    :data:`SMALL_TEST_SEEDS` when its test split has fewer than :data:`SMALL_TEST` samples; at its
    largest n (the judged size), k = ceil(:data:`JUDGED_PREDICTIONS` / test samples) within
    :data:`JUDGED_SEEDS`. Never fewer than asked for."""
    k = SMALL_TEST_SEEDS if info.n_test < SMALL_TEST else 0
    if n == info.n_train:  # the largest of train_sizes
        lo, hi = JUDGED_SEEDS
        k = max(k, min(hi, max(lo, math.ceil(JUDGED_PREDICTIONS / info.n_test))))
    return sorted(set(seeds) | set(range(k)))


@dataclass(frozen=True)
class Candidate:
    """One model to train: a registry ``name`` at ``width_mult``, with ``stem`` (images only) and the
    ``view`` of the input it takes: "native" (its own kind) or "flat" (each sample flattened to a
    feature vector, for linear/MLP on images and series)."""
    name: str
    width_mult: float = 1.0
    stem: str | None = None
    view: str = "native"

    @property
    def label(self) -> str:
        return f"{self.name}-x{self.width_mult:g}" + (f"-{self.stem}" if self.stem else "")


_C = Candidate
CANDIDATES = {
    "tabular": [_C("linear"), _C("mlp", 0.125), _C("mlp", 0.5), _C("mlp", 2.0)],
    "image": [_C("linear", view="flat"), _C("mlp", 0.25, view="flat"), _C("mlp", 1.0, view="flat")]
    + [_C(m, w, stem=s) for m, ws in (("resnet18", (0.25, 0.5)), ("mobilenetv2", (0.35, 0.75)))
       for w in ws for s in ("small", "imagenet")],
    "sequence": [_C("linear", view="flat"), _C("mlp", 0.25, view="flat"), _C("mlp", 1.0, view="flat"),
                 _C("tcn", 0.5), _C("tcn", 1.0), _C("lstm", 0.5), _C("lstm", 1.0), _C("transformer", 0.5)],
    "graph": [_C("linear"), _C("mlp", 0.25), _C("mlp", 1.0), _C("gcn", 0.5), _C("gcn", 1.0), _C("gcn", 2.0)],
}
QUICK_CANDIDATES = {
    "tabular": [_C("linear"), _C("mlp", 0.5)],
    "image": [_C("linear", view="flat"), _C("mlp", 0.5, view="flat"), _C("resnet18", 0.25, stem="small")],
    "sequence": [_C("mlp", 0.5, view="flat"), _C("tcn", 0.5), _C("lstm", 0.5)],
    "graph": [_C("linear"), _C("gcn", 1.0)],
}


MAX_ATTENTION_LEN = 512  # the transformer's (B, heads, T, T) attention on longer series: memory


def candidates(kind: str, *, quick: bool = False, pattern: str | None = None,
               seq_len: int | None = None) -> list[Candidate]:
    """The candidates for a data set of ``kind``; ``pattern``: comma-separated shell patterns of
    labels (e.g. ``"linear*,mlp-x0.5"``), keeping those matching any. Series longer than
    :data:`MAX_ATTENTION_LEN` (``seq_len``) leave the transformer out (its attention is O(T^2))."""
    import fnmatch

    chosen = (QUICK_CANDIDATES if quick else CANDIDATES)[kind]
    if seq_len is not None and seq_len > MAX_ATTENTION_LEN:
        chosen = [c for c in chosen if c.name != "transformer"]
    if pattern:
        pats = [p.strip() for p in pattern.split(",") if p.strip()]
        chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c.label, p) for p in pats)]
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help=f"a subset in minutes: {', '.join(QUICK_DATASETS)}; largest n; "
                             f"at most {QUICK['time_budget_s']:g} s per run")
    parser.add_argument("--datasets", default=None, metavar="A,B",
                        help=f"data sets to run (default: all, or the quick ones): {', '.join(D.DATASETS)}")
    parser.add_argument("--candidates", default=None, metavar="PATTERNS",
                        help="comma-separated shell patterns of candidate labels, e.g. 'linear*,tcn-*'")
    parser.add_argument("--sizes", choices=("all", "largest"), default=None,
                        help="training-set sizes: all of each data set's, or only the largest")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="epochs per run (default: zoo.fit's own rule, capped by --time-budget)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="seconds of training per run (a cap)")
    parser.add_argument("--seeds", type=int, default=None, metavar="K", help="seeds 0..K-1 per configuration")
    parser.add_argument("--weights", choices=("best", "last"), default="best",
                        help="the weights a run keeps: best = zoo.fit's best epoch on the validation "
                             "split (default); last = the last epoch, the same training split fitted "
                             "without validation (no early stopping)")
    parser.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads (default: the physical cores)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="results JSON (default benchmarks/results/learn.json; --quick: learn_quick.json)")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="folder for one PNG per data set (default: beside the JSON, <stem>_plots)")
    parser.add_argument("--resume", action="store_true", help="keep runs already in the JSON, run the rest")
    parser.add_argument("--check", action="store_true",
                        help="the factory's pick vs the best candidate and linear on every set of the JSON "
                             "(benchmarks/learn_check.py); exit 1 unless it holds")
    parser.add_argument("--tables", action="store_true",
                        help="print the summary and issue-8 tables from the JSON and exit (no training)")


def _settings(args) -> dict:
    """Budgets and paths from the arguments (quick or full defaults), checked."""
    from zoo import validation as v

    base = QUICK if args.quick else FULL
    s = {"epochs": v.positive_int("--epochs", args.epochs) if args.epochs is not None else base["epochs"],
         "time_budget_s": v.positive_number("--time-budget", args.time_budget if args.time_budget is not None
                                            else base["time_budget_s"]),
         "seeds": list(range(v.positive_int("--seeds", args.seeds if args.seeds is not None else base["seeds"]))),
         "sizes": args.sizes or base["sizes"], "val_fraction": VAL_FRACTION,
         "weights": args.weights}
    default_json = RESULTS / ("learn_quick.json" if args.quick else "learn.json")
    s["json"] = Path(args.json) if args.json else default_json
    s["plots"] = Path(args.plots) if args.plots else s["json"].with_name(s["json"].stem + "_plots")
    names = D.parse_names(args.datasets) if args.datasets else list(QUICK_DATASETS if args.quick else D.DATASETS)
    s["datasets"] = names
    return s


# ----- one run ---------------------------------------------------------------------------------

def _model(cand: Candidate, info: D.DatasetInfo, in_shape: tuple, num_nodes: int | None = None):
    """Build ``cand`` for ``info`` through the registry; arguments the builder lacks are left out
    (a ``stem`` it lacks is an error: the comparison would be meaningless)."""
    import zoo

    entry = zoo.get_entry(cand.name)
    kw = {"num_classes": info.num_classes, "width_mult": cand.width_mult}
    if cand.view == "flat" or entry.input_kind in ("tabular", "graph"):
        kw["in_features"] = math.prod(in_shape)
    elif entry.input_kind == "image":
        kw.update(in_chans=in_shape[0], img_size=in_shape[1])
    else:  # sequence: (T, C)
        kw.update(seq_len=in_shape[0], in_features=in_shape[1])
    if cand.stem is not None:
        if "stem" not in entry.defaults:
            raise ValueError(f"{cand.name} has no stem argument yet (stem={cand.stem!r} asked)")
        kw["stem"] = cand.stem
    if num_nodes is not None:
        kw["num_nodes"] = num_nodes  # the size of its example inputs only
    return zoo.create(cand.name, **{k: val for k, val in kw.items() if k in entry.defaults})


def evaluate(model, X, y, task: str, *, edge_index=None, mask=None, batch_size: int = 512) -> float:
    """Test score of ``model``: accuracy, or R^2 = 1 - sum (y - p)^2 / sum (y - mean y)^2.

    Arrays: X (N, ...) with y (N,); graphs: the whole graph's x, ``edge_index`` and y, scored on
    the nodes of ``mask``.
    """
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        if edge_index is not None:
            out = model(torch.as_tensor(X, device=device), torch.as_tensor(edge_index, device=device))
            out, y = out[torch.as_tensor(mask, device=device)].cpu(), y[mask]
        else:
            out = torch.cat([model(torch.as_tensor(X[i:i + batch_size], device=device)).cpu()
                             for i in range(0, len(X), batch_size)])
    y = torch.as_tensor(y)
    if task == "classification":
        return float((out.argmax(-1) == y).float().mean())
    pred = out.reshape(len(y)).double()
    ss_res = float(((y.double() - pred) ** 2).sum())
    ss_tot = float(((y.double() - y.double().mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def _arrays(data: D.ArraySplit, info: D.DatasetInfo, cand: Candidate, n: int, seed: int):
    """(train, val, test) (X, y) pairs for one run: a seeded subsample of ``n``, 20 % of it as val;
    flattened for the "flat" view."""
    cls = info.task == "classification"
    idx = D.subsample(data.y_train, n, 1000 + seed, classification=cls)
    Xs, ys = data.X_train[idx], data.y_train[idx]
    tr, va = D.stratified_split(ys, 1.0 - VAL_FRACTION, seed, classification=cls)
    Xte, yte = data.X_test, data.y_test
    if cand.view == "flat":
        Xs, Xte = Xs.reshape(len(Xs), -1), Xte.reshape(len(Xte), -1)
    return (Xs[tr], ys[tr]), ((Xs[va], ys[va]) if len(va) else None), (Xte, yte)


def _graph(data: D.GraphSplit, cand: Candidate, n: int, seed: int):
    """Graph runs: n of the train nodes (seeded), 20 % of them as validation nodes."""
    import numpy as np

    nodes = np.flatnonzero(data.train_mask)
    picked = nodes[D.subsample(data.y[nodes], n, 1000 + seed)]
    tr, va = D.stratified_split(data.y[picked], 1.0 - VAL_FRACTION, seed)
    train_mask = np.zeros_like(data.train_mask)
    train_mask[picked[tr]] = True
    val_mask = np.zeros_like(data.train_mask)
    val_mask[picked[va]] = True
    return train_mask, val_mask


def selection(val, budget: dict):
    """The validation data ``zoo.fit`` gets: ``val`` when a run keeps its best validation epoch
    (``budget["weights"] == "best"``, the default), None when it keeps its last (``"last"``: the
    same training split, no early stopping; the validation samples are left unused)."""
    return val if budget.get("weights", "best") == "best" else None


def run_one(info: D.DatasetInfo, data, cand: Candidate, n: int, seed: int, budget: dict,
            device: str) -> dict:
    """Train one candidate once; the JSON row of the run (an ``error`` entry if it failed)."""
    import numpy as np
    import torch

    import zoo

    row = {"dataset": info.name, "n": n, "candidate": cand.label, "model": cand.name,
           "width_mult": cand.width_mult, "stem": cand.stem, "view": cand.view, "seed": seed}
    try:
        row["family"] = zoo.get_entry(cand.name).family
        graph = isinstance(data, D.GraphSplit)
        torch.manual_seed(seed)
        in_shape = tuple(data.x.shape[1:]) if graph else tuple(data.X_train.shape[1:])
        model = _model(cand, info, in_shape, len(data.y) if graph else None)
        row["params"] = int(sum(p.numel() for p in model.parameters()))
        fit_kw = dict(epochs=budget["epochs"], time_budget_s=budget["time_budget_s"], seed=seed,
                      device=device, progress=False, task=info.task)
        start = time.perf_counter()
        if graph and row["family"] == "gcn":
            train_mask, val_mask = _graph(data, cand, n, seed)
            hist = zoo.fit(model, (data.x, data.edge_index, data.y, train_mask),
                           selection(val_mask if val_mask.any() else None, budget), **fit_kw)
            score = evaluate(model, data.x, data.y, info.task, edge_index=data.edge_index,
                             mask=data.test_mask)
        elif graph:  # linear / MLP on node features alone
            train_mask, val_mask = _graph(data, cand, n, seed)
            val = (data.x[val_mask], data.y[val_mask]) if val_mask.any() else None
            hist = zoo.fit(model, (data.x[train_mask], data.y[train_mask]), selection(val, budget),
                           **fit_kw)
            score = evaluate(model, data.x[data.test_mask], data.y[data.test_mask], info.task)
        else:
            train, val, (Xte, yte) = _arrays(data, info, cand, n, seed)
            hist = zoo.fit(model, train, selection(val, budget), **fit_kw)
            score = evaluate(model, Xte, yte, info.task)
        wall = time.perf_counter() - start
        epochs = hist.epochs
        best = hist.best or {}
        row.update(test_score=score, metric=hist.metric, val_score=best.get("val_metric"),
                   best_epoch=hist.best_epoch, epochs_run=len(epochs), stopped=hist.stopped,
                   seconds_per_epoch=hist.seconds_per_epoch,
                   train_seconds=epochs[-1]["seconds"] if epochs else 0.0, wall_seconds=wall)
        if not np.isfinite(score):
            row["error"] = f"non-finite test score {score}"
    except Exception as exc:  # noqa: BLE001 - one run's failure must not lose the others'
        text = str(exc).splitlines()[0] if str(exc) else ""
        row["error"] = f"{type(exc).__name__}: {text}"[:300]
    return row


def _key(row: dict) -> tuple:
    return (row["dataset"], row["n"], row["candidate"], row["seed"])


# ----- the suite -------------------------------------------------------------------------------

def _payload_results(settings: dict, rows: list[dict]) -> dict:
    return {"budgets": {"epochs": settings["epochs"], "time_budget_s": settings["time_budget_s"],
                        "val_fraction": settings["val_fraction"], "sizes": settings["sizes"],
                        "weights": settings["weights"]},
            "seeds": settings["seeds"],
            "datasets": {n: dict(D.DATASETS[n].to_dict(), sizes=_sizes(D.DATASETS[n], settings["sizes"]))
                         for n in dict.fromkeys(settings["datasets"] + [r["dataset"] for r in rows])},
            "runs": rows}


def _seq_len(info: D.DatasetInfo) -> int | None:
    return info.input_shape[0] if info.kind == "sequence" else None


def _sizes(info: D.DatasetInfo, which: str) -> list[int]:
    sizes = D.train_sizes(info)
    return sizes[-1:] if which == "largest" else sizes


def run(args: argparse.Namespace) -> int:
    from . import learn_report as R

    settings = _settings(args)
    if args.tables:
        return R.print_saved(settings["json"])
    if args.check:
        from .learn_check import check
        return check(settings["json"], args=vars(args))
    import torch

    from zoo.factory.timing import physical_cores, runtime_info

    threads = args.threads or physical_cores()
    torch.set_num_threads(threads)
    info = runtime_info()
    info.update(bench_threads=threads, train_device=args.device)
    print_header("learn", info)
    epochs = settings["epochs"] or "zoo.fit's default number of"
    print(f"budget per run: {epochs} epochs or {settings['time_budget_s']:g} s, whichever "
          f"ends first; seeds {settings['seeds']} ({SMALL_TEST_SEEDS} on test splits under {SMALL_TEST} "
          f"samples; at the largest n, enough for {JUDGED_PREDICTIONS:,} test predictions, "
          f"{JUDGED_SEEDS[0]}-{JUDGED_SEEDS[1]}); {VAL_FRACTION:.0%} of each n is fit's validation "
          f"split (best epoch); scores on each data set's test split\n")
    done = {}
    if args.resume and settings["json"].exists():
        earlier = json.loads(settings["json"].read_text())["results"]
        kept = earlier["budgets"].get("weights", "best")
        if kept != settings["weights"]:
            raise ValueError(f"--resume is not accepted with --weights={settings['weights']!r}: the runs "
                             f"in {settings['json']} kept their {kept!r} weights; use another --json")
        done = {_key(r): r for r in earlier["runs"] if "error" not in r}
    plan = [(name, n, cand, seed) for name in settings["datasets"]
            for n in _sizes(D.DATASETS[name], settings["sizes"])
            for cand in candidates(D.DATASETS[name].kind, quick=args.quick, pattern=args.candidates,
                                   seq_len=_seq_len(D.DATASETS[name]))
            for seed in seeds_for(D.DATASETS[name], settings["seeds"], n)]
    if not plan:
        raise ValueError(f"--candidates={args.candidates!r} matches no candidate of the chosen data sets")
    settings["json"].parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = [r for r in done.values() if r["dataset"] not in settings["datasets"]]
    budget = {k: settings[k] for k in ("epochs", "time_budget_s", "weights")}
    for i, (name, n, cand, seed) in enumerate(progress(plan, desc="learn", total=len(plan))):
        key = (name, n, cand.label, seed)
        if key in done:
            rows.append(done[key])
        else:
            rows.append(run_one(D.DATASETS[name], D.load(name), cand, n, seed, budget, args.device))
        if i + 1 == len(plan) or plan[i + 1][0] != name:  # a data set finished: save and plot
            write_json(settings["json"], "learn", info, vars(args), _payload_results(settings, rows))
            settings["plots"].mkdir(parents=True, exist_ok=True)
            R.plot_dataset(settings["plots"] / f"{name}.png", D.DATASETS[name],
                           [r for r in rows if r["dataset"] == name])
    payload = _payload_results(settings, rows)
    R.print_all(payload)
    print(f"\nwrote {settings['json']} and {len(settings['datasets'])} plot(s) in {settings['plots']}")
    return 1 if any("error" in r for r in rows) else 0
