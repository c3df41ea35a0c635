"""The tasks ``build`` accepts and what the factory knows about each kind of input, as two tables.

* :data:`INPUT_KINDS` -- one :class:`InputKind` row per kind of input (``tabular``, ``image``,
  ``sequence``, ``graph``, the registry's ``input_kind`` values): what ``input_shape`` means and its
  rank, the default shape and batch, how the shape maps to a builder's keyword arguments and to
  the example inputs, and what the policy's rules read from it. Adding a kind of input is adding a
  row here.
* :data:`TASKS` -- the tasks: their input kind and whether they classify.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from zoo import validation

MAX_DIM = 2 ** 31 - 1
"""Largest entry of ``input_shape`` (and of ``n_edges``): tensor sizes beyond it overflow the
32-bit indices many kernels use. Larger inputs are refused as arguments; inputs below it that are
still too large to train are refused by the memory estimate's floor, before anything is built."""

DEFAULT_EDGES_PER_NODE = 10


@dataclass(frozen=True)
class InputKind:
    """What the factory knows about one kind of input.

    ``shape_doc``: what ``input_shape`` means (``rank`` entries); ``limits_doc``: what else its
    entries must meet. ``default_shape``: used when
    ``input_shape`` is None (None: the shape is required). ``min_shape``: the smallest accepted
    entry per axis. ``default_batch``: the training batch of the memory budget when none is given;
    ``fixed_batch``: the only batch accepted (graphs train on the whole graph), or None.
    ``to_kwargs(shape)``: the builder arguments describing the input. ``to_rules(shape)``: what
    the policy's rules read (``seq_len``, ``img_size``). ``graph``: inputs carry edges
    (``n_edges``, default :data:`DEFAULT_EDGES_PER_NODE` per node), passed to
    ``example_inputs`` as ``num_nodes``/``num_edges``.
    """
    name: str
    rank: int
    shape_doc: str
    limits_doc: str
    to_kwargs: Callable[[tuple[int, ...]], dict]
    default_shape: tuple[int, ...] | None = None
    min_shape: tuple[int, ...] | None = None
    default_batch: int = 64
    fixed_batch: int | None = None
    to_rules: Callable[[tuple[int, ...]], dict] = lambda shape: {}
    graph: bool = False

    def shape(self, task: str, input_shape: Any) -> tuple[int, ...]:
        """``input_shape`` checked for ``task`` (or the default), as a tuple of ints."""
        if input_shape is None and self.default_shape is not None:
            return self.default_shape
        minimum = self.min_shape or (1,) * self.rank
        count = f"{self.rank} integers" if self.rank > 1 else "an integer"
        doc = f"{self.shape_doc} ({count} in 1..{MAX_DIM}{self.limits_doc})"
        try:
            shape = validation.shape("input_shape", input_shape, ndim=self.rank, maximum=MAX_DIM)
            for axis, low in enumerate(minimum):
                validation.integer("input_shape", shape[axis], minimum=low)
        except ValueError:
            raise ValueError(f"input_shape={input_shape!r} is not accepted: expected {doc} for "
                             f"{task}") from None
        return shape

    def example_kwargs(self, task: str, shape: tuple[int, ...], n_edges: Any) -> dict | None:
        """Keyword arguments of ``example_inputs`` for this input (graphs: nodes and edges)."""
        if not self.graph:
            if n_edges is not None:
                validation.choice("n_edges", n_edges, (None,))
            return None
        edges = DEFAULT_EDGES_PER_NODE * shape[0] if n_edges is None else n_edges
        edges = validation.non_negative_int("n_edges", edges, maximum=MAX_DIM)
        return {"num_nodes": shape[0], "num_edges": edges}

    def batch(self, batch_size: Any) -> int:
        """The training batch of the memory budget: ``batch_size`` checked, or the default."""
        if batch_size is None:
            return self.default_batch
        batch = validation.positive_int("batch_size", batch_size, maximum=MAX_DIM)
        if self.fixed_batch is not None:
            validation.choice("batch_size", batch, (self.fixed_batch,))
        return batch

    def notes(self, shape: tuple[int, ...]) -> list[str]:
        """What the spec should say about how this shape was costed."""
        if self.name == "image" and shape[1] != shape[2]:
            side = max(shape[1:])
            return [f"input {shape[1]}x{shape[2]} is not square: costed at {side}x{side} (the image "
                    f"models' img_size is one side; every one ends in a global pool and accepts "
                    f"any size)"]
        return []


INPUT_KINDS: dict[str, InputKind] = {k.name: k for k in (
    InputKind("tabular", 1, "(n_features,)", "",
              to_kwargs=lambda s: {"in_features": s[0]}),
    InputKind("image", 3, "(C, H, W)", "; H, W >= 8; default (3, 224, 224)",
              to_kwargs=lambda s: {"in_chans": s[0], "img_size": max(s[1], s[2])},
              default_shape=(3, 224, 224), min_shape=(1, 8, 8),
              to_rules=lambda s: {"img_size": min(s[1], s[2])}),
    InputKind("sequence", 2, "(seq_len, n_features)", "",
              to_kwargs=lambda s: {"seq_len": s[0], "in_features": s[1]},
              to_rules=lambda s: {"seq_len": s[0]}),
    InputKind("graph", 2, "(n_nodes, n_features)", "",
              to_kwargs=lambda s: {"num_nodes": s[0], "in_features": s[1]},
              default_batch=1, fixed_batch=1, graph=True),
)}


@dataclass(frozen=True)
class Task:
    """A task ``build`` accepts: its input kind and whether it classifies (else: one value)."""
    name: str
    input_kind: str          # a key of INPUT_KINDS
    classification: bool

    @property
    def kind(self) -> InputKind:
        return INPUT_KINDS[self.input_kind]

    @property
    def loss(self) -> str:
        return "cross_entropy" if self.classification else "mse"


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("tabular-classification", "tabular", True),
    Task("tabular-regression", "tabular", False),
    Task("image-classification", "image", True),
    Task("sequence-classification", "sequence", True),
    Task("sequence-regression", "sequence", False),
    Task("node-classification", "graph", True),
)}
