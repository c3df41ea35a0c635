"""Cost estimators: parameters (exact), FLOPs (PyTorch's counter) and training memory (traced).

Everything here works on a model *config* (``model.config``, as :func:`zoo.from_config` takes it),
so the factory can cost a candidate without allocating it:

* :func:`count_params` builds the model on the ``meta`` device and counts.
* :func:`count_flops` runs one forward under ``FakeTensorMode`` inside
  :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as 2 FLOPs).
* :func:`estimate_training_memory` *traces* a training step -- forward, loss, backward,
  optimizer step -- and records every tensor storage as it is created and freed
  (:class:`StorageTracker` on fake tensors; the profiler's allocation events of a real step at
  small scale for :data:`PROFILED_FAMILIES`). The trace is replayed as the first step (which
  creates the optimizer state) and the steady-state second one, so the peak is what PyTorch held
  at the worst moment of training, not a formula.
* :func:`measure_training_memory` is the independent check: real steps in a fresh process,
  measured by the kernel (peak resident set) or by CUDA's allocator.

Where a CPU step's resident memory goes beyond its live tensors, and how it is modelled (a
resnet50 step at batch 16 traced 1.40 GiB; its process peaked at 1.73 GiB):

* kernel-internal buffers the dispatcher never sees: oneDNN reorders around every convolution
  and batch-norm backward buffers (:data:`CPU_WORKSPACE_RULES`, read off ``torch.profiler``);
  oneDNN's LSTM workspace, partly written (:data:`TOUCHED_FRACTION`);
* glibc's heap: PyTorch's CPU allocator is plain ``posix_memalign``; freed activations leave
  holes that gradients and the next step's tensors do not fit (:class:`GlibcHeap`);
* the optimizer's lazily created state, resident from the second step on (the replay);
* code and buffers of the libraries first used by the step (:func:`framework_overhead`).

Training memory, term by term (bytes; P = number of parameters, s = bytes per element)::

    weights      P s  (+ buffers)            gradients   P s
    optimizer    adam/adamw 2 P s, sgd with momentum P s, sgd 0  (+ Adam's step counters)
    activations  what the forward (and the loss) leaves alive for backward, traced
    transient    the traced peak above weights + optimizer state + activations
    allocator    glibc's heap beyond the live tensors at its peak (CPU)
    framework    libraries' code, JIT kernels and workspaces (per device and kernel kind)

``total = traced_peak + allocator + framework``. It is *not* the sum of the parts: activations are
freed during backward while gradients appear, so the two never peak together.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import zoo

GiB = 1024 ** 3
MiB = 1024 ** 2

# name -> (torch.optim class, constructor kwargs, state tensors kept per parameter)
OPTIMIZERS: dict[str, tuple[str, dict, int]] = {
    "adam": ("Adam", {"lr": 1e-3}, 2),            # exp_avg, exp_avg_sq
    "adamw": ("AdamW", {"lr": 1e-3}, 2),
    "sgd": ("SGD", {"lr": 1e-2}, 0),              # plain SGD keeps nothing
    "sgd-momentum": ("SGD", {"lr": 1e-2, "momentum": 0.9}, 1),  # momentum_buffer
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
LOSSES = ("cross_entropy", "mse")


def check_choice(name: str, value: Any, accepted) -> None:
    """Raise ``ValueError`` naming ``name``, the bad ``value`` and the ``accepted`` values."""
    if value not in accepted:
        raise ValueError(f"{name}={value!r} is not accepted: expected one of {sorted(accepted)}")


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    check_choice("dtype", dtype, DTYPES)
    return DTYPES[dtype]


def make_optimizer(name: str, params) -> torch.optim.Optimizer:
    """The optimizer ``name`` (one of :data:`OPTIMIZERS`) over ``params``."""
    check_choice("optimizer", name, OPTIMIZERS)
    cls, kwargs, _ = OPTIMIZERS[name]
    return getattr(torch.optim, cls)(params, **kwargs)


def make_loss(out: torch.Tensor, loss: str) -> torch.Tensor:
    """A real training loss on random targets: cross-entropy over classes or MSE regression.

    ``out`` is (B, C) (or (N, C) node logits); the targets are drawn beside it.
    """
    if loss == "cross_entropy":
        target = torch.randint(0, out.shape[-1], out.shape[:-1], device=out.device)
        return F.cross_entropy(out.float(), target)
    target = torch.randn(out.shape, device=out.device, dtype=out.dtype)
    return F.mse_loss(out, target)


def make_inputs(model: nn.Module, batch_size: int, input_kwargs: dict | None) -> tuple:
    """``model.example_inputs(batch_size, **input_kwargs)`` (graphs take num_nodes/num_edges)."""
    return tuple(model.example_inputs(batch_size, **(input_kwargs or {})))


# --------------------------------------------------------------------------------------------------
# Parameters and FLOPs
# --------------------------------------------------------------------------------------------------

def count_params(config_or_model: dict | nn.Module) -> int:
    """Exact number of parameters (built on the ``meta`` device when given a config)."""
    model = _meta_model(config_or_model)
    return sum(p.numel() for p in model.parameters())


def weight_bytes(config_or_model: dict | nn.Module, dtype: str | torch.dtype = "float32") -> int:
    """Bytes of parameters and buffers at ``dtype`` (integer buffers keep their own size)."""
    model = _meta_model(config_or_model)
    dt = torch_dtype(dtype)
    size = torch.tensor([], dtype=dt).element_size()
    total = sum(p.numel() * size for p in model.parameters())
    for b in model.buffers():
        total += b.numel() * (size if b.is_floating_point() else b.element_size())
    return total


def _meta_model(config_or_model: dict | nn.Module) -> nn.Module:
    if isinstance(config_or_model, nn.Module):
        return config_or_model
    return zoo.from_config(config_or_model, device="meta")


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    # oneDNN's LSTM layer (what nn.LSTM runs on CPU): every step multiplies the input by W_ih
    # (4H x I) and the state by W_hh (4H x H): 2 FLOPs per weight per step and sample.
    steps_times_batch = math.prod(input_shape) // input_shape[-1]
    return 2 * steps_times_batch * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


_EXTRA_FLOP_FORMULAS = {torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops}
"""FLOP formulas PyTorch's counter lacks (it counts ops it knows, and silently skips the rest)."""


