"""The user's cache directory for zoo: the one place that decides where cached measurements live.

``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``. Each cache keeps its own
sub-folder (``memory/`` for training-memory traces, ``latency/`` for ONNX Runtime timings).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from zoo.atomic import write_text_atomic


def cache_dir(sub: str | None = None) -> Path:
    """The zoo cache folder, or its sub-folder ``sub``; read from the environment at each call."""
    if os.environ.get("ZOO_CACHE_DIR"):
        root = Path(os.environ["ZOO_CACHE_DIR"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"
    return root / sub if sub else root


def keyed_path(sub: str, key, prefix: str = "") -> Path:
    """The cache file for ``key`` (a JSON string, or anything JSON can write) in ``sub``:
    ``<cache_dir(sub)>/<prefix><first 16 hex digits of the key's SHA-256>.json``."""
    text = key if isinstance(key, str) else json.dumps(key, sort_keys=True, default=str)
    return cache_dir(sub) / f"{prefix}{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def read_keyed(path: Path, key: str, field: str):
    """``entry[field]`` of the JSON file ``path`` written by :func:`write_keyed` for ``key``, or
    None: absent, unreadable, not an object, or written for another key."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry.get(field)


def write_keyed(path: Path, key: str, field: str, value) -> None:
    """Write ``{"key": key, field: value}`` to ``path`` atomically; a cache that cannot be written
    (read-only home, full disk) is skipped: it is an optimisation only."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"key": key, field: value}))
