"""zoo: reference models proven equal to timm, torchvision and PyG, and a constraint-aware factory.

>>> import zoo
>>> m = zoo.create("resnet50", width_mult=0.5, num_classes=10)
>>> model = zoo.build("image-classification", n_samples=50_000, vram_gb=8, latency_ms=15,
...                   input_shape=(3, 32, 32), num_classes=10)      # doctest: +SKIP

This module is the public facade. ``build`` lives in the ``factory`` package, one layer up, and is
imported only when called, so importing ``zoo`` never imports ``factory`` (no cycle).
"""
from __future__ import annotations

from .errors import BudgetError, ModelFileError
from .io import load, save
from .registry import create, from_config, get_entry, list_models, register_model
from .scaling import make_divisible, scale_depth, scale_width

__version__ = "0.1.0"

__all__ = [
    "BudgetError", "ModelFileError", "build", "create", "export_onnx", "from_config", "get_entry",
    "list_models", "load", "read_onnx_metadata", "make_divisible", "register_model", "save", "scale_depth", "scale_width",
]


def build(task, n_samples, vram_gb, latency_ms, **kwargs):
    """Choose and build the largest model that fits the task, data size and budgets.

    See :func:`factory.builder.build` for the arguments; the returned model carries ``model.spec``.
    """
    from factory import build as _build  # lazy: factory imports zoo, never the reverse at import

    return _build(task, n_samples, vram_gb, latency_ms, **kwargs)


def export_onnx(model, path, **kwargs):
    """Export ``model`` to ONNX at ``path`` atomically; see :func:`zoo.onnx_export.export_onnx`."""
    from .onnx_export import export_onnx as _export

    return _export(model, path, **kwargs)


def read_onnx_metadata(path):
    """The zoo metadata (config, spec, inputs) of an exported ONNX file; see :mod:`zoo.onnx_export`."""
    from .onnx_export import read_onnx_metadata as _read

    return _read(path)