def count_flops(config: dict, *, batch_size: int = 1, input_kwargs: dict | None = None) -> int:
    """Forward FLOPs of one inference at ``batch_size`` (PyTorch's ``FlopCounterMode``, 2 per MAC).

    Runs on fake tensors: nothing is allocated and no arithmetic is done.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = _materialise(zoo.from_config(config, device="meta")).eval()
        inputs = make_inputs(model, batch_size, input_kwargs)
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
        with torch.no_grad(), counter:
            model(*inputs)
    return int(counter.get_total_flops())


# --------------------------------------------------------------------------------------------------
# Training memory: a traced step
# --------------------------------------------------------------------------------------------------

def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def _conv_forward_ws(args, outputs):
    # oneDNN on NCHW tensors: input and output are reordered to blocked layouts around the kernel
    # (measured with torch.profiler(profile_memory=True): +in +w +out_blocked -w -in +OUT -out_blocked).
    x, w, out = args[0], args[1], outputs[0]
    if x.dim() != 4:
        return []
    return [("a", "in", _nbytes(x)), ("a", "w", _nbytes(w)), ("a", "out", _nbytes(out)),
            ("f", "w", 0), ("f", "in", 0), ("out", 0, 0), ("f", "out", 0)]


def _conv_backward_ws(args, outputs):
    # grad_input: +gO +w +gI_blocked -w -gO +GI -gI_blocked; grad_weight: +gO +in -in -gO +GW.
    g, x, w = args[0], args[1], args[2]
    mask = args[10] if len(args) > 10 else (True, True, True)
    if x.dim() != 4:
        return []
    steps, i = [], 0
    if mask[0]:
        steps += [("a", "g", _nbytes(g)), ("a", "w", _nbytes(w)), ("a", "gi", _nbytes(x)),
                  ("f", "w", 0), ("f", "g", 0), ("out", i, 0), ("f", "gi", 0)]
        i += 1
    if mask[1]:
        steps += [("a", "g2", _nbytes(g)), ("a", "x", _nbytes(x)), ("f", "x", 0), ("f", "g2", 0),
                  ("out", i, 0)]
    return steps


def _batch_norm_backward_ws(args, outputs):
    # native_batch_norm_backward keeps an input-sized buffer beside grad_input: +GI +tmp -tmp.
    return [("out", 0, 0), ("a", "t", _nbytes(args[1])), ("f", "t", 0)]


CPU_WORKSPACE_RULES = {
    torch.ops.aten.convolution.default: _conv_forward_ws,
    torch.ops.aten.convolution_backward.default: _conv_backward_ws,
    torch.ops.aten.native_batch_norm_backward.default: _batch_norm_backward_ws,
}
"""Kernel-internal buffers PyTorch's CPU kernels allocate beside their outputs, per aten op.

