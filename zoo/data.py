"""Training data for :func:`zoo.fit`: every accepted form made into one of three splits, checked.

Accepted forms (``train``; ``val`` as noted):

- ``(X, y)`` tensors or NumPy arrays -> :class:`Samples` (X (N, ...), y (N,) or (N, k)). ``val``:
  another ``(X, y)``, a Dataset, or a fraction in (0, 1) (a seeded random split of ``train``).
- a ``torch.utils.data.Dataset`` of ``(x, y)`` items -> read once into memory -> :class:`Samples`
  (the zoo's data sets are small; in memory the checks see every sample and shuffling is seeded).
- a ``torch.utils.data.DataLoader`` -> :class:`Stream`: used as given each epoch (its own batch
  size, shuffling, workers and augmentation); read once before training for the checks.
- a graph, ``(x, edge_index, y)`` or ``(x, edge_index, y, train_mask)``, or anything with ``.x``,
  ``.edge_index``, ``.y`` (a PyG ``Data``, optionally with ``train_mask`` / ``val_mask``) ->
  :class:`Graph` (full batch: x (N, F), edge_index (2, E), y (N,), a boolean node mask (N,) per
  split). ``val``: a boolean node mask, a fraction of the training nodes, or None (the ``Data``'s
  ``val_mask`` when it has one).

Targets decide the task when ``task`` is None: integer (or boolean) ``y`` -> classification (labels
0..C-1, stored as int64), floating ``y`` -> regression (stored as (N, k) floats).

Every split yields batches ``(inputs, y, mask)``: ``model(*inputs)`` gives (B, C) outputs; ``mask``
(graphs only) selects the split's nodes from them. A data-parallel run would shard
:meth:`Samples.batches` by rank, the one place the order of samples is decided.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from . import validation as V

TASKS = ("classification", "regression")


def reject(name: str, shown: str, accepted: str) -> ValueError:
    """The validation layer's message for data: ``NAME=DESCRIPTION is not accepted: expected ...``."""
    return ValueError(f"{name}={shown} is not accepted: expected {accepted}")


def describe(t: Any) -> str:
    """``float32 (100, 64)``: a tensor's dtype and shape, for messages (never its values)."""
    if isinstance(t, (torch.Tensor, np.ndarray)):
        return f"{str(t.dtype).replace('torch.', '')} {tuple(t.shape)}"
    return type(t).__name__


Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor, "torch.Tensor | None"]


