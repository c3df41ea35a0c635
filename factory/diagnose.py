"""Training diagnosis: what learning curves say, and the one-batch sanity check.

:func:`diagnose_history` names the case of the seed's "Debugging Architectures" section from a
``zoo.fit`` History (or plain train/val lists) and gives that case's remedies in the seed's order:

* **not learning** (Problem 1, "loss stays constant"): the train loss fell less than
  :data:`FLAT_DROP` of its first value over the run (without a loss: the train metric rose less
  than :data:`FLAT_METRIC`). Both numbers are ours.
* **overfitting** (Problem 2, "train >> val"): the last epoch's train metric beats validation by
  more than :data:`GAP` -- the seed's "gap > 5%" (accuracy points; for R^2 the same 0.05, ours).
  With losses only: the validation loss ended more than :data:`VAL_RISE` above its best while the
  train loss kept falling (ours).
* **underfitting** (Problem 3, "train and val both low"): no such gap, and the train metric is
  below ``target`` (default :data:`TARGET`, ours: the seed calls 60-65 % accuracy low and 95 %
  good; pass your own target).
* **healthy** otherwise.

:func:`overfit_batch` is the classic check before any tuning: one small batch with fixed random
targets, Adam at a stated learning rate (:data:`OVERFIT_LR`) for up to ``steps`` steps; a model
that cannot drive that loss near zero (below :data:`NEAR_ZERO` of its first value) has a bug.
Our numbers: 1e-2 because the zoo's GCN (Glorot init, 1.3k parameters, 64 nodes) needs ~120 of the
200 steps there and does not get below 20 % of its first loss at 3e-3; mlp, lstm, transformer, gcn,
resnet18 and mobilenetv2 all get there at 1e-2 (tests/factory/test_check_diagnose.py).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten

from zoo import validation as v

from .check_rules import Finding

FLAT_DROP = 0.05
FLAT_METRIC = 0.01
GAP = 0.05          # the seed: "Training accuracy >> Validation accuracy (gap > 5%)"
VAL_RISE = 0.10
TARGET = 0.9
NEAR_ZERO = 0.02
OVERFIT_STEPS = 200
OVERFIT_LR = 1e-2
OVERFIT_BATCH = 8

REMEDIES = {
    "not-learning": ("add skip connections (ResNet)", "check initialization (Xavier or He)",
                     "lower the learning rate", "check data preprocessing (normalized inputs?)"),
    "overfitting": ("reduce capacity (fewer layers/channels)", "add dropout / weight decay",
                    "data augmentation", "collect more data"),
    "underfitting": ("train longer (more epochs)", "increase capacity (more layers/channels)",
                     "reduce regularization (lower dropout / weight decay)",
                     "check the learning rate (too low?)"),
}
_STATUS = {"not-learning": "fail", "overfitting": "warn", "underfitting": "warn", "healthy": "pass"}


def _column(rows: list[dict], key: str) -> list[float] | None:
    values = [r.get(key) for r in rows]
    if all(x is None for x in values):
        return None
    if any(x is None for x in values):
        raise ValueError(f"history[{key!r}]={values!r} is not accepted: expected a number in "
                         f"every epoch or in none")
    return [v.number(f"history[{key!r}]", x) for x in values]


def _bad(history, accepted: str) -> ValueError:
    shown = repr(history)
    return ValueError(f"history={shown[:77] + '...' if len(shown) > 80 else shown} is not "
                      f"accepted: expected {accepted}")


def history_rows(history) -> tuple[list[dict], str]:
    """``history`` as epoch rows ``{train_loss, val_loss, train_metric, val_metric}`` and the
    metric's name. Accepts a ``zoo.fit`` History (``.to_dict()``), its dict / JSON file form
    (``{"metric": ..., "epochs": [rows]}``), or plain lists: ``{"train": [...], "val": [...]}``
    (metrics, higher is better; ``"metric": "loss"`` says they are losses) and/or
    ``train_loss``/``val_loss``/``train_metric``/``val_metric`` lists."""
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if isinstance(history, (str, os.PathLike)):
        try:
            history = json.loads(Path(history).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"history={str(history)!r} is not accepted: expected a readable JSON "
                             f"file ({exc})") from None
    accepted = "a zoo.fit History, its to_dict() form, or {'train': [...], 'val': [...]} lists"
    if not isinstance(history, dict):
        raise _bad(history, accepted)
    metric = history.get("metric") or "accuracy"
    if "epochs" in history:
        rows = history["epochs"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _bad(history, accepted)
        return rows, metric
    lists = {k: history[k] for k in ("train", "val", "train_loss", "val_loss", "train_metric",
                                     "val_metric") if k in history}
    if not lists or not all(isinstance(x, (list, tuple)) for x in lists.values()) \
            or len({len(x) for x in lists.values()}) != 1:
        raise _bad(history, accepted + " of equal length")
    as_loss = metric == "loss"
    rename = {"train": "train_loss" if as_loss else "train_metric",
              "val": "val_loss" if as_loss else "val_metric"}
    n = len(next(iter(lists.values())))
    rows = [{rename.get(k, k): x[i] for k, x in lists.items()} for i in range(n)]
    return rows, metric


def diagnose_history(history, *, target: float | None = None) -> Finding:
    """Name the case the curves show (module docstring); a :class:`Finding` of rule ``fit``
    whose ``data["case"]`` is ``not-learning``, ``overfitting``, ``underfitting`` or ``healthy``."""
    target = TARGET if target is None else v.number("target", target)
    rows, metric = history_rows(history)
    tl, vl = _column(rows, "train_loss"), _column(rows, "val_loss")
    tm, vm = _column(rows, "train_metric"), _column(rows, "val_metric")
    data = {"epochs": len(rows), "metric": metric, "target": target}
    if len(rows) < 2 or (tl is None and tm is None):
        return Finding("fit", "skip", f"{len(rows)} epoch(s) with train curves: need at least 2",
                       data=data)
    case, facts = "healthy", []
    if tl is not None:
        drop = (tl[0] - min(tl)) / abs(tl[0]) if tl[0] else 0.0
        data["train_loss_drop"] = drop
        facts.append(f"train loss {tl[0]:.4g} -> best {min(tl):.4g} ({drop:.1%} lower)")
        if drop < FLAT_DROP:
            case = "not-learning"
    elif max(tm) - tm[0] < FLAT_METRIC:
        case = "not-learning"
        facts.append(f"train {metric} {tm[0]:.4g} -> best {max(tm):.4g} (+{max(tm) - tm[0]:.3g})")
    if case == "healthy" and tm is not None and vm is not None:
        gap = tm[-1] - vm[-1]
        data.update(train_metric=tm[-1], val_metric=vm[-1], gap=gap)
        facts.append(f"last epoch train {metric} {tm[-1]:.4g}, val {vm[-1]:.4g} (gap {gap:+.3g})")
        if gap > GAP:
            case = "overfitting"
        elif tm[-1] < target:
            case = "underfitting"
            facts.append(f"train {metric} below the target {target:g}")
    elif case == "healthy" and tl is not None and vl is not None:
        best = min(range(len(vl)), key=vl.__getitem__)
        rise = (vl[-1] - vl[best]) / abs(vl[best]) if vl[best] else 0.0
        data.update(val_loss_best_epoch=best + 1, val_loss_rise=rise)
        facts.append(f"val loss best {vl[best]:.4g} at epoch {best + 1}, last {vl[-1]:.4g}")
        if rise > VAL_RISE and tl[-1] < tl[best]:
            case = "overfitting"
        elif tm is None:
            facts.append("no metric: underfitting is not judged")
    data["case"] = case
    return Finding("fit", _STATUS[case], f"{case.replace('-', ' ')}: {'; '.join(facts)}",
                   list(REMEDIES.get(case, ())), data)


def output_tensor(out) -> torch.Tensor:
    """The first floating tensor of a model's output (a tensor, tuple, dict...)."""
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t
    raise ValueError(f"model output={type(out).__name__} is not accepted: expected a floating "
                     f"tensor somewhere in it")