A rule maps ``(args, outputs)`` to steps: ``("a", tag, nbytes)`` allocates a buffer, ``("f", tag,
_)`` frees it, ``("out", i, _)`` places output ``i``. Fake tensors run no kernel, so these buffers
are invisible to the trace; they were read off ``torch.profiler`` memory events of the real
kernels (oneDNN convolution on NCHW float32, batch norm) and matter twice: they add to the peak,
and they cut glibc's heap into holes (see :class:`GlibcHeap`).
"""


class StorageTracker(TorchDispatchMode):
    """Follows every tensor storage an op creates until Python frees it, as a list of events.

    Storages are deduplicated (views share one), counted once at their full ``nbytes`` and
    forgotten by a ``weakref.finalize`` on the storage object, which PyTorch keeps alive exactly as
    long as the storage is (PyObject preservation). ``events`` is the allocation trace
    ``("a", key, nbytes)`` / ``("f", key, nbytes)`` in program order; ``live`` and ``peak`` are
    running totals. Works on fake, meta and real tensors.
    """

    def __init__(self, workspaces: bool = False) -> None:
        super().__init__()
        self.workspaces = workspaces
        self.live = 0
        self.peak = 0
        self.events: list[tuple[str, int, int]] = []
        self.ops: set[str] = set()
        self._sizes: dict[int, int] = {}
        self._next = 0

    def track(self, t: torch.Tensor) -> None:
        if t.layout != torch.strided:  # sparse tensors: their component tensors
            parts = (t.crow_indices(), t.col_indices(), t.values()) if t.layout == torch.sparse_csr \
                else (t._indices(), t._values()) if t.layout == torch.sparse_coo else ()
            for part in parts:
                self.track(part)
            return
        storage = t.untyped_storage()
        sid = id(storage)
        if sid in self._sizes:
            return
        nbytes = storage.nbytes()
        self._sizes[sid] = self._next
        key = self._next
        self._next += 1
        self.events.append(("a", key, nbytes))
        self.live += nbytes
        if self.live > self.peak:
            self.peak = self.live
        weakref.finalize(storage, self._free, sid, key, nbytes)

    def _free(self, sid: int, key: int, nbytes: int) -> None:
        if self._sizes.get(sid) == key:
            del self._sizes[sid]
            self.live -= nbytes
            self.events.append(("f", key, nbytes))

    def mark(self) -> int:
        """Index of the next event (to cut the trace into phases)."""
        return len(self.events)

    def workspace(self, nbytes: int) -> int:
        """Record a kernel-internal buffer of ``nbytes`` (no tensor); returns its key for :meth:`release`."""
        key = self._next
        self._next += 1
        self.events.append(("a", key, int(nbytes)))
        self.live += int(nbytes)
        self.peak = max(self.peak, self.live)
        return key

    def release(self, key: int, nbytes: int) -> None:
        self.live -= int(nbytes)
        self.events.append(("f", key, int(nbytes)))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.add(func._overloadpacket.__name__)
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        rule = CPU_WORKSPACE_RULES.get(func) if self.workspaces else None
        if rule is None:
            for t in outputs:
                self.track(t)
            return out
        pending: dict[str, tuple[int, int]] = {}
        for action, tag, size_of in rule(args, outputs):
            if action == "a":
                pending[tag] = (self.workspace(size_of), size_of)
            elif action == "f":
                self.release(*pending.pop(tag))
            else:  # "out": the op's own output number `tag` appears now
                self.track(outputs[tag])
        for t in outputs:  # outputs the rule did not place
            self.track(t)
        return out


class GlibcHeap:
    """A model of glibc ``malloc``'s resident memory under PyTorch's CPU allocations.

    PyTorch's CPU allocator is ``posix_memalign(64, n)`` with no cache of its own, so the resident
    memory of a training step is glibc's (malloc/malloc.c; this follows glibc 2.26-2.37):

    * a request of at least ``mmap_threshold`` bytes gets its own ``mmap``: resident while alive,
      returned to the kernel on ``free``;
    * the threshold is *dynamic*: freeing an mmapped chunk larger than it (up to
      ``DEFAULT_MMAP_THRESHOLD_MAX`` = 32 MiB) raises it to that chunk's size, and the trim
      threshold to twice that. After the first backward frees its activations, every tensor under
      32 MiB comes from the heap;
    * ``_int_memalign`` asks ``_int_malloc`` for ``nb + alignment + MINSIZE`` bytes and gives back
      what it does not use: a freed tensor leaves a hole 96 bytes too small for the same tensor
      again. Holes are reused best-fit and coalesced, but the heap's pages go back to the kernel
      only when free space at its top exceeds the trim threshold: activations freed mid-heap stay
      resident while the gradients that do not fit their holes grow the heap.

    Resident = heap pages below the break + live mmapped chunks. Thread arenas, bins below 64 KiB
    and fastbins are not modelled (tensors are large).
    """

    MMAP_THRESHOLD_MAX = 32 * MiB
    PAGE = 4096
    ALIGN = 64       # c10's CPU allocator alignment
    MINSIZE = 32
    SIZE_SZ = 8
    SLIVER = 1024    # free fragments smaller than this are taken by small allocations

    def __init__(self, mmap_threshold: int = 128 * 1024, trim_threshold: int = 128 * 1024,
                 top_pad: int = 128 * 1024, sliver_taken: float = 0.25, seed: int = 0) -> None:
        self.sliver_taken = sliver_taken
        self._rng = seed
        self.mmap_threshold = mmap_threshold
        self.trim_threshold = trim_threshold
        self.top_pad = top_pad
        self.top = 16         # start of the top (wilderness) chunk
        self.brk = 0          # end of the heap: pages below it are resident
        self.free_blocks: dict[int, int] = {}   # start -> size
        self.free_ends: dict[int, int] = {}     # end -> start
        self.chunks: dict[int, tuple[str, int, int]] = {}  # key -> (kind, start, size)
        self.mmapped = 0
        self.peak = 0

    @property
    def resident(self) -> int:
        return self.brk + self.mmapped

    def _page(self, n: int) -> int:
        return -(-n // self.PAGE) * self.PAGE

    def malloc(self, key: int, nbytes: int) -> None:
        nb = max(self.MINSIZE, (nbytes + self.SIZE_SZ + 15) & ~15)      # request2size
        need = nb + self.ALIGN + self.MINSIZE
        if need >= self.mmap_threshold:
            size = self._page(need + self.SIZE_SZ)
            self.mmapped += size
            self.chunks[key] = ("m", 0, size)
            self.peak = max(self.peak, self.resident)
            return
        best = None
        for start, bsize in self.free_blocks.items():  # best fit among the holes
            if bsize >= need and (best is None or bsize < best[1]):
                best = (start, bsize)
        if best is not None:
            start, size = best
            self._remove_free(start)
        else:
            start, size = self.top, need
            self.top += need
            if self.top > self.brk:
                self.brk = self._page(self.top)
        # _int_memalign: align the user pointer (chunk + 16) to 64, give back lead and tail.
        mem = start + 2 * self.SIZE_SZ
        lead = (-mem) % self.ALIGN
        if lead and lead < self.MINSIZE:
            lead += self.ALIGN
        # The lead and tail slivers go to glibc's small bins, where the interpreter's small
        # objects take them: they do not coalesce back when the tensor is freed.
        if lead and not self._taken(lead):
            self._release(start, lead)
        tail = size - lead - nb
        if tail < self.MINSIZE:
            nb += tail
        elif not self._taken(tail):
            self._release(start + lead + nb, tail)
        self.chunks[key] = ("h", start + lead, nb)
        self.peak = max(self.peak, self.resident)

    def free(self, key: int) -> None:
        kind, start, size = self.chunks.pop(key)
        if kind == "m":
            self.mmapped -= size
            if self.mmap_threshold < size <= self.MMAP_THRESHOLD_MAX:
                self.mmap_threshold = size
                self.trim_threshold = 2 * size
            return
        self._release(start, size, trim=True)

    def _release(self, start: int, size: int, trim: bool = False) -> None:
        end = start + size
        if end in self.free_blocks:                # coalesce with the next hole
            size += self._remove_free(end)
            end = start + size
        if start in self.free_ends:                # ... and the previous one
            prev = self.free_ends[start]
            size += self._remove_free(prev)
            start = prev
        if end == self.top:                        # merged into the top chunk
            self.top = start
            if trim and self.brk - self.top >= self.trim_threshold:   # systrim
                self.brk = self._page(self.top + self.top_pad)
        else:
            self._add_free(start, size)

    def _taken(self, size: int) -> bool:
        if size >= self.SLIVER:
            return False
        self._rng = (self._rng * 6364136223846793005 + 1442695040888963407) % 2 ** 64
        return (self._rng >> 11) / 2 ** 53 < self.sliver_taken

    def _add_free(self, start: int, size: int) -> None:
        self.free_blocks[start] = size
        self.free_ends[start + size] = start

    def _remove_free(self, start: int) -> int:
        size = self.free_blocks.pop(start)
        del self.free_ends[start + size]
        return size


@dataclass
class MemoryEstimate:
    """Training memory of a steady-state step, in bytes, with its parts (see the module doc).

    ``total = traced_peak + allocator + framework``. ``phase_peaks`` are the live bytes' peaks in
    the forward, backward and optimizer step of the steady-state step; ``trace`` says how the
    allocations were obtained (``"fake"`` or ``"profiled-extrapolated"``).
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

    @property
    def total_gb(self) -> float:
        return self.total / 1e9

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_gb"] = self.total_gb
        return d