@dataclass
class Samples:
    """In-memory samples: ``X`` (N, ...) and ``y`` (N,) int64 labels or (N, k) float targets."""

    X: torch.Tensor
    y: torch.Tensor
    name: str = "train"

    def __len__(self) -> int:
        return self.X.shape[0]

    def shown(self) -> str:
        return f"(X {describe(self.X)}, y {describe(self.y)})"

    def to(self, device) -> "Samples":
        return Samples(self.X.to(device), self.y.to(device), self.name)

    def subset(self, index: torch.Tensor, name: str) -> "Samples":
        return Samples(self.X[index], self.y[index], name)

    def features(self) -> torch.Tensor:
        return self.X

    def probe(self) -> tuple[torch.Tensor, ...]:
        return (self.X[:1],)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches in a random order drawn from ``generator`` (None: in order, for evaluation).

        A shuffled epoch leaves out a last batch of one sample (a different one each epoch): batch
        norm cannot train on a single sample."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        stop = n - 1 if order is not None and n > 1 and n % batch_size == 1 else n
        for start in range(0, stop, batch_size):
            if order is None:
                yield (self.X[start:start + batch_size],), self.y[start:start + batch_size], None
            else:
                idx = order[start:start + batch_size].to(self.X.device)
                yield (self.X[idx],), self.y[idx], None

    def steps(self, batch_size: int) -> int:
        """Training steps per epoch (see :meth:`batches`)."""
        n = len(self)
        return -(-(n - 1 if n > 1 and n % batch_size == 1 else n) // batch_size)


@dataclass
class Stream:
    """A user's ``DataLoader``, iterated as given; ``X``/``y`` of the first pass kept for checks."""

    loader: DataLoader
    X: torch.Tensor   # every input of one pass, concatenated (checks and standardisation)
    y: torch.Tensor
    name: str = "train"
    device: Any = None
    target: Any = None  # the function that made y into the task's targets on the first pass

    def __len__(self) -> int:
        return self.X.shape[0]

    def shown(self) -> str:
        return f"DataLoader(X {describe(self.X)}, y {describe(self.y)})"

    def to(self, device) -> "Stream":
        return Stream(self.loader, self.X, self.y, self.name, device, self.target)

    def features(self) -> torch.Tensor:
        return self.X

    def probe(self) -> tuple[torch.Tensor, ...]:
        return (self.X[:1].to(self.device),)

    def batches(self, batch_size: int | None = None, generator=None) -> Iterator[Batch]:
        for xb, yb in map(_pair, self.loader):
            xb = xb.to(self.device, self.X.dtype) if xb.is_floating_point() else xb.to(self.device)
            yield (xb,), self.target(yb).to(self.device), None

    def steps(self, batch_size: int | None = None) -> int:
        return len(self.loader)


@dataclass
class Graph:
    """One graph, full batch: x (N, F), edge_index (2, E) int64, y (N,) or (N, k), mask (N,) bool."""

    x: torch.Tensor
    edge_index: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    name: str = "train"

    def __len__(self) -> int:
        return int(self.mask.sum())

    def shown(self) -> str:
        return (f"graph(x {describe(self.x)}, edge_index {describe(self.edge_index)}, "
                f"y {describe(self.y)}, {len(self)} nodes in the mask)")

    def to(self, device) -> "Graph":
        return Graph(self.x.to(device), self.edge_index.to(device), self.y.to(device),
                     self.mask.to(device), self.name)

    def with_mask(self, mask: torch.Tensor, name: str) -> "Graph":
        return Graph(self.x, self.edge_index, self.y, mask, name)

    def features(self) -> torch.Tensor:
        return self.x[self.mask]

    def probe(self) -> tuple[torch.Tensor, ...]:
        return (self.x, self.edge_index)

    def batches(self, batch_size=None, generator=None) -> Iterator[Batch]:
        yield (self.x, self.edge_index), self.y, self.mask

    def steps(self, batch_size=None) -> int:
        return 1

    @property
    def X(self) -> torch.Tensor:
        return self.x

    @property
    def targets(self) -> torch.Tensor:
        return self.y[self.mask]


Split = Samples | Stream | Graph


def _pair(item) -> tuple[Any, Any]:
    if isinstance(item, dict) and {"x", "y"} <= set(item):
        return item["x"], item["y"]
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    raise reject("train", type(item).__name__, "Dataset items / DataLoader batches of (x, y) pairs")


def _tensor(name: str, value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged lists and objects NumPy cannot hold
        arr = None
    if arr is None or arr.dtype == object or arr.dtype.kind not in "biuf":
        raise reject(name, describe(value), f"{what} as a tensor or NumPy array of numbers")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _is_graph(value: Any) -> bool:
    if all(hasattr(value, a) for a in ("x", "edge_index", "y")):
        return True
    return isinstance(value, (tuple, list)) and len(value) in (3, 4)


def infer_task(name: str, y: torch.Tensor, task: str | None) -> str:
    """``task`` checked, or inferred from ``y``'s dtype (integer/bool -> classification)."""
    task = V.optional(V.choice, "task", task, choices=TASKS)
    if task is not None:
        return task
    return "regression" if y.is_floating_point() else "classification"


def targets(name: str, y: torch.Tensor, task: str, dtype: torch.dtype) -> torch.Tensor:
    """``y`` as the task's targets: int64 labels (N,) or float (N, k) regression targets."""
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise reject(name, f"y {describe(y)}", "class labels of shape (N,) for classification")
        if y.is_floating_point():
            if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
                raise reject(name, f"y {describe(y)}", "integer class labels for classification "
                             "(y holds non-integer or non-finite values)")
        return y.long()
    if y.ndim not in (1, 2):
        raise reject(name, f"y {describe(y)}", "regression targets of shape (N,) or (N, k)")
    y = y.to(dtype)
    return y[:, None] if y.ndim == 1 else y


def _samples(name: str, value: Any, task: str | None, dtype: torch.dtype):
    """(X, y) pairs and Datasets -> (Samples, task)."""
    if isinstance(value, IterableDataset):
        raise reject(name, type(value).__name__, "a map-style Dataset (with __len__ and "
                     "__getitem__); wrap an IterableDataset in a DataLoader")
    if isinstance(value, Dataset):
        items = [_pair(value[i]) for i in range(len(value))]  # map-style: indexable with a length
        if not items:
            raise reject(name, f"{type(value).__name__} of 0 items", "at least one sample")
        X = torch.stack([_tensor(name, x, "inputs") for x, _ in items])
        y = torch.stack([_tensor(name, t, "targets") for _, t in items])
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        X, y = _tensor(name, value[0], "inputs X"), _tensor(name, value[1], "targets y")
    else:
        raise reject(name, type(value).__name__, "(X, y) tensors or arrays, a Dataset, a DataLoader, "
                     "or a graph (x, edge_index, y[, train_mask]) / torch_geometric Data")
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise reject(name, f"(X {describe(X)}, y {describe(y)})",
                     "X (N, ...) and y (N,) or (N, k) with the same number of samples N")
    task = infer_task(name, y, task)
    X = X.to(dtype) if X.is_floating_point() else X.long()
    return Samples(X, targets(name, y, task, dtype), name), task


def _stream(name: str, loader: DataLoader, task: str | None, dtype: torch.dtype):
    xs, ys = [], []
    for xb, yb in map(_pair, loader):
        xs.append(_tensor(name, xb, "inputs"))
        ys.append(_tensor(name, yb, "targets"))
    if not xs:
        raise reject(name, "DataLoader of 0 batches", "at least one sample")
    X, y = torch.cat(xs), torch.cat(ys)
    task = infer_task(name, y, task)
    X = X.to(dtype) if X.is_floating_point() else X.long()
    return Stream(loader, X, targets(name, y, task, dtype), name,
                  target=lambda t, task=task: targets(name, torch.as_tensor(t), task, dtype)), task


def _graph(name: str, value: Any, task: str | None, dtype: torch.dtype):
    if isinstance(value, (tuple, list)):
        x, edge_index, y = value[:3]
        mask = value[3] if len(value) == 4 else None
        val_mask = None
    else:
        x, edge_index, y = value.x, value.edge_index, value.y
        mask, val_mask = getattr(value, "train_mask", None), getattr(value, "val_mask", None)
    x, edge_index = _tensor(name, x, "node features x"), _tensor(name, edge_index, "edge_index")
    y = _tensor(name, y, "node targets y")
    n = x.shape[0] if x.ndim == 2 else -1
    if x.ndim != 2 or y.shape[:1] != (n,):
        raise reject(name, f"graph(x {describe(x)}, y {describe(y)})",
                     "node features x (N, F) and targets y (N,) for the same N nodes")
    if (edge_index.ndim != 2 or edge_index.shape[0] != 2 or edge_index.is_floating_point()
            or (edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= n))):
        raise reject(name, f"graph(edge_index {describe(edge_index)}, {n} nodes)",
                     f"edge_index of shape (2, E) holding integer node ids in [0, {n})")
    task = infer_task(name, y, task)
    mask = node_mask(name, mask, n) if mask is not None else torch.ones(n, dtype=torch.bool)
    graph = Graph(x.to(dtype), edge_index.long(), targets(name, y, task, dtype), mask, name)
    return graph, task, (node_mask("val", val_mask, n) if val_mask is not None else None)


def node_mask(name: str, mask: Any, n: int) -> torch.Tensor:
    mask = _tensor(name, mask, "a boolean node mask")
    if mask.dtype != torch.bool or mask.shape != (n,):
        raise reject(name, f"mask {describe(mask)}", f"a boolean node mask of shape ({n},)")
    return mask


def prepare(train: Any, val: Any, *, task: str | None, seed: int,
            dtype: torch.dtype = torch.float32) -> tuple[Split, Split | None, str]:
    """``(train split, val split or None, task)`` from what :func:`zoo.fit` accepts (see the module
    docstring). Refuses, with ``ValueError`` naming ``train`` or ``val``: an unknown form, empty
    splits, NaN/inf in inputs or targets, a fraction outside (0, 1)."""
    fraction = None
    if isinstance(val, bool) or isinstance(val, numbers.Real):
        fraction = V.fraction("val", val, open_low=True)
    if _is_graph(train):
        tr, task, data_val_mask = _graph("train", train, task, dtype)
        if fraction is not None:
            nodes = tr.mask.nonzero()[:, 0]
            picked = _split_index(len(nodes), fraction, seed, "train")
            va_mask = torch.zeros_like(tr.mask)
            va_mask[nodes[picked]] = True
            va = tr.with_mask(va_mask, "val")
            tr = tr.with_mask(tr.mask & ~va_mask, "train")
        elif val is None:
            va = tr.with_mask(data_val_mask, "val") if data_val_mask is not None else None
        else:
            va = tr.with_mask(node_mask("val", val, tr.x.shape[0]), "val")
    elif isinstance(train, DataLoader):
        if fraction is not None:
            raise reject("val", repr(val), "a separate (X, y), Dataset or DataLoader when train is "
                         "a DataLoader (a DataLoader cannot be split; pass its Dataset to split it)")
        tr, task = _stream("train", train, task, dtype)
        va = None if val is None else _val_samples(val, task, dtype)
    else:
        tr, task = _samples("train", train, task, dtype)
        if fraction is not None:
            picked = _split_index(len(tr), fraction, seed, "train")
            keep = torch.ones(len(tr), dtype=torch.bool)
            keep[picked] = False
            tr, va = tr.subset(keep.nonzero()[:, 0], "train"), tr.subset(picked, "val")
        else:
            va = None if val is None else _val_samples(val, task, dtype)
    for split in (tr, va):
        if split is not None:
            check_split(split)
    return tr, va, task


def _val_samples(val: Any, task: str, dtype: torch.dtype) -> Split:
    if _is_graph(val):
        raise reject("val", type(val).__name__, "a boolean node mask or a fraction for graph data, "
                     "given with a graph train")
    if isinstance(val, DataLoader):
        return _stream("val", val, task, dtype)[0]
    return _samples("val", val, task, dtype)[0]


def _split_index(n: int, fraction: float, seed: int, name: str) -> torch.Tensor:
    """The indices of a seeded random ``fraction`` of ``range(n)`` (at least one; one left over)."""
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise reject("val", repr(fraction), f"a fraction that leaves training samples: {name} "
                     f"has {n} sample(s), and val={fraction} would take {n_val}")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:n_val].sort().values


