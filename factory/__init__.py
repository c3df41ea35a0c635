"""The constraint-aware factory (imports zoo and kernels, never the reverse).

``build(task, n_samples, vram_gb, latency_ms)`` picks the family whose inductive bias fits the
task (:mod:`factory.policy`), caps capacity by the data size, and searches width and depth for the
largest model that trains in the memory budget and meets the latency budget
(:mod:`factory.search`), costing candidates with :mod:`factory.estimators`.
"""
from .build import build
from .estimators import (MemoryEstimate, count_flops, count_params, estimate_training_memory,
                         measure_training_memory, weight_bytes)
from .spec import ModelSpec

__all__ = ["MemoryEstimate", "ModelSpec", "build", "count_flops", "count_params",
           "estimate_training_memory", "measure_training_memory", "weight_bytes"]
