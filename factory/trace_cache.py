"""Training-memory estimates cached across processes, under the user's cache directory.

A traced estimate (:func:`zoo.factory.training_memory.estimate_training_memory`) costs seconds;
its result depends only on what is in its key, so a second build of the same problem, in a new
process, reads it back instead of tracing again.

Where: ``$ZOO_CACHE_DIR/memory``, else ``$XDG_CACHE_HOME/zoo/memory``, else
``~/.cache/zoo/memory``; one JSON file per estimate, named by the SHA-256 of its key
(:func:`zoo.factory.user_cache.keyed_path`)::

    key = [config, batch_size, optimizer, dtype, device, loss, input_kwargs,
           torch.__version__, zoo.__version__, ESTIMATOR_VERSION, framework]

A new torch, a new zoo, new measured framework constants or a change to the estimator
(:data:`ESTIMATOR_VERSION`) gives new keys, so old entries are never read. Files are written
atomically (:mod:`zoo.atomic`); an entry that cannot be read back whole (truncated, corrupt, another key, missing fields) is ignored, and the estimate
computed again is written over it.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

import zoo

from .user_cache import keyed_path, read_keyed, write_keyed

ESTIMATOR_VERSION = 4
"""Raised whenever a change to the estimator (rules, heap model, constants) changes its results."""


def cache_key(config: dict, *, batch_size: int, optimizer: str, dtype: str, device: str,
              loss: str, input_kwargs: dict | None, framework: dict | None = None) -> str:
    """The key (a JSON string) of one estimate: its arguments, the versions that decide it and
    ``framework``, the machine's measured constants (:mod:`zoo.factory.framework_calibration`)."""
    return json.dumps([config, batch_size, optimizer, dtype, device, loss, input_kwargs,
                       torch.__version__, zoo.__version__, ESTIMATOR_VERSION, framework],
                      sort_keys=True, default=str)


def _path(key: str) -> Path:
    return keyed_path("memory", key)


def load(key: str) -> dict | None:
    """The cached estimate's fields for ``key``, or None (absent, unreadable, or another key)."""
    fields = read_keyed(_path(key), key, "estimate")
    return fields if isinstance(fields, dict) else None


def store(key: str, fields: dict) -> None:
    """Write ``fields`` (an estimate's) for ``key``, atomically; a cache that cannot be written
    (read-only home, full disk) is skipped: the estimate stands without it."""
    write_keyed(_path(key), key, "estimate", fields)
