"""The constraint-aware factory (imports zoo and kernels, never the reverse).

``build(task, n_samples, vram_gb, latency_ms)`` picks the family whose inductive bias fits the
task (:mod:`zoo.factory.policy`), sizes it by the evidence of what learns from that much data, and
searches width and depth for the model that trains in the memory budget and meets the latency
budget (:mod:`zoo.factory.search`), costing candidates with :mod:`zoo.factory.counts` (parameters,
FLOPs) and :mod:`zoo.factory.training_memory` (training memory).

The public names are imported lazily (PEP 562), so ``import zoo.factory.timing`` -- which the isolated
ONNX Runtime timer runs without torch -- does not import torch through this package.
"""
from __future__ import annotations

from zoo.lazy import lazy_exports

_EXPORTS = {
    "build": "zoo.factory.builder",  # module named apart from its function: no shadowing
    "ModelSpec": "zoo.factory.spec",
    "MemoryEstimate": "zoo.factory.training_memory",
    "estimate_training_memory": "zoo.factory.training_memory",
    "memory_lower_bound": "zoo.factory.training_memory",
    "count_flops": "zoo.factory.counts",
    "count_params": "zoo.factory.counts",
    "weight_bytes": "zoo.factory.counts",
    "measure_training_memory": "zoo.factory.memprobe",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
