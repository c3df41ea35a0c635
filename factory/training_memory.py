"""Training memory of a model config, estimated without allocating it: :func:`estimate_training_memory`.

The estimate works on a model *config* (``model.config``, as :func:`zoo.from_config` takes it), so
the factory can cost a candidate without allocating it. Its parts, each in its own module:

* :mod:`zoo.factory.train_step` -- optimizer, loss, inputs and dtype of one step;
* :mod:`zoo.factory.counts` -- parameters, buffers, input bytes and FLOPs;
* :mod:`zoo.factory.storage_tracker` -- the storage tracker and the CPU workspace rules;
* :mod:`zoo.factory.step_trace` -- a step traced on fake tensors, or profiled at small scale;
* :mod:`zoo.factory.glibc_heap` -- the glibc heap model;
* :mod:`zoo.factory.cuda_cache` -- the CUDA caching allocator model;
* :mod:`zoo.factory.replay` -- the replay of a trace and the framework overhead tables;
* :mod:`zoo.factory.memprobe` -- the independent measurement in a fresh process.

:func:`estimate_training_memory` *traces* a training step -- forward, loss, backward,
  optimizer step -- and records every tensor storage as it is created and freed
  (a storage tracker on fake tensors; the profiler's allocation events of a real step at
  small scale for :data:`PROFILED_FAMILIES`). The trace is replayed as the first step (which
  creates the optimizer state) and the steady-state second one, so the peak is what PyTorch held
  at the worst moment of training, not a formula.
* :func:`zoo.factory.memprobe.measure_training_memory` is the independent check: real steps in a
  fresh process, measured by the kernel (peak resident set) or by CUDA's allocator.

Where a CPU step's resident memory goes beyond its live tensors, and how it is modelled (a
resnet50 step at batch 16 traced 1.40 GiB; its process peaked at 1.73 GiB):

* kernel-internal buffers the dispatcher never sees: oneDNN reorders around every convolution
  and batch-norm backward buffers (:data:`zoo.factory.storage_tracker.CPU_WORKSPACE_RULES`, read off ``torch.profiler``);
  oneDNN's LSTM workspace, partly written (:data:`zoo.factory.step_trace.TOUCHED_FRACTION`);
* glibc's heap: PyTorch's CPU allocator is plain ``posix_memalign``; freed activations leave
  holes that gradients and the next step's tensors do not fit (:class:`zoo.factory.glibc_heap.GlibcHeap`);
* the optimizer's lazily created state, resident from the second step on (the replay);
* code and buffers of the libraries first used by the step (:func:`zoo.factory.replay.framework_overhead`).

Training memory, term by term (bytes; P = number of parameters, s = bytes per element)::

    weights      P s  (+ buffers)            gradients   P s
    optimizer    adam/adamw 2 P s, sgd with momentum P s, sgd 0  (+ Adam's step counters)
    activations  what the forward (and the loss) leaves alive for backward, traced
    transient    the traced peak above weights + optimizer state + activations
    allocator    CPU: glibc's heap beyond the live tensors at its peak; CUDA: the caching
                 allocator's reserved peak beyond the live tensors (block rounding, segments)
    framework    libraries' code, JIT kernels and workspaces (per device and kernel kind)
    context      CUDA only: the CUDA context and library handles, outside the allocator

``total = traced_peak + allocator + framework + context``: on CUDA what the process takes from the
device (``torch.cuda.max_memory_reserved()`` plus the context), where ``allocated =
traced_peak + framework`` is what ``torch.cuda.max_memory_allocated()`` reports. It is *not* the
sum of the parts: activations are freed during backward while gradients appear, so the two never
peak together.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

import zoo
from zoo import validation

from . import trace_cache
from .counts import buffer_bytes, input_bytes, weight_bytes
from .framework_calibration import cpu_framework_constants
from .replay import framework_overhead, replay
from .step_trace import extrapolated_trace, fake_trace
from .train_step import LOSSES, OPTIMIZERS, torch_dtype


@dataclass
class MemoryEstimate:
    """Training memory of a steady-state step, in bytes, with its parts (see the module doc).

    ``total = traced_peak + allocator + framework + context``. ``phase_peaks`` are the live bytes' peaks in
    the forward, backward and optimizer step of the steady-state step; ``trace`` says how the
    allocations were obtained (``"fake"``, ``"profiled-extrapolated"``, or ``"lower-bound"`` for
    :func:`memory_lower_bound`: counted, not traced, and ``total`` is a floor).
    """
    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    transient: int
    allocator: int
    framework: int
    total: int
    traced_peak: int
    batch_size: int
    optimizer: str
    dtype: str
    device: str
    trace: str = "fake"
    phase_peaks: dict = field(default_factory=dict)
    context: int = 0

    @property
    def total_gb(self) -> float:
        return self.total / 1e9

    @property
    def allocated(self) -> int:
        """The live tensors' peak with the framework's workspaces: on CUDA what
        ``torch.cuda.max_memory_allocated`` reports."""
        return self.traced_peak + self.framework

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_gb"] = self.total_gb
        d["allocated"] = self.allocated
        return d



# Families whose CPU kernels allocate what a fake-tensor trace cannot see, with the reason.
PROFILED_FAMILIES = {
    "lstm": "PyTorch trains nn.LSTM on CPU through oneDNN's RNN primitive, whose workspace (every "
            "gate of every step, ~4x the hidden states) is invisible to a fake-tensor trace, which "
            "sees the cell-by-cell decomposition instead",
    "gcn": "the GCN multiplies by a cached CSR adjacency in eager mode but takes a gather/scatter "
           "path under tracing, which materialises one message per edge",
}

PROFILE_MAX_BYTES = 1024 ** 3
"""A profiled family is traced by real steps at batch 2 and 4 (or a quarter of the graph): when
their floor (:func:`memory_lower_bound` at that scale) exceeds this, they are not run -- the
estimate is the floor, and nothing that large is ever allocated by the estimator."""

CUDA_CONTEXT_BYTES = 512 * 1024 ** 2
"""The CUDA context and library handles a process holds on the device outside the caching
allocator (NOT measured here: ``python -m zoo.benchmarks.gpu_check`` measures it on a GPU as the
device's used memory less the allocator's reserved bytes; ~300-500 MiB on recent GPUs)."""
CONTEXT = {"cpu": 0, "cuda": CUDA_CONTEXT_BYTES}

_MEMORY_CACHE: dict[str, MemoryEstimate] = {}


def memory_lower_bound(config: dict, *, batch_size: int, optimizer: str = "adam",
                       dtype: str = "float32", device: str = "cpu", loss: str = "cross_entropy",
                       input_kwargs: dict | None = None) -> MemoryEstimate:
    """A floor on the training memory, counted without tracing or allocating (meta and fake
    tensors only): ``weights + optimizer_state + max(inputs, gradients) + framework``.

    During the steady-state forward the weights, the optimizer state (``k P s`` for an optimizer
    keeping ``k`` tensors per parameter) and one batch of inputs are alive; at the end of the
    backward the gradients (``P s``) are; the framework's base constant is always held. So every
    traced estimate is at least this (``trace="lower-bound"``).
    """
    dt = torch_dtype(dtype)
    weights = weight_bytes(config, dt)
    grads = weights - buffer_bytes(config, dt)
    state = OPTIMIZERS[optimizer][2] * grads
    inputs = input_bytes(config, batch_size=batch_size, dtype=dt, input_kwargs=input_kwargs)
    framework = framework_overhead(device)
    peak = weights + state + max(inputs, grads)
    return MemoryEstimate(
        weights=weights, gradients=grads, optimizer_state=state, activations=inputs, transient=0,
        allocator=0, framework=framework, total=peak + framework + CONTEXT[device],
        traced_peak=peak, batch_size=batch_size, optimizer=optimizer,
        dtype=str(dt).replace("torch.", ""), device=device, trace="lower-bound",
        context=CONTEXT[device])


def _memory_key(config, batch_size, optimizer, dt, device, loss, input_kwargs) -> str:
    return json.dumps([config, batch_size, optimizer, str(dt), device, loss, input_kwargs],
                      sort_keys=True, default=str)


def cached_training_memory(config: dict, *, batch_size: int, optimizer: str = "adam",
                           dtype: str = "float32", device: str = "cpu",
                           loss: str = "cross_entropy",
                           input_kwargs: dict | None = None) -> MemoryEstimate | None:
    """The estimate :func:`estimate_training_memory` already made for these arguments in this
    process, or None (nothing is computed)."""
    return _MEMORY_CACHE.get(_memory_key(config, batch_size, optimizer, torch_dtype(dtype),
                                         device, loss, input_kwargs))


def estimate_training_memory(config: dict, *, batch_size: int, optimizer: str = "adam",
                             dtype: str = "float32", device: str = "cpu",
                             loss: str = "cross_entropy",
                             input_kwargs: dict | None = None,
                             limit_bytes: float | None = None) -> MemoryEstimate:
    """Bytes needed to train ``config`` at ``batch_size`` with ``optimizer`` (see module doc).

    The step is traced on fake tensors (nothing allocated), except for the families in
    :data:`PROFILED_FAMILIES`, whose real CPU steps are profiled at two small scales and
    extrapolated. ``device="cpu"`` adds what glibc holds beyond the live tensors
    (:class:`GlibcHeap`) and the framework constants; ``"cuda"`` estimates what
    ``torch.cuda.max_memory_allocated`` reports: the traced tensors plus cuBLAS's and cuDNN's
    workspaces (constants fitted to one H200 run, where all 24 ``zoo-bench memory --large`` cases
    came within 15 %).
    Cached per argument set within the process, and across processes under the user's cache
    directory (:mod:`zoo.factory.trace_cache`, keyed by the arguments and the versions of torch,
    zoo and the estimator): a second build of the same problem reads it back.

    First the floor (:func:`memory_lower_bound`) is counted: when it exceeds ``limit_bytes`` (the
    caller's budget), or when the profiled steps' floor exceeds :data:`PROFILE_MAX_BYTES`, the
    floor is returned (``trace="lower-bound"``, not cached) and nothing is traced.
    """
    validation.choice("optimizer", optimizer, OPTIMIZERS)
    validation.choice("loss", loss, LOSSES)
    validation.choice("device", device, ("cpu", "cuda"))
    validation.positive_int("batch_size", batch_size)
    dt = torch_dtype(dtype)
    key = _memory_key(config, batch_size, optimizer, dt, device, loss, input_kwargs)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    disk_key = trace_cache.cache_key(config, batch_size=batch_size, optimizer=optimizer,
                                     dtype=str(dt).replace("torch.", ""), device=device,
                                     loss=loss, input_kwargs=input_kwargs,
                                     framework=cpu_framework_constants() if device == "cpu" else None)
    cached = _from_fields(trace_cache.load(disk_key))
    if cached is not None:
        _MEMORY_CACHE[key] = cached
        return cached
    family = zoo.get_entry(config["name"]).family
    kw = dict(batch_size=batch_size, optimizer=optimizer, dtype=dt, loss=loss,
              input_kwargs=input_kwargs)
    floor = memory_lower_bound(config, device=device, **kw)
    if limit_bytes is not None and floor.total > limit_bytes:
        return floor
    if family in PROFILED_FAMILIES and input_kwargs is None and batch_size > 4:
        if memory_lower_bound(config, device=device, **dict(kw, batch_size=4)).total \
                > PROFILE_MAX_BYTES:
            return floor
    elif family in PROFILED_FAMILIES and floor.total > PROFILE_MAX_BYTES:
        return floor
    r, trace, how = _traced_step(config, family, device, **kw)
    grads = weight_bytes(config, dt) - buffer_bytes(config, dt)
    allocator = _allocator(r, device)
    framework = framework_overhead(device, family, trace.ops)
    transient = max(0, r["traced_peak"] - r["weights"] - r["optimizer_state"] - r["activations"])
    est = MemoryEstimate(
        weights=r["weights"], gradients=grads, optimizer_state=r["optimizer_state"],
        activations=r["activations"], transient=transient, allocator=allocator,
        framework=framework, total=r["traced_peak"] + allocator + framework + CONTEXT[device],
        traced_peak=r["traced_peak"], batch_size=batch_size, optimizer=optimizer,
        dtype=str(dt).replace("torch.", ""), device=device, trace=how,
        phase_peaks=r["phase_peaks"], context=CONTEXT[device])
    _MEMORY_CACHE[key] = est
    trace_cache.store(disk_key, asdict(est))
    return est


def _traced_step(config: dict, family: str, device: str, *, fixed_mmap_threshold: int | None = None,
                 **kw):
    """The replayed step (:func:`zoo.factory.replay.replay`), its trace and how it was traced."""
    if family in PROFILED_FAMILIES:
        # On CUDA too, as a proxy: cuDNN's LSTM reserve space is about oneDNN's workspace as
        # written, and the GCN takes its CSR path there as well (one H200 run: LSTM +11..+14 %,
        # GCN -13 %; the fake trace was -60..-85 % and +49..+136 %).
        trace, how = extrapolated_trace(config, **kw), "profiled-extrapolated"
    else:
        trace, how = fake_trace(config, workspaces=(device == "cpu"), **kw), "fake"
    cuda_static = static_sizes(config, kw["dtype"]) if device == "cuda" else None
    return replay(trace, heap=(device == "cpu"), fixed_mmap_threshold=fixed_mmap_threshold,
                  cuda_static=cuda_static), trace, how


def static_sizes(config: dict, dtype) -> list[int]:
    """Bytes of each parameter and buffer of ``config`` (built on meta), in the model's order:
    the tensors the CUDA caching allocator holds before a step."""
    model = zoo.from_config(config, device="meta", dtype=torch_dtype(dtype))
    seen, sizes = set(), []
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            sizes.append(t.numel() * t.element_size())
    return sizes


_FIXED_ALLOCATOR_CACHE: dict[str, int] = {}


def cpu_allocator_fixed_threshold(config: dict, *, batch_size: int, threshold: int,
                                  optimizer: str = "adam", dtype="float32",
                                  loss: str = "cross_entropy", input_kwargs: dict | None = None) -> int:
    """glibc's slack over the live tensors of one CPU step at ``batch_size`` when its mmap
    threshold is fixed at ``threshold`` bytes (trim at twice it), as
    :func:`zoo.distributed.fix_cpu_mmap_threshold` sets it for FSDP: the ``allocator`` term of
    :func:`estimate_training_memory` under those thresholds. Cached per process."""
    validation.positive_int("batch_size", batch_size)
    validation.positive_int("threshold", threshold)
    dt = torch_dtype(dtype)
    key = json.dumps([config, batch_size, threshold, optimizer, str(dt), loss, input_kwargs],
                     sort_keys=True, default=str)
    if key not in _FIXED_ALLOCATOR_CACHE:
        family = zoo.get_entry(config["name"]).family
        r, _, _ = _traced_step(config, family, "cpu", fixed_mmap_threshold=threshold,
                               batch_size=batch_size, optimizer=optimizer, dtype=dt, loss=loss,
                               input_kwargs=input_kwargs)
        _FIXED_ALLOCATOR_CACHE[key] = _allocator(r, "cpu")
    return _FIXED_ALLOCATOR_CACHE[key]


def _allocator(r: dict, device: str) -> int:
    """The allocator's bytes beyond the live tensors at its peak: glibc's heap on CPU, the caching
    allocator's reserved segments on CUDA."""
    return max(0, r["resident_peak" if device == "cpu" else "reserved_peak"] - r["traced_peak"])


def cpu_tensor_bytes(config: dict, *, batch_size: int) -> int:
    """The CPU estimate without its framework term (traced peak plus glibc's slack), for Adam,
    float32 and cross-entropy: what :mod:`zoo.factory.framework_calibration` subtracts from a
    measured step to leave the framework's own bytes. Not cached."""
    family = zoo.get_entry(config["name"]).family
    r, _, _ = _traced_step(config, family, "cpu", batch_size=batch_size, optimizer="adam",
                           dtype=torch_dtype("float32"), loss="cross_entropy", input_kwargs=None)
    return r["traced_peak"] + _allocator(r, "cpu")


def _from_fields(fields: dict | None) -> MemoryEstimate | None:
    """A :class:`MemoryEstimate` from a cache entry's fields, or None where they do not make one."""
    names = {f.name for f in dataclasses.fields(MemoryEstimate)}
    if not isinstance(fields, dict) or set(fields) != names:
        return None
    ints = [fields[n] for n in ("weights", "gradients", "optimizer_state", "activations",
                                "transient", "allocator", "framework", "total", "traced_peak",
                                "batch_size", "context")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints) \
            or not isinstance(fields["phase_peaks"], dict):
        return None
    return MemoryEstimate(**fields)