@dataclass
class Trace:
    """The allocations of one training step (the first: it creates the optimizer state).

    ``static``: bytes held before the step (weights, buffers). ``events``: ``("a", key, nbytes)`` /
    ``("f", key, nbytes)`` in program order; ``marks``: event indices where the forward (with the
    loss) and the backward end.
    """
    static: int
    events: list
    marks: dict
    ops: frozenset = frozenset()   # aten op names the step ran (they decide the framework constant)


def _fake_trace(config: dict, *, batch_size: int, optimizer: str, dtype: torch.dtype, loss: str,
                input_kwargs: dict | None, workspaces: bool) -> Trace:
    """One training step on fake tensors under :class:`StorageTracker` (nothing is allocated)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        # No initialisation kernels on fake tensors: build on meta, then give it empty storages.
        model = _materialise(zoo.from_config(config, device="meta", dtype=dtype)).train()
        opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
        static = StorageTracker()
        for t in list(model.parameters()) + list(model.buffers()):
            static.track(t)
        tracker = StorageTracker(workspaces=workspaces)
        for t in list(model.parameters()) + list(model.buffers()):
            tracker._sizes[id(t.untyped_storage())] = -1  # held already: not an event
        marks = {}
        with tracker:
            inputs = make_inputs(model, batch_size, input_kwargs)
            value = make_loss(model(*inputs), loss)
            del inputs
            marks["forward"] = tracker.mark()
            value.backward()
            del value
            marks["backward"] = tracker.mark()
            opt.step()
            opt.zero_grad(set_to_none=True)
        events = tracker.events[:]
        return Trace(static=static.live, events=events, marks=marks, ops=frozenset(tracker.ops))


def _materialise(model: nn.Module) -> nn.Module:
    """Give a meta-device model empty CPU tensors (fake ones under ``FakeTensorMode``), in place.

    (``Module.to_empty`` cannot swap a meta parameter for a fake one.)
    """
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(torch.empty_like(p, device="cpu"),
                                                        requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = torch.zeros_like(b, device="cpu")
    return model


TOUCHED_FRACTION = {
    # oneDNN's LSTM training workspace holds the gates and states of every step (written in the
    # forward) and room for their gradients (only partly written before it is freed): a forward
    # at batch 256, 30 steps, 512 units allocates 234 MiB per layer and the process's resident
    # set grows by ~100 MiB; over a whole step ~60 % of it is ever resident.
    "aten::mkldnn_rnn_layer": 0.6,
}
"""Fraction of an allocation's pages a kernel ever writes (untouched pages are never resident)."""


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (libkineto logs 'profiler_start/stop' lines from C++)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled_trace(config: dict, *, batch_size: int, optimizer: str, dtype: torch.dtype,
                    loss: str, input_kwargs: dict | None) -> Trace:
    """One *real* training step, its allocations read from ``torch.profiler(profile_memory=True)``.

    Every allocation of PyTorch's CPU allocator is an event there, kernel-internal buffers
    included, with its address (to pair frees with allocations). Used on small instances only,
    for the families whose CPU kernels the fake-tensor trace cannot see (:data:`PROFILED_FAMILIES`).
    """
    from torch._C._profiler import _ExtraFields_Allocation
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    model = zoo.from_config(config, device="cpu", dtype=dtype).train()
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    static = weight_bytes(model, dtype)
    inputs = make_inputs(model, batch_size, input_kwargs)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function("zoo.forward"):
            value = make_loss(model(*inputs), loss)
            del inputs
        with record_function("zoo.backward"):
            value.backward()
            del value
        with record_function("zoo.step"):
            opt.step()
            opt.zero_grad(set_to_none=True)
    allocations, phases, ops = [], {}, set()

    def walk(node, phase, op):
        phase = node.name[4:] if node.name in ("zoo.forward", "zoo.backward", "zoo.step") else phase
        if isinstance(node.extra_fields, _ExtraFields_Allocation):
            size = node.extra_fields.alloc_size
            touched = TOUCHED_FRACTION.get(op, 1.0) if size > 0 else 1.0
            allocations.append((node.start_time_ns, node.extra_fields.ptr, size, phase, touched))
        elif node.name in TOUCHED_FRACTION:
            op = node.name
        if node.name.startswith("aten::"):
            ops.add(node.name[6:])
        for child in node.children:
            walk(child, phase, op)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root, None, None)
    allocations.sort(key=lambda a: a[0])
    events, live, next_key, marks = [], {}, 0, {}
    for _, ptr, size, phase, touched in allocations:
        if phase is None:
            continue
        for name, before in (("forward", "backward"), ("backward", "step")):
            if phase == before and name not in marks:
                marks[name] = len(events)
        if size > 0:
            size = int(size * touched)
            live[ptr] = (next_key, size)
            events.append(("a", next_key, size))
            next_key += 1
        elif ptr in live:  # frees of tensors from before the step are not events
            key, size = live.pop(ptr)
            events.append(("f", key, size))
    marks.setdefault("forward", len(events))
    marks.setdefault("backward", len(events))
    return Trace(static=static, events=events, marks=marks, ops=frozenset(ops))


