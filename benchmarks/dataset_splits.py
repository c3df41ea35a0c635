"""The data sets' description and splits: :class:`DatasetInfo`, the arrays a loader returns
(:class:`ArraySplit`, :class:`GraphSplit`), the seeded train/test split, the seeded subsamples and the
training-set sizes of ``zoo-bench learn``. The sets themselves and their loaders are in
:mod:`zoo.benchmarks.datasets`, which re-exports these names."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from zoo import validation as v

SPLIT_SEED = 0
TRAIN_FRACTION = 0.7
LONG_SERIES = 150  # a series of at least this many steps is "long" (issue 8: 150-step series)


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about one data set before loading it.

    ``input_shape`` is one sample's shape: (C, H, W) images, (F,) tabular, (T, C) series, (F,) node
    features of a graph. ``num_classes`` is 1 for regression. ``n_train``/``n_test`` count samples
    (graphs: labelled nodes). ``length`` is "short"/"long" for series (see :data:`LONG_SERIES`).
    """
    name: str
    package: str
    function: str
    task: str  # "classification" | "regression"
    kind: str  # "image" | "tabular" | "sequence" | "graph"
    input_shape: tuple
    num_classes: int
    n_train: int
    n_test: int
    split: str
    held_out: bool
    description: str
    loader: Callable = field(repr=False, compare=False, default=None)

    @property
    def source(self) -> str:
        """``package: function`` that reads the bundled file."""
        return f"{self.package}: {self.function}"

    @property
    def length(self) -> str | None:
        if self.kind != "sequence":
            return None
        return "long" if self.input_shape[0] >= LONG_SERIES else "short"

    def to_dict(self) -> dict:
        """JSON-ready description (with the installed version of the source package)."""
        return {"name": self.name, "source": self.source, "package": self.package,
                "package_version": _version(self.package), "task": self.task, "kind": self.kind,
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "n_train": self.n_train, "n_test": self.n_test, "split": self.split,
                "held_out": self.held_out, "length": self.length, "description": self.description}


@dataclass
class ArraySplit:
    """Arrays of a tabular, image or series data set (shapes: see the module docstring)."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list | None = None  # label names, index = class id; None for regression


@dataclass
class GraphSplit:
    """One graph with node labels and disjoint boolean train/test node masks."""
    x: np.ndarray
    edge_index: np.ndarray
    y: np.ndarray
    train_mask: np.ndarray
    test_mask: np.ndarray
    classes: list | None = None


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# ----- splitting -------------------------------------------------------------------------------

def _labels(raw) -> tuple[np.ndarray, list]:
    """Class ids 0..K-1 (int64) in the sorted order of the raw label names, and the names."""
    names, ids = np.unique(np.asarray(raw), return_inverse=True)
    return ids.astype(np.int64), [n.item() if hasattr(n, "item") else n for n in names]


def stratified_split(y: np.ndarray, train_fraction: float, seed: int, *,
                     classification: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) index arrays: per class ``round(f * n_c)`` to train (at least one,
    at most ``n_c - 1``); for regression a seeded shuffle cut at ``round(f * N)``. Sorted."""
    rng = np.random.default_rng(seed)
    if not classification:
        order = rng.permutation(len(y))
        cut = int(round(train_fraction * len(y)))
        return np.sort(order[:cut]), np.sort(order[cut:])
    train = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(max(1, int(round(train_fraction * len(idx)))), max(1, len(idx) - 1))
        train.append(idx[:k])
    train = np.sort(np.concatenate(train))
    return train, np.setdiff1d(np.arange(len(y)), train)


def subsample(y: np.ndarray, n: int, seed: int, *, classification: bool = True) -> np.ndarray:
    """Sorted indices of a seeded subsample of ``n`` of ``len(y)`` samples.

    Classification keeps every class present when ``n`` allows (one of each first, the rest drawn
    in proportion by a seeded permutation), so a small n never lacks a class by chance.
    """
    n = v.positive_int("n", n, maximum=len(y))
    rng = np.random.default_rng(seed)
    if n == len(y):
        return np.arange(len(y))
    if not classification:
        return np.sort(rng.permutation(len(y))[:n])
    order = rng.permutation(len(y))
    first = {}
    for i in order:  # the first-drawn sample of each class
        first.setdefault(int(y[i]), int(i))
    picked = list(first.values())[:n]
    rest = [int(i) for i in order if int(i) not in set(picked)]
    return np.sort(np.array(picked + rest[:n - len(picked)], dtype=np.int64))


def train_sizes(info: DatasetInfo) -> list[int]:
    """Training-set sizes for learning curves: the full train split, a third, a tenth and a
    thirtieth of it, keeping only those with at least 4 samples per class (and at least 12).
    (The thirtieth came later: learn.json measured it on the image sets only, where a family's
    threshold sat at the smallest size measured.)"""
    n = info.n_train
    floor = max(12, 4 * info.num_classes)
    sizes = {n} | {s for s in (n // 3, n // 10, n // 30) if s >= floor}
    return sorted(sizes)
