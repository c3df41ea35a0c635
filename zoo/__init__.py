"""zoo: reference models proven equal to timm, torchvision and PyG, and a constraint-aware factory.

>>> import zoo
>>> m = zoo.create("resnet50", width_mult=0.5, num_classes=10)
>>> model = zoo.build("image-classification", n_samples=50_000, vram_gb=8, latency_ms=15,
...                   input_shape=(3, 32, 32), num_classes=10)      # doctest: +SKIP

This module is the public facade. Every name is imported on first use; ``build`` lives in
``zoo.factory``, one layer up, so the facade is the one place under ``zoo/`` that reaches it.
"""
from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> module holding it. Imported on first use (PEP 562), so ``import zoo`` is cheap and
# imports no torch: the isolated ONNX Runtime timer (``python -m zoo.factory._ort_timer``) imports
# this package first and must stay torch-free. ``build`` is the factory's, one layer up: the facade
# is the only module under zoo/ that hands over to it.
_EXPORTS = {
    "BudgetError": "zoo.errors",
    "ModelFileError": "zoo.errors",
    "load": "zoo.io",
    "save": "zoo.io",
    "create": "zoo.registry",
    "from_config": "zoo.registry",
    "get_entry": "zoo.registry",
    "list_models": "zoo.registry",
    "register_model": "zoo.registry",
    "make_divisible": "zoo.scaling",
    "scale_depth": "zoo.scaling",
    "scale_width": "zoo.scaling",
    "export_onnx": "zoo.onnx_export",
    "read_onnx_metadata": "zoo.onnx_export",
    "model_from": "zoo.resolve",
    # Never a module named like its function: importing zoo.fit would rebind zoo.fit to it.
    "fit": "zoo.training",
    "History": "zoo.history",
    "compare": "zoo.comparison",
    "Comparison": "zoo.comparison",
    "build": "zoo.factory.builder",
    "shard": "zoo.sharding",
    "check": "zoo.factory.check",
    "main": "zoo.factory.cli",  # the `zoo` command (python -m zoo), assembled by the factory
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
