"""``zoo.fit``: the reference training recipe, one for every task the zoo serves. (The module is
``zoo.training``: a submodule named ``fit`` would replace the function on the package once imported.)

The recipe (each default is chosen from the data and the model, and can be overridden):

- **Loss and metric.** Classification: cross-entropy on the logits (B, C) against labels in
  [0, C); accuracy. Regression: mean squared error; R^2 = mean over target columns of
  ``1 - SS_res / SS_tot`` (``SS_tot`` about the split's own mean; 1 for a perfect fit, 0 for
  predicting the mean). Regression targets are standardised per column while training
  (``(y - mu) / sigma`` from the training split) and the model's final affine layer is rescaled
  once at the end (``W <- sigma W``, ``b <- sigma b + mu``), so the returned model predicts ``y`` in
  its own units and a target in the hundreds trains as fast as one near 1; the reported
  regression losses are the MSE of standardised targets.
- **Optimiser.** AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on weights only
  (biases and norm scales, every parameter with ndim <= 1, are not decayed: nanoGPT, timm).
- **Schedule.** ``lr(p) = lr * p / w`` for ``p < w`` (linear warm-up), then
  ``lr * (1 + cos(pi (p - w) / (1 - w))) / 2`` (cosine decay to 0), with ``w = 0.05`` and the
  progress ``p = max(step / total_steps, elapsed / time_budget_s)``: the schedule ends when the
  epochs or the time budget, whichever comes first, run out.
- **Gradient clipping** at global norm 1.0 (the common choice of GPT-2/nanoGPT and timm's
  ``--clip-grad 1``: it only bites on the rare spike, which small noisy batches give).
- **Early stopping** on the validation metric (ties broken by the lower validation loss) after
  ``patience = max(10, ceil(epochs / 10), ceil(200 / steps per epoch))`` epochs without
  improvement; the best epoch's weights (parameters and buffers) are restored at the end, however
  training stops. The 200-step floor (a tenth of the default 2000 steps, as ``epochs / 10`` is)
  is for small data: 29 series in batches of 16 are 2 steps an epoch, so 10 epochs were 20 steps,
  the warm-up itself, judged on 7 validation samples (the temporal CNN on ArrowHead stopped at
  epoch 12, best epoch 2, at chance; Wang et al. 2017 train such sets 1500 epochs, no stopping).
- **Batch-norm statistics** are recomputed before each validation (and at the end without one)
  by :func:`recalibrate_norms`: population statistics over <= 1024 training samples (Ioffe &
  Szegedy 2015, Alg. 2; "precise BN" of Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm",
  as the running averages lag while the weights change fast). With 2 steps an epoch the lag
  dominates: the temporal CNN on ArrowHead after 5-20 epochs scored chance (30 %, test split) in
  eval mode with its running averages and 53-71 % with the same weights and recomputed statistics.
  Models without batch norm get no extra pass; with it, an epoch costs one forward of <= 1024 more.
- **Input standardisation.** A model with ``standardize`` (a :class:`zoo.standardize.Standardize`:
  the tabular and float-sequence families) gets ``standardize.fit_(X_train)`` from the training
  split before the first step; the statistics are buffers, saved and exported with the weights.
- **Defaults** (n = training samples; a graph is one full-batch step per epoch):

  ========================  =====================================================================
  batch_size                the power of two nearest n / 50, within [16, 256] and at most n
  epochs                    ``ceil(2000 / steps per epoch)`` within [10, 200] (graphs: 200, Kipf
                            & Welling's); a ``time_budget_s`` may stop it sooner
  lr                        1e-2 for ``linear`` (convex: a large step is safe) and ``gcn`` (Kipf
                            & Welling's); 1e-3 for every other family (Adam's own default)
  weight_decay              0.01 (AdamW's default); 5e-4 for ``gcn`` (Kipf & Welling)
  ========================  =====================================================================

- **Determinism.** ``seed`` seeds torch's global generator (dropout), the shuffling generator and
  the validation split: two runs with the same model, data and seed give the same history and
  weights (on the same machine; a time budget makes the stopping point depend on the clock).

The loop is kept in small parts that a data-parallel run (``torchrun``, :mod:`zoo.distributed`)
replaces one by one: the order of samples (:meth:`zoo.data.Samples.batches`, where a distributed
sampler takes this rank's share of the seeded permutation), the metric sums (:class:`Meter`, one
float64 tensor to all-reduce before :meth:`Meter.result` divides), the progress bar
(:func:`_progress_bar`, rank 0 only) and the best weights (:func:`snapshot`, gathered and saved
once, by rank 0). :func:`train_epoch` and :func:`evaluate` hold one pass each; :class:`Recipe` holds
the resolved settings and the clock.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import validation as V
from .data import Graph, Split, Stream, check_outputs, prepare, reject
from .history import History
from .precise_bn import recalibrate_norms
from .standardize import Standardize

WARMUP = 0.05      # fraction of the run spent warming up
CLIP_NORM = 1.0    # global gradient-norm clip
LR = {"linear": 1e-2, "gcn": 1e-2}          # by registry family; others DEFAULT_LR
DEFAULT_LR = 1e-3
WEIGHT_DECAY = {"gcn": 5e-4}                # by registry family; others DEFAULT_WEIGHT_DECAY
DEFAULT_WEIGHT_DECAY = 0.01
TARGET_STEPS = 2000                         # default epochs aim at this many steps...
MIN_EPOCHS, MAX_EPOCHS = 10, 200            # ...within these bounds
PATIENCE_STEPS = TARGET_STEPS // 10         # early stopping waits at least this many steps


def fit(model: nn.Module, train: Any, val: Any = None, *, epochs: int | None = None,
        time_budget_s: float | None = None, batch_size: int | None = None, lr: float | None = None,
        weight_decay: float | None = None, seed: int = 0, device=None, progress: bool = True,
        task: str | None = None, strategy: str | None = None, save_path=None) -> History:
    """Train ``model`` on ``train`` with the reference recipe (module docstring); return its History.

    Args:
        model: an ``nn.Module`` mapping a batch to (B, C) outputs (any zoo model).
        train: ``(X, y)`` tensors/arrays, a Dataset, a DataLoader, or a graph ``(x, edge_index, y
            [, train_mask])`` / PyG ``Data`` (see :mod:`zoo.data`).
        val: validation data of the same form, a fraction in (0, 1) of ``train`` (a seeded split),
            a boolean node mask for graphs, or None (no validation: no early stopping).
        epochs, batch_size, lr, weight_decay: None picks the defaults of the module docstring.
        time_budget_s: stop between steps once this much wall time has passed since the first
            step (the checks and setup before it, and the first optimiser's one-off imports, are
            not counted); the partial epoch is evaluated and recorded.
        seed: seeds shuffling, the validation split and torch's global generator.
        device: where to train; None is the model's device. The model is moved there.
        progress: show a tqdm bar with the loss and metric.
        task: "classification" | "regression"; None infers it from ``y`` (integers: classification).
        strategy: under ``torchrun`` (a process group, or ``WORLD_SIZE > 1``): "ddp" (None) or
            "fsdp", data-parallel at the global ``batch_size`` (:mod:`zoo.training_dp`); one
            process: checked and unused.
        save_path: where to write the best weights with ``zoo.save`` (under several processes:
            gathered and written once, by rank 0; the model object stays wrapped or sharded).

    After ``fit`` the model holds the best epoch's weights (the last epoch's without validation)
    and is in eval mode. Bad data or arguments raise ``ValueError`` naming them before any step.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module "
                         f"(a zoo model from zoo.create)")
    epochs = V.optional(V.positive_int, "epochs", epochs)
    time_budget_s = V.optional(V.positive_number, "time_budget_s", time_budget_s)
    batch_size = V.optional(V.positive_int, "batch_size", batch_size)
    lr = V.optional(V.positive_number, "lr", lr)
    weight_decay = V.optional(V.number, "weight_decay", weight_decay, minimum=0.0)
    seed = V.seed("seed", seed)
    progress = V.boolean("progress", progress)
    from .training_dp import checked_path, save_best, start
    dp, save_path = start(strategy), V.optional(checked_path, "save_path", save_path)  # None: 1
    place = next(iter(model.parameters()), None)
    if place is None:
        raise ValueError(f"model={type(model).__name__} is not accepted: it has no parameters to train")
    device = V.device("device", device) or place.device
    if device.type == "meta":
        raise ValueError("device=meta is not accepted: expected a device with data (cpu, cuda)")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    tr, va, task = prepare(train, val, task=task, seed=seed, dtype=dtype)
    if batch_size is not None and isinstance(tr, (Graph, Stream)):
        why = "graph data (full-batch training)" if isinstance(tr, Graph) else \
            "a DataLoader (it has its own batch size)"
        raise ValueError(f"batch_size={batch_size} is not accepted with {why}: expected None")
    model.to(device)
    tr, va = tr.to(device), (va.to(device) if va is not None else None)
    n_out = _probe(model, tr, task)
    if va is not None:
        _probe(model, va, task)
    # -- every check passed: from here on the model changes ------------------------------------
    features = tr.features()
    if isinstance(getattr(model, "standardize", None), Standardize) and features.is_floating_point():
        model.standardize.fit_(features)
    family = _family(model)
    batch_size = batch_size or default_batch_size(len(tr))
    epochs = epochs or default_epochs(tr.steps(batch_size))
    recipe = Recipe(task=task, n_out=n_out, device=device, batch_size=batch_size, epochs=epochs,
                    total_steps=epochs * tr.steps(batch_size), lr=lr or LR.get(family, DEFAULT_LR),
                    patience=default_patience(epochs, tr.steps(batch_size)), time_budget_s=time_budget_s,
                    scale=TargetScale.for_model(model, tr, n_out) if task == "regression" else None)
    if weight_decay is None:
        weight_decay = WEIGHT_DECAY.get(family, DEFAULT_WEIGHT_DECAY)

    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    norm_shuffle = torch.Generator().manual_seed(seed + 1)
    if dp is not None:
        model, recipe = dp.wrap(model, recipe), dp.recipe(recipe)
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=recipe.lr)
    history = History(task=task, metric="accuracy" if task == "classification" else "r2")
    best_state, best_key, since_best = None, None, 0
    bar = _progress_bar(progress and (dp is None or dp.rank == 0), recipe.total_steps,
                        type(model).__name__)
    recipe.start = time.perf_counter()  # budget and "seconds" count training, not the setup above
    try:
        for epoch in range(1, epochs + 1):
            meter, rate = train_epoch(model, dp.share(tr) if dp else tr, recipe, optimizer,
                                      shuffle, bar)
            if dp is not None:
                dp.reduce(meter)
            if meter.count() == 0:  # the budget ran out exactly at an epoch boundary
                history.stopped = "time_budget"
                break
            val_loss = val_metric = None
            if va is not None:
                recalibrate_norms(model, tr, batch_size, norm_shuffle)
                val_loss, val_metric = evaluate(model, va, recipe)
            history.epochs.append({"epoch": epoch, **dict(zip(("train_loss", "train_metric"),
                                                              meter.result())),
                                   "val_loss": val_loss, "val_metric": val_metric,
                                   "seconds": time.perf_counter() - recipe.start, "lr": rate})
            bar.set_postfix(_postfix(history.epochs[-1], history.metric), refresh=False)
            if va is not None:
                key = (val_metric, -val_loss)
                if best_key is None or key > best_key:
                    best_key, since_best, history.best_epoch = key, 0, epoch
                    best_state = snapshot(model)
                else:
                    since_best += 1
            if recipe.out_of_time():
                history.stopped = "time_budget"
                break
            if va is not None and since_best >= recipe.patience:
                history.stopped = "early_stopping"
                break
        if va is None and recipe.step > 0:  # the last epoch's weights are kept: their statistics
            recalibrate_norms(model, tr, batch_size, norm_shuffle)
    finally:
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        if recipe.scale is not None:
            recipe.scale.fold()
        model.eval()
    if save_path is not None:
        save_best(model, save_path)
    return history