def random_targets(out: torch.Tensor, classify: bool) -> tuple[torch.Tensor, str]:
    """Targets beside ``out`` (..., C): class ids for cross-entropy when ``classify`` and C > 1
    (one class would give a constant loss), else standard-normal values for MSE."""
    if classify and out.dim() >= 1 and out.shape[-1] > 1:
        return torch.randint(0, out.shape[-1], out.shape[:-1], device=out.device), "cross_entropy"
    return torch.randn(out.shape, device=out.device, dtype=out.dtype), "mse"


def loss_of(out: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "cross_entropy":
        return F.cross_entropy(out.float().reshape(-1, out.shape[-1]), target.reshape(-1))
    return F.mse_loss(out, target)


def _num(x: float | None) -> str:
    return "nan" if x is None else f"{x:.4g}"


def overfit_batch(model: nn.Module, inputs: tuple, *, classify: bool = True,
                  steps: int = OVERFIT_STEPS, lr: float = OVERFIT_LR) -> Finding:
    """Can ``model`` (a deep copy, train mode) drive one batch's loss near zero? Adam at ``lr``
    for up to ``steps`` steps on fixed random targets; passes once the loss is below
    :data:`NEAR_ZERO` x its first value. ``model`` itself is never modified."""
    steps = v.positive_int("overfit_steps", steps)
    lr = v.number("overfit_lr", lr, minimum=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        work = copy.deepcopy(model).train()
        params = [p for p in work.parameters() if p.requires_grad]
        if not params:
            return Finding("overfit-batch", "fail", "the model has no trainable parameter",
                           list(REMEDIES["not-learning"]), {"steps": 0, "lr": lr})
        opt = torch.optim.Adam(params, lr=lr)
        target, kind = random_targets(output_tensor(work(*inputs)).detach(), classify)
        first = last = None
        done = 0
        for done in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss = loss_of(output_tensor(work(*inputs)), target, kind)
            if not torch.isfinite(loss):
                last = float("nan")
                break
            loss.backward()
            opt.step()
            last = loss.item()
            first = last if first is None else first
            if last <= NEAR_ZERO * first:
                break
    data = {"steps": done, "max_steps": steps, "lr": lr, "optimizer": "Adam", "loss": kind,
            "first_loss": first, "last_loss": last, "near_zero": NEAR_ZERO}
    ok = first is not None and last == last and last <= NEAR_ZERO * first
    fact = (f"one batch, {kind} on random targets, Adam lr={lr:g}: loss {_num(first)} -> "
            f"{_num(last)} in {done} step(s)")
    if ok:
        return Finding("overfit-batch", "pass", f"{fact} (below {NEAR_ZERO:g} x the first)",
                       data=data)
    return Finding("overfit-batch", "fail", f"{fact}, not below {NEAR_ZERO:g} x the first: a bug "
                   f"before any tuning (detached layers, wrong loss or labels, a zero learning "
                   f"rate, frozen parameters)", list(REMEDIES["not-learning"]), data)
