"""Parameter and FLOP counts of configs, kept for the process and across processes.

Counting builds the model on the meta device (parameters) or runs one forward on meta or fake
tensors (FLOPs): 10-300 ms a point, and a search looks at dozens of points. The counts depend only
on the config, the input sizes and the code that builds the model, so a second build of the same
problem, in a new process, reads them back from ``<cache_dir>/counts`` (one JSON file per count,
named by :func:`zoo.factory.user_cache.keyed_path`)::

    key = [kind, config, input_kwargs, torch.__version__, zoo.__version__, COUNTS_VERSION]

A new torch, a new zoo or a change to how counting works (:data:`COUNTS_VERSION`) gives new keys.
Files are written atomically; one that cannot be read back whole, or holds another key, is counted
again and written over. A cache that cannot be written is skipped.
"""
from __future__ import annotations

import json

import torch

import zoo

from .counts import count_flops, count_params
from .user_cache import keyed_path, read_keyed, write_keyed

COUNTS_VERSION = 1
"""Raised whenever a change to :mod:`zoo.factory.counts` changes what it counts."""

_MEMO: dict[str, int] = {}


def _key(kind: str, config: dict, input_kwargs: dict | None) -> str:
    return json.dumps([kind, config, input_kwargs, torch.__version__, zoo.__version__,
                       COUNTS_VERSION], sort_keys=True, default=str)


def _cached(kind: str, config: dict, input_kwargs: dict | None, count) -> int:
    key = _key(kind, config, input_kwargs)
    if key in _MEMO:
        return _MEMO[key]
    path = keyed_path("counts", key, prefix=f"{kind}-")
    stored = read_keyed(path, key, "count")
    if type(stored) is int and stored >= 0:
        _MEMO[key] = stored
        return stored
    value = _MEMO[key] = int(count())
    write_keyed(path, key, "count", value)
    return value


def params(config: dict) -> int:
    """Exact parameter count of ``config`` (:func:`zoo.factory.counts.count_params`), cached."""
    return _cached("params", config, None, lambda: count_params(config))


def flops(config: dict, input_kwargs: dict | None = None) -> int:
    """Forward FLOPs of one inference of ``config`` at batch 1
    (:func:`zoo.factory.counts.count_flops`), cached."""
    return _cached("flops", config, input_kwargs,
                   lambda: count_flops(config, input_kwargs=input_kwargs))
