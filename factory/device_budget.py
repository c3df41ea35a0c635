"""``build(..., devices=N, strategy="ddp" | "fsdp")``: the search's memory budget per device.

With ``devices = N > 1`` the problem is data-parallel training on N devices of ``vram_gb`` each
(GB of 1e9 bytes, per device); ``batch_size`` is the GLOBAL batch, each rank trains on
``ceil(batch_size / N)`` samples. A point of the search costs
:func:`zoo.factory.distributed_memory.estimate_per_device_memory` (DDP: a full replica, its gradient
buckets, activations at the per-device batch; FSDP2: model states sharded by N, the unsharded
units live at once, communication buffers, activations at the per-device batch) instead of the
single-device trace, and must fit ``vram_gb``. ``devices=1`` is the single-device search, unchanged.

The estimate is carried as a :class:`PerDeviceMemory`, a
:class:`zoo.factory.training_memory.MemoryEstimate` whose ``total`` is the per-device peak and
whose extra fields (``devices``, ``strategy``, ``local_batch``, ``buckets``, ``unsharded``,
``comm_buffers``; ``context`` is MemoryEstimate's) are the per-device breakdown, so the spec's ``memory`` states it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .distributed_memory import devices_needed, estimate_per_device_memory
from .training_memory import (MemoryEstimate, cached_training_memory,
                              estimate_training_memory)

STRATEGIES = ("ddp", "fsdp")
DEVICE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Device counts a ``BudgetError`` tries when suggesting how many devices would work."""


@dataclass
class PerDeviceMemory(MemoryEstimate):
    """Per-device training memory (bytes) on ``devices`` ranks under ``strategy``: the parts of
    :class:`zoo.factory.distributed_memory.DistributedMemoryEstimate` in MemoryEstimate's names
    (``weights`` = this rank's parameters, sharded under FSDP), ``batch_size`` the global batch."""

    strategy: str = "ddp"
    devices: int = 1
    local_batch: int = 0
    buckets: int = 0
    unsharded: int = 0
    comm_buffers: int = 0
    method: str = ""


_CACHE: dict[str, PerDeviceMemory] = {}


def _devices(problem) -> tuple[int, str]:
    return getattr(problem, "devices", 1), getattr(problem, "strategy", "ddp")


def _key(problem, config: dict) -> str:
    n, strategy = _devices(problem)
    return json.dumps([config, problem.batch_size, n, strategy, problem.optimizer,
                       problem.dtype, problem.device, problem.loss, problem.input_kwargs],
                      sort_keys=True, default=str)


def memory_for(problem, config: dict, limit_bytes: float | None = None) -> MemoryEstimate:
    """The memory one device needs to train ``config`` for ``problem`` (bytes, with its parts).

    One device: :func:`estimate_training_memory` (``limit_bytes`` lets it stop at a floor).
    Several: :func:`estimate_per_device_memory` at the global ``problem.batch_size``, cached."""
    n, strategy = _devices(problem)
    common = dict(optimizer=problem.optimizer, dtype=problem.dtype, device=problem.device,
                  loss=problem.loss, input_kwargs=problem.input_kwargs)
    if n == 1:
        return estimate_training_memory(config, batch_size=problem.batch_size,
                                        limit_bytes=limit_bytes, **common)
    key = _key(problem, config)
    if key not in _CACHE:
        d = estimate_per_device_memory(config, batch_size=problem.batch_size, devices=n,
                                       strategy=strategy, **common)
        _CACHE[key] = PerDeviceMemory(
            weights=d.params, gradients=d.gradients, optimizer_state=d.optimizer_state,
            activations=d.activations, transient=d.transient, allocator=d.allocator,
            framework=d.framework, total=d.total,
            traced_peak=d.total - d.allocator - d.framework - d.context,
            batch_size=d.batch_size, optimizer=d.optimizer, dtype=d.dtype, device=d.device,
            trace="per-device", strategy=strategy, devices=n, local_batch=d.local_batch,
            buckets=d.buckets, unsharded=d.unsharded, comm_buffers=d.comm_buffers,
            context=d.context, method=d.method)
    return _CACHE[key]


def cached_memory_for(problem, config: dict) -> MemoryEstimate | None:
    """What :func:`memory_for` already computed in this process for these arguments, or None."""
    n, _ = _devices(problem)
    if n == 1:
        return cached_training_memory(config, batch_size=problem.batch_size,
                                      optimizer=problem.optimizer, dtype=problem.dtype,
                                      device=problem.device, loss=problem.loss,
                                      input_kwargs=problem.input_kwargs)
    return _CACHE.get(_key(problem, config))


def devices_hint(problem, config: dict) -> str:
    """What would fit ``config`` in ``problem.vram_gb`` per device: the fewest devices of
    :data:`DEVICE_COUNTS` (at least ``problem.devices``) under FSDP, or FSDP on the same devices,
    or that none does (at once when the per-process constants alone exceed ``vram_gb``). A
    sentence fragment for a ``BudgetError``."""
    n, strategy = _devices(problem)
    if problem.vram_gb is None:
        return ""
    kw = dict(batch_size=problem.batch_size, vram_gb=problem.vram_gb,
              optimizer=problem.optimizer, dtype=problem.dtype, device=problem.device,
              loss=problem.loss, input_kwargs=problem.input_kwargs)
    more = tuple(c for c in DEVICE_COUNTS if c >= n)
    fsdp = None
    floor = memory_for(problem, config)   # what this problem's devices need, computed already
    if floor.framework + getattr(floor, "context", 0) < problem.vram_gb * 1e9:  # no N removes these
        fsdp = devices_needed(config, strategy="fsdp", candidates=more, **kw)
    if fsdp is None:
        return f"; not even {DEVICE_COUNTS[-1]} devices of vram_gb={problem.vram_gb:g} with " \
               f"strategy='fsdp' fit it"
    if fsdp == n and strategy == "ddp":
        return f"; strategy='fsdp' on the same devices={n} would work"
    return f"; devices={fsdp} with strategy='fsdp' would work (vram_gb per device, batch_size " \
           f"global)"


def record(spec, problem) -> None:
    """The devices, strategy and per-device batch into ``spec.budgets``; a reason when N > 1."""
    n, strategy = _devices(problem)
    spec.budgets["devices"] = n
    spec.budgets["strategy"] = strategy
    spec.budgets["per_device_batch"] = -(-problem.batch_size // n)
    if n > 1:
        m = spec.memory
        spec.reasons.append(
            f"devices={n}, strategy={strategy!r}: vram_gb is per device and batch_size "
            f"{problem.batch_size} is global ({spec.budgets['per_device_batch']} per device); "
            f"training memory {m['total'] / 1e9:.4g} GB per device (params "
            f"{m['weights'] / 1e9:.4g}, "
            f"gradients {m['gradients'] / 1e9:.4g}, optimizer state "
            f"{m['optimizer_state'] / 1e9:.4g}, activations {m['activations'] / 1e9:.4g}, buckets "
            f"{m['buckets'] / 1e9:.4g}, unsharded units {m['unsharded'] / 1e9:.4g}, communication "
            f"buffers {m['comm_buffers'] / 1e9:.4g} GB; {m['method']})")
