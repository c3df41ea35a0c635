"""Data files for ``zoo build --data FILE``: what ``build`` needs to know, read from the data itself.

Accepted files:

* ``.npz`` with ``X`` (N, ...) and ``y`` (N,): tabular ``X`` (N, F), images (N, C, H, W), series
  (N, T, F);
* ``.npz`` with ``x`` (V, F), ``edge_index`` (2, E) and ``y`` (V,) (a graph; optional boolean
  ``train_mask``: its nodes are the training samples, default every node);
* ``.csv`` with a header and a ``--target`` column (tabular; every other column numeric).

:func:`infer` gives ``n_samples``, ``input_shape`` and ``num_classes`` (classification tasks:
labels must be the integers ``0..K-1``; K = max + 1) and the arrays for :func:`zoo.fit`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo import validation

from .tasks import TASKS


@dataclass
class DataFile:
    """A data file read for ``build``: ``train`` is what :func:`zoo.fit` takes."""
    path: Path
    n_samples: int
    input_shape: tuple[int, ...]
    num_classes: int | None
    n_edges: int | None
    train: Any


def _labels(y: np.ndarray, task: str, path: Path) -> tuple[np.ndarray, int | None]:
    if not TASKS[task].classification:
        return y.astype(np.float32), None
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or y.min() < 0:
        raise ValueError(f"data={str(path)!r} is not accepted: expected integer class labels "
                         f"0..K-1 in y for {task}")
    y = y.astype(np.int64)
    return y, int(y.max()) + 1


def infer(path: Any, task: str, *, target: str | None = None) -> DataFile:
    """Read ``path`` for ``task`` (module docstring). Raises ``ValueError`` naming the file and
    what was expected."""
    task = validation.choice("task", task, TASKS)
    path = Path(validation.string("data", str(path)))
    if not path.is_file():
        raise ValueError(f"data={str(path)!r} is not accepted: expected an existing .npz or .csv file")
    kind = TASKS[task].input_kind
    if path.suffix == ".csv":
        if kind != "tabular":
            raise ValueError(f"data={str(path)!r} is not accepted: expected a .npz file for {task} "
                             f"(.csv is for tabular tasks)")
        return _csv(path, task, target)
    if path.suffix != ".npz":
        raise ValueError(f"data={str(path)!r} is not accepted: expected a .npz or .csv file")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if kind == "graph":
        missing = [k for k in ("x", "edge_index", "y") if k not in arrays]
        if missing:
            raise ValueError(f"data={str(path)!r} is not accepted: expected arrays x, edge_index, "
                             f"y for {task}; missing {', '.join(missing)}")
        x = arrays["x"].astype(np.float32)
        y, k = _labels(arrays["y"], task, path)
        mask = arrays.get("train_mask", np.ones(len(y), dtype=bool)).astype(bool)
        ei = arrays["edge_index"].astype(np.int64)
        return DataFile(path, int(mask.sum()), (x.shape[0], x.shape[1]), k, int(ei.shape[1]),
                        (x, ei, y, mask))
    if "X" not in arrays or "y" not in arrays:
        raise ValueError(f"data={str(path)!r} is not accepted: expected arrays X and y")
    X = arrays["X"].astype(np.float32)
    rank = {"tabular": 2, "image": 4, "sequence": 3}[kind]
    if X.ndim != rank or len(X) != len(arrays["y"]):
        raise ValueError(f"data={str(path)!r} is not accepted: expected X of rank {rank} for {task} "
                         f"and one label per sample; got X {X.shape}, y {arrays['y'].shape}")
    y, k = _labels(arrays["y"], task, path)
    return DataFile(path, len(X), tuple(int(d) for d in X.shape[1:]), k, None, (X, y))


def _csv(path: Path, task: str, target: str | None) -> DataFile:
    if not target:
        raise ValueError(f"target={target!r} is not accepted: expected the name of the label "
                         f"column of {str(path)!r}")
    header = path.read_text().splitlines()[0].split(",")
    names = [h.strip().strip('"') for h in header]
    if target not in names:
        raise ValueError(f"target={target!r} is not accepted: expected one of the columns "
                         f"{', '.join(names)}")
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64)
    data = data.reshape(len(data), -1)
    col = names.index(target)
    X = np.delete(data, col, axis=1).astype(np.float32)
    if not np.all(np.isfinite(X)):
        raise ValueError(f"data={str(path)!r} is not accepted: expected numeric feature columns "
                         f"without blanks")
    y, k = _labels(data[:, col], task, path)
    return DataFile(path, len(X), (X.shape[1],), k, None, (X, y))


def flatten_if(model, train):
    """``train`` with each sample flattened when the model's spec says ``input_view`` 'flat'."""
    spec = getattr(model, "spec", None)
    if spec is None or spec.budgets.get("input_view") != "flat" or len(train) != 2:
        return train
    X, y = train
    return X.reshape(len(X), -1), y