def check_split(split: Split) -> None:
    """Refuse an empty split and NaN/inf in its inputs or targets."""
    if len(split) == 0:
        raise reject(split.name, split.shown(), "at least one sample (the split is empty)")
    X, y = split.X, (split.targets if isinstance(split, Graph) else split.y)
    for what, t in (("X", X), ("y", y)):
        if t.is_floating_point():
            bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(1)
            if bad.any():
                raise reject(split.name, split.shown(), f"finite values: {what} holds NaN or inf in "
                             f"{int(bad.sum())} sample(s), the first at index "
                             f"{int(bad.nonzero()[0, 0])}")


def check_outputs(split: Split, out: torch.Tensor, task: str) -> int:
    """Check the model's probe output (B, C) against the split's targets; return C.

    Classification: labels in [0, C). Regression: targets (N, k) with k == C."""
    if out.ndim != 2:
        raise reject(split.name, split.shown(), f"data for a model with (batch, outputs) outputs; "
                     f"this model returned shape {tuple(out.shape)}")
    c = out.shape[1]
    y = split.targets if isinstance(split, Graph) else split.y
    if task == "classification":
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= c:
            raise reject(split.name, split.shown(), f"class labels in [0, {c}) for a model with {c} "
                         f"output(s) (num_classes={c}); y holds labels from {lo} to {hi}")
    elif y.shape[1] != c:
        raise reject(split.name, split.shown(), f"regression targets with {c} column(s), one per "
                     f"model output; y has {y.shape[1]}")
    return c