@dataclass
class Recipe:
    """The resolved settings of one run, and its clock."""

    task: str
    n_out: int
    device: torch.device
    batch_size: int
    epochs: int
    total_steps: int
    lr: float
    patience: int
    time_budget_s: float | None
    scale: "TargetScale | None"
    start: float = 0.0
    step: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self) -> bool:
        return self.time_budget_s is not None and self.elapsed() >= self.time_budget_s

    def rate(self) -> float:
        """The learning rate of the next step: ``lr * schedule(p)``, p = the larger of the step's
        and the clock's share of the run."""
        p = (self.step + 1) / self.total_steps
        if self.time_budget_s is not None:
            p = max(p, self.elapsed() / self.time_budget_s)
        return self.lr * schedule(min(p, 1.0))


def train_epoch(model: nn.Module, split: Split, recipe: Recipe, optimizer: torch.optim.Optimizer,
                shuffle: torch.Generator, bar) -> tuple["Meter", float]:
    """One pass over ``split`` (stopping early once the budget is spent, after at least one step of
    the run); returns the epoch's train sums and the last step's learning rate."""
    model.train()
    meter, rate = Meter(recipe.task, recipe.n_out, recipe.device), 0.0
    for inputs, y, mask in split.batches(recipe.batch_size, shuffle):
        if recipe.step > 0 and recipe.out_of_time():
            break
        rate = recipe.rate()
        for group in optimizer.param_groups:
            group["lr"] = rate
        out, y = _outputs(model, inputs, y, mask, recipe.scale)
        loss = _loss(recipe.task, out, y)
        optimizer_step(model, optimizer, loss)
        meter.add(out.detach(), y, loss.detach())
        recipe.step += 1
        bar.update(1)
    return meter, rate


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One update from ``loss``: gradients, their global norm clipped to :data:`CLIP_NORM`, the
    optimizer's step (also what :mod:`zoo.factory.train_time` times)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    optimizer.step()


