"""The replay of a traced step and the framework tables: from allocation events to peaks.

:func:`replay` plays a :class:`zoo.factory.step_trace.Trace` as the first training step (which
creates the optimizer state) and the steady-state second one, through
:class:`zoo.factory.glibc_heap.GlibcHeap` on CPU; :func:`framework_overhead` adds what the
libraries hold beyond the tensors (:data:`FRAMEWORK_OVERHEAD`, :data:`OP_OVERHEAD`,
:data:`FAMILY_OVERHEAD`).
"""
from __future__ import annotations

from .cuda_cache import reserved_peak
from .framework_calibration import cpu_framework_constants
from .glibc_heap import GlibcHeap
from .step_trace import Trace
from .train_step import MiB


def replay(trace: Trace, *, heap: bool, seeds: int = 5, fixed_mmap_threshold: int | None = None,
           cuda_static: list[int] | None = None) -> dict:
    """Replay step 1, then the steady-state step 2; live-byte peaks and glibc's resident peak.

    Step 2 is step 1 without the allocations that outlived it (the optimizer state): the same
    ops in the same order, with the state already resident. The resident peak is the mean of
    ``seeds`` :class:`GlibcHeap` runs (it is chaotic in which small objects take which slivers).
    ``fixed_mmap_threshold``: glibc's thresholds fixed (mmap at it, trim at twice it), as
    :func:`zoo.distributed.fix_cpu_mmap_threshold` sets them; None: glibc's dynamic defaults.
    ``cuda_static``: on CUDA, the bytes of each tensor held before the step (weights, buffers):
    the steps are then replayed through :class:`zoo.factory.cuda_cache.CudaCachingAllocator` too,
    for the caching allocator's reserved peak (``reserved_peak``; 0 without it).
    """
    step1 = trace.events
    freed = {k for kind, k, _ in step1 if kind == "f"}
    kept = {i: k for i, (kind, k, _) in enumerate(step1) if kind == "a" and k not in freed}
    # What outlives the optimizer step is its state: allocated once, in step 1 only. What
    # outlives the forward or backward is a cache (the GCN's adjacency): step 2 builds a new one
    # and frees step 1's as it replaces it.
    persistent = {k for i, k in kept.items() if i >= trace.marks["backward"]}
    offset = 1 + max((k for _, k, _ in step1), default=0)
    cached = set(kept.values()) - persistent
    step2, cut2 = [], {}
    for i, (kind, k, n) in enumerate(step1):
        cut2[i] = len(step2)
        if k in persistent:
            continue
        step2.append((kind, k + offset, n))
        if k in cached:
            step2.append(("f", k, n))
    cut2[len(step1)] = len(step2)
    live = trace.static
    peak = live
    phase_peaks, activations = {}, 0
    ends = {trace.marks["forward"]: "forward", trace.marks["backward"]: "backward",
            len(step1): "optimizer_step"}
    for step, evs in ((1, step1), (2, step2)):
        start = live
        if step == 2:
            peak = live
            ends = {cut2[i]: name for i, name in ends.items()}
        for i, (kind, _, n) in enumerate(evs):
            live += n if kind == "a" else -n
            peak = max(peak, live)
            name = ends.get(i + 1)
            if step == 2 and name is not None:
                phase_peaks[name] = peak
                if name == "forward":
                    activations = live - start
                peak = live
        if step == 1:
            state = live - trace.static
    resident = 0
    if heap:
        runs = []
        for seed in range(seeds):
            h = GlibcHeap(seed=seed) if fixed_mmap_threshold is None else GlibcHeap(
                mmap_threshold=fixed_mmap_threshold, trim_threshold=2 * fixed_mmap_threshold,
                seed=seed, dynamic=False)
            for kind, k, n in step1 + step2:
                if kind == "a":
                    h.malloc(k, n)
                else:
                    h.free(k)
            runs.append(h.peak)
        resident = trace.static + sum(runs) // len(runs)
    reserved = reserved_peak(cuda_static, step1 + step2)[0] if cuda_static is not None else 0
    return {"weights": trace.static, "optimizer_state": state, "activations": activations,
            "traced_peak": max(phase_peaks.values(), default=trace.static),
            "resident_peak": resident, "reserved_peak": reserved, "phase_peaks": phase_peaks}



FRAMEWORK_OVERHEAD = {"cpu": 20 * MiB, "cuda": 60 * MiB}
"""Bytes a training process holds beyond its tensors and glibc's slack, per device.

CPU: the default only, where this machine's constant cannot be measured
(:mod:`zoo.factory.framework_calibration` measures it once per machine): what the first steps page
in and keep -- the code of the kernels used (libtorch, oneDNN's JIT-compiled convolutions, MKL's
GEMMs) and MKL's internal buffers, as the resident growth of a training step whose tensors are
negligible (a 650-parameter linear model at batch 8: 20 MiB on the first VM, 9.6 MiB on another).
CUDA: the workspaces cuBLAS and cuBLASLt take through the caching allocator at their first
GEMM, which ``torch.cuda.max_memory_allocated`` counts: 60 MiB fits linear, MLP and Transformer
steps from 130 MiB to 870 MiB within 15 % on an H200 (torch 2.11, CUDA 13; ``zoo-bench memory
--device cuda --large``, one run, the constants fitted to it). The CUDA context itself (~0.3-0.5 GB) is outside what that counter reports and
outside this estimate.
"""


OP_OVERHEAD = {
    # cuDNN's convolution workspaces (heuristic algorithms, benchmark mode off): 30 MiB more
    # fits ResNet, SE-ResNet, MobileNetV2 and Inception steps within 10 % on an H200.
    ("cuda", "convolution"): 30 * MiB,
    # oneDNN JIT-compiles a kernel per convolution shape and direction and caches it with its
    # reorder buffers: small CNNs grow ~55 MiB at batch 2 against ~20 MiB for an MLP on the first
    # VM. CPU: the default only; the machine's own is measured (framework_calibration).
    ("cpu", "convolution"): 20 * MiB,
}

FAMILY_OVERHEAD = {
    # A GCN step on CPU grows the resident set ~50 MiB beyond what glibc hands out at 20k nodes
    # (malloc traced with LD_PRELOAD: 77 MiB live at most, 129 MiB resident): MKL's sparse BLAS
    # keeps its handles and buffers outside PyTorch's allocator. 20 MiB more than the base
    # constant is within 15 % from 20k to 50k nodes.
    ("cpu", "gcn"): 20 * MiB,
}


def framework_overhead(device: str, family: str = "", ops=()) -> int:
    """Bytes the framework holds beyond the tensors: the base constant for the device,
    :data:`OP_OVERHEAD` for the kinds of kernels the step ran, :data:`FAMILY_OVERHEAD`.

    On CPU the base and the convolutions' constants are this machine's, measured once and cached
    (:func:`zoo.factory.framework_calibration.cpu_framework_constants`); :data:`FRAMEWORK_OVERHEAD`
    and :data:`OP_OVERHEAD` hold the CUDA ones and the CPU defaults."""
    base, per_op = FRAMEWORK_OVERHEAD[device], dict(OP_OVERHEAD)
    if device == "cpu":
        measured = cpu_framework_constants()
        base, per_op[("cpu", "convolution")] = measured["base"], measured["convolution"]
    return (base + FAMILY_OVERHEAD.get((device, family), 0)
            + sum(v for (dev, op), v in per_op.items() if dev == device and op in ops))
