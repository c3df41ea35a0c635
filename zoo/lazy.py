"""Lazy public names for a package (PEP 562): one place for the facade's import-on-first-use."""
from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: a name in ``exports`` (name -> module holding it)
    is imported on first use and then kept in the package's globals; any other name is an
    ``AttributeError`` naming the package."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