def default_batch_size(n: int) -> int:
    """The power of two nearest ``n / 50`` (about 50 steps an epoch), within [16, 256], at most n."""
    return min(n, max(16, min(256, 2 ** round(math.log2(max(n / 50, 1))))))


def default_epochs(steps_per_epoch: int) -> int:
    """``ceil(TARGET_STEPS / steps_per_epoch)`` within [MIN_EPOCHS, MAX_EPOCHS]."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch)))


def default_patience(epochs: int, steps_per_epoch: int) -> int:
    """Epochs without a better validation score before early stopping:
    ``max(10, ceil(epochs / 10), ceil(PATIENCE_STEPS / steps_per_epoch))`` (module docstring)."""
    return max(10, math.ceil(epochs / 10), math.ceil(PATIENCE_STEPS / steps_per_epoch))


def schedule(p: float) -> float:
    """The learning-rate factor at progress ``p`` in [0, 1]: linear warm-up over the first WARMUP,
    then cosine decay to 0."""
    if p < WARMUP:
        return p / WARMUP
    return 0.5 * (1.0 + math.cos(math.pi * (p - WARMUP) / (1.0 - WARMUP)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights (ndim >= 2) decayed; biases and norm parameters (ndim <= 1) not."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer (what early stopping restores)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Meter:
    """A split's running sums as one float64 tensor (a data-parallel run all-reduces it as is).

    Classification: ``[n, sum of losses * batch, correct]``. Regression with k targets:
    ``[n, sum of losses * batch, sum y (k), sum y^2 (k), sum (y - pred)^2 (k)]``.
    """

    def __init__(self, task: str, k: int, device):
        self.task, self.k = task, k
        size = 3 if task == "classification" else 2 + 3 * k
        self.sums = torch.zeros(size, dtype=torch.float64, device=device)

    def add(self, out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        b = y.shape[0]
        self.sums[0] += b
        self.sums[1] += loss.double() * b
        if self.task == "classification":
            self.sums[2] += (out.argmax(1) == y).sum()
        else:
            y, out = y.double(), out.double()
            k = self.k
            self.sums[2:2 + k] += y.sum(0)
            self.sums[2 + k:2 + 2 * k] += (y * y).sum(0)
            self.sums[2 + 2 * k:] += ((y - out) ** 2).sum(0)

    def count(self) -> int:
        return int(self.sums[0])

    def result(self) -> tuple[float, float]:
        """``(mean loss, accuracy or R^2)``."""
        n = self.sums[0]
        loss = float(self.sums[1] / n)
        if self.task == "classification":
            return loss, float(self.sums[2] / n)
        k = self.k
        s, s2, res = self.sums[2:2 + k], self.sums[2 + k:2 + 2 * k], self.sums[2 + 2 * k:]
        tot = (s2 - s * s / n).clamp_min(0.0)
        # sklearn's convention for a constant target: 1 if predicted exactly, else 0.
        r2 = torch.where(tot > 0, 1.0 - res / tot.clamp_min(1e-300),
                         (res == 0).to(res.dtype))
        return loss, float(r2.mean())


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, recipe: Recipe) -> tuple[float, float]:
    """``(loss, metric)`` of ``model`` (eval mode) on ``split``, in order, without gradients."""
    model.eval()
    meter = Meter(recipe.task, recipe.n_out, recipe.device)
    for inputs, y, mask in split.batches(2 * recipe.batch_size):
        out, y = _outputs(model, inputs, y, mask, recipe.scale)
        meter.add(out, y, _loss(recipe.task, out, y))
    return meter.result()


class TargetScale:
    """Regression targets standardised while training, folded into the final affine layer after.

    The model learns ``y_n = (y - mu) / sigma``; :meth:`fold` then sets ``W <- sigma W`` and
    ``b <- sigma b + mu`` on the last layer ``out = W h + b``, so that ``out = sigma y_n + mu``.
    Shapes: mu, sigma (k,); W (k, H); b (k,).
    """

    def __init__(self, mu: torch.Tensor, sigma: torch.Tensor, weight: torch.Tensor,
                 bias: torch.Tensor):
        self.mu, self.sigma, self.weight, self.bias = mu, sigma, weight, bias

    @classmethod
    def for_model(cls, model: nn.Module, train: Split, k: int) -> "TargetScale | None":
        """Statistics of the training targets, and the model's final affine layer, found as the last
        ``nn.Linear`` with a bias (or ``lin`` + ``bias`` pair, a GCN layer) with ``k`` outputs and
        confirmed by folding it once on a probe. None when no such layer is found: the model then
        trains on raw targets."""
        y = (train.targets if isinstance(train, Graph) else train.y).double()
        mu, sigma = y.mean(0), y.std(0, unbiased=False)
        sigma = torch.where(sigma > 1e-12, sigma, torch.ones_like(sigma))
        layer = None
        for m in model.modules():
            lin = getattr(m, "lin", None)
            if isinstance(m, nn.Linear) and m.bias is not None and m.out_features == k:
                layer = (m.weight, m.bias)
            elif isinstance(lin, nn.Linear) and lin.bias is None and lin.out_features == k and \
                    isinstance(getattr(m, "bias", None), torch.Tensor) and m.bias.shape == (k,):
                layer = (lin.weight, m.bias)
        if layer is None:
            return None
        scale = cls(mu.to(layer[1]), sigma.to(layer[1]), *layer)
        return scale if scale._folds_output(model, train.probe()) else None

    def normalise(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mu) / self.sigma

    @torch.no_grad()
    def fold(self) -> None:
        self.weight.mul_(self.sigma.view(-1, *[1] * (self.weight.ndim - 1)))
        self.bias.mul_(self.sigma).add_(self.mu)

    @torch.no_grad()
    def _folds_output(self, model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> bool:
        was = model.training
        model.eval()
        saved = self.weight.detach().clone(), self.bias.detach().clone()
        try:
            before = model(*inputs).double()
            self.fold()
            after = model(*inputs).double()
            want = before * self.sigma.double() + self.mu.double()
            return bool(torch.allclose(after, want, rtol=1e-3, atol=1e-3 * float(self.sigma.max())))
        finally:
            self.weight.copy_(saved[0])
            self.bias.copy_(saved[1])
            model.train(was)


def _outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...], y: torch.Tensor, mask,
             scale: "TargetScale | None") -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs and the targets they are scored against (a graph: the mask's nodes;
    regression: standardised targets)."""
    out = model(*inputs)
    if mask is not None:
        out, y = out[mask], y[mask]
    return out, (scale.normalise(y) if scale is not None else y)


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y) if task == "classification" else F.mse_loss(out, y)


def _probe(model: nn.Module, split: Split, task: str) -> int:
    """One forward of one sample (a graph: the whole graph) in eval mode without gradients; the
    outputs checked against the split's targets. Returns the number of outputs C."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*split.probe())
    except Exception as exc:  # noqa: BLE001 - any failure here means the data does not fit
        cause = f"{type(exc).__name__}: {exc}"
        cause = cause if len(cause) <= 240 else cause[:237] + "..."
        raise reject(split.name, split.shown(), f"inputs this model takes (one forward of one "
                     f"sample failed with {cause})") from exc
    finally:
        model.train(was)
    return check_outputs(split, out, task)


def _family(model: nn.Module) -> str | None:
    from .registry import get_entry

    try:
        return get_entry(model.config["name"]).family
    except (AttributeError, KeyError, ValueError):
        return None


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar over the steps (a data-parallel run shows it on rank 0 only)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def _postfix(row: dict, metric: str) -> dict:
    shown = {"epoch": row["epoch"], "loss": f"{row['train_loss']:.4g}"}
    if row["val_metric"] is not None:
        shown[f"val_{metric}"] = f"{row['val_metric']:.4f}"
    elif row["train_metric"] is not None:
        shown[metric] = f"{row['train_metric']:.4f}"
    return shown
