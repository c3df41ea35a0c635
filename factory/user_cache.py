"""The user's cache directory for zoo: the one place that decides where cached measurements live.

``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``. Each cache keeps its own
sub-folder (``memory/`` for training-memory traces, ``latency/`` for ONNX Runtime timings).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


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
