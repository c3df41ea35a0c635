"""A registry name or a saved file, with overrides -> a model: :func:`model_from`.

What ``zoo export`` and ``zoo check`` take as their NAME_OR_FILE argument, as one public function,
so no command builds a fake ``argparse.Namespace`` to reach another's private helper.
:func:`parse_overrides` reads the command line's ``KEY=VALUE`` pairs into the keyword arguments.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import torch.nn as nn

from . import validation


def model_from(name_or_file: str | os.PathLike, **overrides: Any) -> nn.Module:
    """The model a registry name builds (``zoo.create(name, **overrides)``), or the model a file
    written by :func:`zoo.save` holds (``zoo.load(path)``; no overrides: its weights fix the
    architecture).

    A string that is both a registry name and a file is the registry name. Raises ``ValueError``
    naming close registry names for an unknown name, and :class:`zoo.ModelFileError` for a file
    that cannot be read as a zoo model.
    """
    from .io import load
    from .registry import create, get_entry, list_models

    if isinstance(name_or_file, os.PathLike):
        name_or_file = os.fspath(name_or_file)
    source = validation.string("name_or_file", name_or_file)
    if source in list_models():
        return create(source, **overrides)
    if Path(source).is_file() or source.endswith(".safetensors"):
        if overrides:
            raise ValueError(f"{', '.join(sorted(overrides))} cannot be changed for a saved model "
                             f"({source}): its architecture is fixed by the weights in the file")
        return load(source)
    get_entry(source)  # raises ValueError naming close registry names
    raise AssertionError(f"{source!r} is a registry name but not in list_models()")


def parse_value(text: str) -> Any:
    """A command-line value: a JSON literal (``3``, ``0.5``, ``true``, ``null``, ``[1, 2]``),
    Python's ``True``/``False``/``None``, or else the string itself."""
    python_literals = {"True": True, "False": False, "None": None}
    if text in python_literals:
        return python_literals[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(pairs: Iterable[str], *, option: str = "--arg") -> dict:
    """``["width_mult=0.5", "norm=layernorm"]`` -> ``{"width_mult": 0.5, "norm": "layernorm"}``;
    a pair without ``=`` or a key raises ``ValueError`` naming ``option``."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} {pair!r} is not accepted: expected KEY=VALUE, e.g. "
                             f"{option} width_mult=0.5")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides
