"""``zoo.compare``: the seed's "start simple" rule as a command (module ``zoo.comparison``).

The seed's checklist: "Benchmark against baselines - Compare to simple model (linear, small MLP) -
Ensure complexity adds value (% improvement > 5%)". :func:`compare` trains the linear baseline, a
small MLP and the given model with :func:`zoo.fit` under the same time budget and seed, and says
whether the given model's best validation metric beats the better of the two simple models by more
than ``THRESHOLD``.

How "% improvement > 5%" is read: **5 points** of the metric (0.05 of accuracy or of R^2), not 5 %
relative. The seed writes accuracy differences as "%" in points throughout ("Accuracy: 75%" vs
"95%" is "20% better accuracy"; train 99 % vs val 70 % is a "29% gap"), and a relative change is
meaningless for R^2, which can be 0 or negative. Against the *better* simple model, because the
seed's progression tries linear, then the small MLP, before any specialised architecture.

The simple models see the inputs flattened, ``(N, ...) -> (N, prod(...))``: pixels and time steps
as independent features. For graphs they see each node's features alone, without the edges (the
seed: "If graph structure doesn't help (test MLP baseline first!)").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import validation as V
from .data import Graph, prepare
from .training import _probe, fit
from .history import History, new_figure, save_png

THRESHOLD = 0.05        # points of accuracy / R^2 (see the module docstring)
SMALL_MLP = {"hidden": 128, "depth": 1}  # the seed's step 2: one hidden layer of 128


@dataclass
class Comparison:
    """What :func:`compare` found. ``rows``: one dict per model, in training order (linear, mlp,
    the model): ``name``, ``role`` ("baseline" | "simple" | "model"), ``val_metric`` (best epoch),
    ``params``, ``seconds`` (its training wall time), ``epochs``, ``stopped``."""

    task: str
    metric: str
    rows: list[dict]
    threshold: float = THRESHOLD
    histories: dict[str, History] = field(default_factory=dict)

    @property
    def best_simple(self) -> dict:
        return max((r for r in self.rows if r["role"] != "model"), key=lambda r: r["val_metric"])

    @property
    def model(self) -> dict:
        return next(r for r in self.rows if r["role"] == "model")

    @property
    def margin(self) -> float:
        """The model's best validation metric minus the better simple model's (points)."""
        return self.model["val_metric"] - self.best_simple["val_metric"]

    @property
    def pays(self) -> bool:
        """True when the complexity pays: ``margin > threshold``."""
        return self.margin > self.threshold

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "threshold": self.threshold,
                "rows": [dict(r) for r in self.rows], "best_simple": self.best_simple["name"],
                "margin": self.margin, "pays": self.pays,
                "histories": {k: h.to_dict() for k, h in self.histories.items()}}

    def table(self) -> str:
        """A plain-text table, one line per model, and the verdict."""
        base = self.rows[0]["val_metric"]
        head = ("model", "params", "seconds", "epochs", "stopped", f"val {self.metric}", "vs linear")
        lines = [(r["name"], f"{r['params']:,}", f"{r['seconds']:.1f}", str(r["epochs"]), r["stopped"],
                  f"{r['val_metric']:.4f}", f"{r['val_metric'] - base:+.4f}") for r in self.rows]
        widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i in (0, 4) else f"{{:>{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*x) for x in lines]
        m, s = self.model, self.best_simple
        out.append(f"complexity pays: {'yes' if self.pays else 'no'} ({m['name']} is "
                   f"{self.margin:+.4f} {self.metric} over the better simple model, {s['name']}; "
                   f"the rule needs more than +{self.threshold:.2f}, i.e. {self.threshold * 100:g} "
                   f"points)")
        return "\n".join(out)

    def plot(self, path) -> Path:
        """A bar chart of each model's best validation metric (PNG, written atomically), the bar
        the model must clear (the better simple model + threshold) drawn as a dashed line."""
        if str(path).lower()[-4:] != ".png":
            raise ValueError(f"path={str(path)!r} is not accepted: expected a file name ending in .png")
        fig = new_figure(figsize=(6, 3.5))
        ax = fig.subplots()
        names = [r["name"] for r in self.rows]
        values = [r["val_metric"] for r in self.rows]
        colors = ["#9e9e9e" if r["role"] != "model" else ("#2e7d32" if self.pays else "#c62828")
                  for r in self.rows]
        bars = ax.bar(names, values, color=colors)
        for bar, r in zip(bars, self.rows):
            ax.annotate(f"{r['val_metric']:.3f}\n{r['params']:,} params", (bar.get_x() +
                        bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
        ax.axhline(self.best_simple["val_metric"] + self.threshold, color="black", linestyle="--",
                   linewidth=1, label=f"better simple model + {self.threshold:g}")
        ax.set_ylabel(f"best val {self.metric}")
        ax.set_title(f"complexity pays: {'yes' if self.pays else 'no'}", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.margins(y=0.2)
        fig.tight_layout()
        return save_png(fig, path)


def compare(model: nn.Module, train: Any, val: Any, *, time_budget_s: float, seed: int = 0,
            progress: bool = False) -> Comparison:
    """Train the linear baseline, a small MLP (one hidden layer of 128) and ``model``, each with
    :func:`zoo.fit` for ``time_budget_s`` seconds with ``seed``; return the :class:`Comparison`.

    ``train`` / ``val`` are what :func:`zoo.fit` takes (``val`` is required: a fraction splits
    ``train`` identically for all three). ``model`` is trained in place and ends with its best
    epoch's weights. Shapes: inputs (N, ...) are flattened to (N, prod(...)) for the simple models;
    graph nodes (N, F) keep their F features.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module "
                         f"(a zoo model from zoo.create)")
    time_budget_s = V.positive_number("time_budget_s", time_budget_s)
    seed = V.seed("seed", seed)
    progress = V.boolean("progress", progress)
    if val is None:
        raise ValueError("val=None is not accepted: expected validation data or a fraction in (0, 1) "
                         "(the comparison is on the validation metric)")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    tr, va, task = prepare(train, val, task=None, seed=seed, dtype=dtype)
    device = next(model.parameters()).device
    n_out = _probe(model, tr.to(device), task)
    (x_tr, y_tr), (x_va, y_va) = _flat(tr), _flat(va)

    from .registry import create

    rows, histories = [], {}
    runs = (("linear", "baseline", lambda: create("linear", in_features=x_tr.shape[1],
                                                   num_classes=n_out)),
            ("mlp", "simple", lambda: create("mlp", in_features=x_tr.shape[1], num_classes=n_out,
                                             **SMALL_MLP)),
            (None, "model", lambda: model))
    for name, role, make in runs:
        torch.manual_seed(seed)
        net = make()
        if role == "model":
            name = _name(model)
            name = f"{name} (given)" if name in ("linear", "mlp") else name
            data = (train, val)
        else:
            data = ((x_tr, y_tr), (x_va, y_va))
        history = fit(net, data[0], data[1], time_budget_s=time_budget_s, seed=seed, task=task,
                      progress=progress)
        best = history.best
        rows.append({"name": name, "role": role, "val_metric": float(best["val_metric"]),
                     "params": sum(p.numel() for p in net.parameters()),
                     "seconds": history.epochs[-1]["seconds"],
                     "epochs": len(history.epochs), "stopped": history.stopped})
        histories[name] = history
    if math.isnan(rows[2]["val_metric"]):
        raise RuntimeError(f"{rows[2]['name']} has no finite validation metric: training diverged")
    return Comparison(task=task, metric=histories[rows[0]["name"]].metric, rows=rows,
                      histories=histories)


def _flat(split) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as ``(X (N, D) float, y)`` for the simple models; graphs: the split's nodes alone."""
    if isinstance(split, Graph):
        X, y = split.x[split.mask], split.y[split.mask]
    else:
        X, y = split.X, split.y
    X = X.reshape(X.shape[0], -1)
    return (X if X.is_floating_point() else X.float()), y


def _name(model: nn.Module) -> str:
    try:
        return model.config["name"]
    except (AttributeError, KeyError):
        return type(model).__name__
