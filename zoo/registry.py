"""The model registry: the only door through which models are built.

Each family file decorates its builders with :func:`register_model`; everything else (the factory,
the CLI, the benchmarks and the tests) goes through :func:`create`, :func:`list_models` and
:func:`from_config`. ``create`` records every argument of the builder (defaults included) in the
model's ``config``, so a config alone rebuilds the architecture.

Every argument is checked before anything is built: :func:`register_model` wraps each builder so
that it first checks its arguments by :mod:`zoo.arguments` (one table: a ``hidden`` is checked the
same way in every family), whether it is called through :func:`create` or directly.
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from .arguments import ARGUMENTS, Check, check_all

# Arguments that say where a model lives, not what it is: never part of a config.
PLACEMENT_ARGS = ("device", "dtype")
INPUT_KINDS = ("tabular", "image", "sequence", "graph")


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one builder.

    ``family`` groups names that share an architecture file (``resnet18`` and ``resnet50`` are both
    ``resnet``); ``input_kind`` is the structure the model's inductive bias fits; ``scales_width`` /
    ``scales_depth`` say whether ``width_mult`` / ``depth_mult`` change the architecture;
    ``reference`` names the implementation the tests prove it equal to; ``checks`` holds the
    builder's own argument checks, beside the shared table :data:`zoo.arguments.ARGUMENTS`.
    """
    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_kind: str
    scales_width: bool = True
    scales_depth: bool = True
    reference: str = ""
    defaults: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` checked (each by its row of the argument table) and converted."""
        return check_all(arguments, self.checks)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(*, family: str, input_kind: str, scales_width: bool = True,
                   scales_depth: bool = True, reference: str = "", name: str | None = None,
                   checks: dict[str, Check] | None = None):
    """Decorator recording a builder under ``name`` (default: the function's name).

    A duplicate name is refused: two builders must never answer to one name. Every argument of the
    builder must have a check: a row of :data:`zoo.arguments.ARGUMENTS` or an entry of ``checks``
    (``{name: check(name, value) -> value}``, e.g. a :mod:`zoo.validation` function). Returns the
    builder wrapped so that it checks its arguments (keyword-only, all of them) before running.
    """
    checks = dict(checks or {})
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind={input_kind!r} is not accepted: expected one of {INPUT_KINDS}")

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        model_name = name or fn.__name__
        if model_name in _REGISTRY:
            raise ValueError(f"model name {model_name!r} is already registered "
                             f"(by {_REGISTRY[model_name].builder.__module__})")
        params = inspect.signature(fn).parameters
        for required in ("num_classes", "width_mult", "depth_mult", "device", "dtype"):
            if required not in params:
                raise TypeError(f"builder {model_name!r} must accept {required!r}")
        unchecked = [k for k in params if k not in ARGUMENTS and k not in checks]
        if unchecked:
            raise TypeError(f"builder {model_name!r}: argument(s) {', '.join(map(repr, unchecked))} "
                            f"have no check: add them to zoo.arguments.ARGUMENTS or pass checks=")
        defaults = {k: p.default for k, p in params.items()
                    if p.default is not inspect.Parameter.empty and k not in PLACEMENT_ARGS}

        @functools.wraps(fn)
        def checked_builder(**kwargs: Any) -> nn.Module:
            _refuse_unknown(model_name, params, kwargs)
            return fn(**check_all(kwargs, checks))

        _REGISTRY[model_name] = ModelEntry(
            name=model_name, builder=checked_builder, family=family, input_kind=input_kind,
            scales_width=scales_width, scales_depth=scales_depth, reference=reference,
            defaults=defaults, checks=checks)
        return checked_builder

    return decorator


def _refuse_unknown(name: str, params, kwargs: dict) -> None:
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise ValueError(f"{name}: argument(s) {', '.join(map(repr, unknown))} not accepted; "
                         f"accepted: {', '.join(params)}")


def _ensure_loaded() -> None:
    # Importing the package registers every family (each file runs its decorators once).
    from . import models  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style ``pattern`` (``"resnet*"``)."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises ``ValueError`` with close matches."""
    _ensure_loaded()
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"name={name!r} is not a registered model{hint} "
                         f"(accepted: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` and record its full ``config``.

    Every model accepts ``num_classes``, ``width_mult``, ``depth_mult``, ``device`` and ``dtype``
    plus its input description (``in_chans``/``img_size``, ``in_features``, ``vocab_size``,
    ``seq_len``). An argument the builder does not take raises ``ValueError`` listing those it does;
    a bad value raises ``ValueError`` naming the argument, before anything is built. The config
    records the checked values (``width_mult=1`` is recorded as ``1.0``; placement never).
    """
    entry = get_entry(name)
    sig = inspect.signature(entry.builder)
    _refuse_unknown(name, sig.parameters, kwargs)
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    arguments = entry.check(bound.arguments)
    model = entry.builder(**arguments)  # checks again (idempotent): a builder is never unchecked
    config = {"name": name}
    config.update({k: v for k, v in arguments.items() if k not in PLACEMENT_ARGS})
    model._zoo_config = config
    return model


def from_config(config: dict, **overrides: Any) -> nn.Module:
    """Rebuild the architecture a ``config`` (from ``model.config``) describes.

    ``overrides`` may add placement arguments (``device="meta"``) or change any argument.
    """
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"config={config!r} is not accepted: expected a dict with a 'name' key "
                         f"(as returned by model.config)")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    kwargs.update(overrides)
    return create(config["name"], **kwargs)
