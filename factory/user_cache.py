"""The user's cache directory for zoo: the one place that decides where cached measurements live.

``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``. Each cache keeps its own
sub-folder (``memory/`` for training-memory traces, ``latency/`` for ONNX Runtime timings).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str | None = None) -> Path:
    """The zoo cache folder, or its sub-folder ``sub``; read from the environment at each call."""
    if os.environ.get("ZOO_CACHE_DIR"):
        root = Path(os.environ["ZOO_CACHE_DIR"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zoo"
    return root / sub if sub else root
