"""``Problem``: what one ``build`` call asks for, every argument checked and resolved.

:meth:`Problem.from_arguments` is the whole of ``build``'s argument handling: each argument goes
through :mod:`zoo.validation` (a bad one raises ``ValueError`` naming it, before any work), the
input is read through its :class:`zoo.factory.tasks.InputKind` row, and the policy's rules give
the candidates (or the ``families=`` asked for, resolved to candidate keys).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

import zoo
from zoo import validation

from . import policy
from .tasks import TASKS, Task
from .train_step import OPTIMIZERS

DEVICES = ("cpu", "cuda")


@dataclass
class Problem:
    """What one ``build`` call asks for, resolved (see :func:`zoo.factory.builder.build`).

    ``candidates``: keys of :data:`zoo.factory.policy.CANDIDATES` to search, preferred first;
    ``rules``: the policy rows that fired; ``families``: the ``families=`` argument as given
    (None: the policy chose). ``input_kwargs``: extra arguments of ``example_inputs`` (graphs).
    """
    task: Task
    n_samples: int
    input_shape: tuple[int, ...]
    num_classes: int
    batch_size: int
    optimizer: str
    dtype: str
    device: str
    vram_gb: float | None
    latency_ms: float | None
    input_kwargs: dict | None = None
    provider: str = "cpu"
    candidates: list[str] = field(default_factory=list)
    rules: list = field(default_factory=list)
    families: list | None = None
    train_budget_s: float | None = None
    epochs: int | None = None
    devices: int = 1          # vram_gb per device, batch_size global (zoo.factory.device_budget)
    strategy: str = "ddp"

    @property
    def key(self) -> str:
        """The problem as a JSON string: every argument that decides a search (not the rules,
        which follow from them)."""
        fields = {k: v for k, v in vars(self).items() if k != "rules"}
        fields["task"] = self.task.name
        return json.dumps(fields, sort_keys=True, default=str)

    @property
    def epochs_needed(self) -> int:
        """Epochs a model must get within ``train_budget_s``: ``epochs`` if given, else what the
        evidence says a model that learns needed (:func:`zoo.factory.policy.epochs_needed`)."""
        return self.epochs or policy.epochs_needed(self.task.input_kind)

    @property
    def loss(self) -> str:
        return self.task.loss

    def base_kwargs(self, registry: str) -> dict:
        """Constructor arguments describing the input and output, as ``registry`` takes them.

        A tabular model (linear, MLP) asked for images or series takes each sample flattened:
        ``in_features`` = C*H*W or T*F (the policy's ``*-flat`` candidates)."""
        kw = {"num_classes": self.num_classes, **self.task.kind.to_kwargs(self.input_shape)}
        if self.task.input_kind in ("image", "sequence") and \
                zoo.get_entry(registry).input_kind == "tabular":
            kw = {"num_classes": self.num_classes, "in_features": math.prod(self.input_shape)}
        accepted = zoo.get_entry(registry).defaults
        return {k: v for k, v in kw.items() if k in accepted or k == "num_classes"}

    @classmethod
    def from_arguments(cls, task: Any, n_samples: Any, vram_gb: Any, latency_ms: Any, *,
                       input_shape: Any = None, num_classes: Any = None, batch_size: Any = None,
                       optimizer: Any = "adam", dtype: Any = "float32", device: Any = "cpu",
                       families: Any = None, n_edges: Any = None, train_budget_s: Any = None,
                       epochs: Any = None, devices: Any = 1,
                       strategy: Any = "ddp") -> "Problem":
        """``build``'s arguments (same names and meaning) checked and resolved.

        Raises ``ValueError`` naming the first bad argument; nothing is built or traced.
        """
        spec_task = TASKS[validation.choice("task", task, TASKS)]
        kind = spec_task.kind
        n_samples = validation.positive_int("n_samples", n_samples)
        train_budget_s = validation.optional(validation.positive_number, "train_budget_s",
                                             train_budget_s)
        epochs = validation.optional(validation.positive_int, "epochs", epochs)
        devices = validation.positive_int("devices", devices)
        strategy = validation.choice("strategy", strategy, ("ddp", "fsdp"))
        vram = validation.optional(validation.positive_number, "vram_gb", vram_gb)
        latency = validation.optional(validation.positive_number, "latency_ms", latency_ms)
        shape = kind.shape(task, input_shape)
        if spec_task.classification:
            num_classes = validation.integer("num_classes", num_classes, minimum=2,
                                             maximum=MAX_CLASSES)
        else:
            num_classes = int(validation.choice("num_classes", num_classes, (None, 1)) or 1)
        batch_size = kind.batch(batch_size)
        optimizer = validation.choice("optimizer", optimizer, tuple(OPTIMIZERS))
        dtype = str(validation.dtype("dtype", dtype) or torch.float32).split(".")[-1]
        device = validation.choice("device", device, DEVICES)
        validation.device("device", device)  # cuda: only where torch sees a device
        input_kwargs = kind.example_kwargs(task, shape, n_edges)
        provider = "cpu"
        if device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                provider = "cuda"
        allowed, fired = policy.allowed_candidates(kind.name, n_samples=n_samples,
                                                   latency_ms=latency, **kind.to_rules(shape))
        if math.prod(shape) > FLAT_MAX_FEATURES:  # no flat model over so many features
            allowed = [k for k in allowed if not policy.CANDIDATES[k].flat] or \
                ([] if kind.name != "sequence" else ["tcn"])
        if families is None:
            candidates = allowed
        else:
            families = list(validation.non_empty_sequence("families", families))
            candidates = _requested(families, kind.name, allowed, n_samples)
        return cls(task=spec_task, n_samples=n_samples, input_shape=shape,
                   num_classes=num_classes, batch_size=batch_size, optimizer=optimizer,
                   dtype=dtype, device=device, vram_gb=vram, latency_ms=latency,
                   input_kwargs=input_kwargs, provider=provider, candidates=candidates,
                   rules=fired, families=families, train_budget_s=train_budget_s, epochs=epochs,
                   devices=devices, strategy=strategy)


FLAT_MAX_FEATURES = 2 ** 24
"""Most features a flat candidate (an MLP over the flattened image or series) is offered on: its
first layer alone would hold 32 x that many weights; a temporal CNN takes such series instead."""

MAX_CLASSES = 1_000_000
"""Most classes a classification head may have (ImageNet-21k has 21,841; a million-way head of
512 features is already 2 GB to train with Adam)."""



def _requested(requested: list, kind: str, allowed: list[str], n_samples: int) -> list[str]:
    """Candidate keys for ``requested`` names (candidate keys, registry names or registry
    families), the policy's preference order first, then the rest in the order asked."""
    here = {k: c for k, c in policy.CANDIDATES.items()
            if zoo.get_entry(c.registry).input_kind == kind
            or (c.flat and kind in ("image", "sequence"))}
    aliases = {k: {k, c.registry, zoo.get_entry(c.registry).family} for k, c in here.items()}
    names = sorted(set().union(*aliases.values()))
    keys: list[str] = []
    for i, name in enumerate(requested):
        validation.string(f"families[{i}]", name)
        match = [k for k, names_k in aliases.items() if name in names_k]
        if not match:
            raise ValueError(f"families={requested!r} is not accepted: expected names of {kind} "
                             f"models (candidate keys, registry names or registry families): "
                             f"{', '.join(names)}")
        keys += [k for k in match if k not in keys]
    if "transformer" in keys and n_samples < policy.TRANSFORMER_MIN_SAMPLES:
        raise ValueError(f"families={requested!r} is not accepted: expected no transformer on "
                         f"{n_samples:,} samples: the policy never builds one on fewer than "
                         f"{policy.TRANSFORMER_MIN_SAMPLES:,} (its weak inductive bias needs data)")
    return [k for k in allowed if k in keys] + [k for k in keys if k not in allowed]