def _extrapolated_trace(config: dict, *, batch_size: int, input_kwargs: dict | None,
                        **kw) -> Trace:
    """A profiled trace at two small scales, extrapolated linearly to the requested one.

    A step allocates the same buffers in the same order at every batch size (or graph size), each
    growing linearly with it, so two small real steps give every event's size at any scale:
    ``n(s) = n(s1) + (n(s2) - n(s1)) (s - s1) / (s2 - s1)``. Batched models scale the batch
    (s1, s2 = 2, 4); graphs (whole-graph steps) scale nodes and edges together (1/8 and 1/4).
    """
    graph = input_kwargs is not None and "num_nodes" in input_kwargs
    if graph:
        full = {k: int(v) for k, v in input_kwargs.items()}
        if full["num_nodes"] < 512:
            return _profiled_trace(config, batch_size=batch_size, input_kwargs=input_kwargs, **kw)
        scales, target = (1, 2), 8.0
        kwargs_at = [{k: max(1, v * s // 8) for k, v in full.items()} for s in scales]
        traces = [_profiled_trace(config, batch_size=batch_size, input_kwargs=kws, **kw)
                  for kws in kwargs_at]
    else:
        if batch_size <= 4:
            return _profiled_trace(config, batch_size=batch_size, input_kwargs=input_kwargs, **kw)
        scales, target = (2, 4), float(batch_size)
        traces = [_profiled_trace(config, batch_size=s, input_kwargs=input_kwargs, **kw)
                  for s in scales]
    a, b = traces
    aligned = len(a.events) == len(b.events) and all(
        x[0] == y[0] and x[1] == y[1] for x, y in zip(a.events, b.events))
    if not aligned:  # the step changed shape between the two scales: use the larger, scaled
        ratio = target / scales[1]
        return Trace(static=b.static, marks=b.marks, ops=b.ops,
                     events=[(k, key, int(n * ratio)) for k, key, n in b.events])
    slope = (target - scales[0]) / (scales[1] - scales[0])
    events = [(k, key, max(0, int(round(n1 + (n2 - n1) * slope))))
              for (k, key, n1), (_, _, n2) in zip(a.events, b.events)]
    return Trace(static=b.static, events=events, marks=b.marks, ops=b.ops)


def _replay(trace: Trace, *, heap: bool, seeds: int = 5) -> dict:
    """Replay step 1, then the steady-state step 2; live-byte peaks and glibc's resident peak.

    Step 2 is step 1 without the allocations that outlived it (the optimizer state): the same
    ops in the same order, with the state already resident. The resident peak is the mean of
    ``seeds`` :class:`GlibcHeap` runs (it is chaotic in which small objects take which slivers).
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
            h = GlibcHeap(seed=seed)
            for kind, k, n in step1 + step2:
                if kind == "a":
                    h.malloc(k, n)
                else:
                    h.free(k)
            runs.append(h.peak)
        resident = trace.static + sum(runs) // len(runs)
    return {"weights": trace.static, "optimizer_state": state, "activations": activations,
            "traced_peak": max(phase_peaks.values(), default=trace.static),
            "resident_peak": resident, "phase_peaks": phase_peaks}


# Families whose CPU kernels allocate what a fake-tensor trace cannot see, with the reason.
PROFILED_FAMILIES = {
    "lstm": "PyTorch trains nn.LSTM on CPU through oneDNN's RNN primitive, whose workspace (every "
            "gate of every step, ~4x the hidden states) is invisible to a fake-tensor trace, which "
            "sees the cell-by-cell decomposition instead",
    "gcn": "the GCN multiplies by a cached CSR adjacency in eager mode but takes a gather/scatter "
           "path under tracing, which materialises one message per edge",
}

_MEMORY_CACHE: dict[str, MemoryEstimate] = {}


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
                             input_kwargs: dict | None = None) -> MemoryEstimate:
    """Bytes needed to train ``config`` at ``batch_size`` with ``optimizer`` (see module doc).

    The step is traced on fake tensors (nothing allocated), except for the families in
    :data:`PROFILED_FAMILIES`, whose real CPU steps are profiled at two small scales and
    extrapolated. ``device="cpu"`` adds what glibc holds beyond the live tensors
    (:class:`GlibcHeap`) and the framework constants; ``"cuda"`` estimates what
    ``torch.cuda.max_memory_allocated`` reports: the traced tensors plus cuBLAS's and cuDNN's
    workspaces (constants fitted to one H200 run, where all 24 ``zoo-bench memory --large`` cases
    came within 15 %).
    Cached per argument set within the process.
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("loss", loss, LOSSES)
    check_choice("device", device, ("cpu", "cuda"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not accepted: expected an integer >= 1")
    dt = torch_dtype(dtype)
    key = _memory_key(config, batch_size, optimizer, dt, device, loss, input_kwargs)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    family = zoo.get_entry(config["name"]).family
    kw = dict(batch_size=batch_size, optimizer=optimizer, dtype=dt, loss=loss,
              input_kwargs=input_kwargs)
    if family in PROFILED_FAMILIES:
        # On CUDA too, as a proxy: cuDNN's LSTM reserve space is about oneDNN's workspace as
        # written, and the GCN takes its CSR path there as well (one H200 run: LSTM +11..+14 %,
        # GCN -13 %; the fake trace was -60..-85 % and +49..+136 %).
        trace, how = _extrapolated_trace(config, **kw), "profiled-extrapolated"
    else:
        trace, how = _fake_trace(config, workspaces=(device == "cpu"), **kw), "fake"
    r = _replay(trace, heap=(device == "cpu"))
    grads = weight_bytes(config, dt) - _buffer_bytes(config, dt)
    allocator = max(0, r["resident_peak"] - r["traced_peak"]) if device == "cpu" else 0
    framework = framework_overhead(device, family, trace.ops)
    transient = max(0, r["traced_peak"] - r["weights"] - r["optimizer_state"] - r["activations"])
    est = MemoryEstimate(
        weights=r["weights"], gradients=grads, optimizer_state=r["optimizer_state"],
        activations=r["activations"], transient=transient, allocator=allocator,
        framework=framework, total=r["traced_peak"] + allocator + framework,
        traced_peak=r["traced_peak"], batch_size=batch_size, optimizer=optimizer,
        dtype=str(dt).replace("torch.", ""), device=device, trace=how,
        phase_peaks=r["phase_peaks"])
    _MEMORY_CACHE[key] = est
    return est


def _buffer_bytes(config: dict, dt: torch.dtype) -> int:
    model = _meta_model(config)
    size = torch.tensor([], dtype=dt).element_size()
    return sum(b.numel() * (size if b.is_floating_point() else b.element_size())
               for b in model.buffers())


FRAMEWORK_OVERHEAD = {"cpu": 20 * MiB, "cuda": 60 * MiB}
"""Bytes a training process holds beyond its tensors and glibc's slack, per device.

CPU: what the first steps page in and keep -- the code of the kernels used (libtorch, oneDNN's
JIT-compiled convolutions, MKL's GEMMs) and MKL's internal buffers. Measured as the resident
growth of a training step whose tensors are negligible (a 650-parameter linear model at batch 8:
20 MiB; small MLPs 22 MiB, small CNNs 55 MiB, of which the GlibcHeap model accounts for the rest).
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
    # reorder buffers: small CNNs grow ~55 MiB at batch 2 against ~20 MiB for an MLP; 20 MiB
    # more than the base constant is within 10 % from ~150 MiB to ~2 GiB steps.
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
    """Bytes the framework holds beyond the tensors: :data:`FRAMEWORK_OVERHEAD` for the device,
    :data:`OP_OVERHEAD` for the kinds of kernels the step ran, :data:`FAMILY_OVERHEAD`."""
    return (FRAMEWORK_OVERHEAD[device] + FAMILY_OVERHEAD.get((device, family), 0)
            + sum(v for (dev, op), v in OP_OVERHEAD.items() if dev == device and op in ops))


# --------------------------------------------------------------------------------------------------
# The independent measurement: real steps in a fresh process
# --------------------------------------------------------------------------------------------------

@dataclass
class MeasuredMemory:
    """Peak training memory measured in a fresh process (bytes); see :func:`measure_training_memory`."""
    peak: int
    weights: int
    rss_before: int
    hwm_after: int
    steps: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure_training_memory(config: dict, *, batch_size: int, optimizer: str = "adam",
                            dtype: str = "float32", device: str = "cpu",
                            loss: str = "cross_entropy", input_kwargs: dict | None = None,
                            steps: int = 2, timeout: float = 300.0) -> MeasuredMemory:
    """Train ``config`` for ``steps`` real steps in a fresh Python process and measure its peak.

    CPU: the growth of the process's peak resident set (``VmHWM``, reset through
    ``/proc/self/clear_refs`` after the model is built) over the resident set before the first
    step, plus the weights it held before -- independent of the estimator's tracing. Two steps by
    default, because from the second step on the optimizer's state is resident during the forward.
    CUDA: ``torch.cuda.max_memory_allocated`` over the steps.
    """
    request = dict(config=config, batch_size=batch_size, optimizer=optimizer, dtype=dtype,
                   device=device, loss=loss, input_kwargs=input_kwargs, steps=steps)
    proc = subprocess.run([sys.executable, "-m", "zoo.factory.memprobe", json.dumps(request)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return MeasuredMemory(**json.loads(proc.stdout.strip().splitlines()[-1]))
