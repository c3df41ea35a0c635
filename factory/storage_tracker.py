"""The storage tracker and the CPU workspace rules: a training step's allocations, op by op.

:class:`StorageTracker` is a ``TorchDispatchMode`` that records every tensor storage as it is
created and freed (on fake, meta or real tensors). Fake tensors run no kernel, so the buffers the
CPU kernels allocate beside their outputs are invisible to it; :data:`CPU_WORKSPACE_RULES` adds
them, op by op, as read off ``torch.profiler`` memory events of the real kernels.
"""
from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


_ONEDNN_DIMS = (3, 4)  # Conv1d (N, C, L) and Conv2d (N, C, H, W) backward: reordered by oneDNN


def _conv_forward_ws(args, outputs):
    # oneDNN on NCHW tensors: input and output are reordered to blocked layouts around the kernel
    # (measured with torch.profiler(profile_memory=True): +in +w +out_blocked -w -in +OUT -out_blocked).
    # Conv1d on NCL tensors does the same (torch 2.14, batch 128, 64 channels, 256 steps: +8 MiB
    # +48 KiB +8 MiB -48 KiB -8 MiB +OUT -8 MiB), but its forward reorders are left out: with them
    # the TCN cases of `zoo-bench memory` came out +21 % over the measured resident peak, without
    # them +4 % and -2 % (they are freed at once and glibc reuses their room, which the heap
    # model does not follow for these shapes).
    x, w, out = args[0], args[1], outputs[0]
    if x.dim() != 4:
        return []
    return [("a", "in", _nbytes(x)), ("a", "w", _nbytes(w)), ("a", "out", _nbytes(out)),
            ("f", "w", 0), ("f", "in", 0), ("out", 0, 0), ("f", "out", 0)]


def _conv_backward_ws(args, outputs):
    # grad_input: +gO +w +gI_blocked -w -gO +GI -gI_blocked; grad_weight: +gO +in -in -gO +GW.
    # Conv1d allocates the same in its backward (measured as above; its weight-gradient kernel
    # adds a scratch about the weight's size, freed at once, not modelled). Without these buffers
    # the TCN cases came out -17 % and -21 % under the measured peak.
    g, x, w = args[0], args[1], args[2]
    mask = args[10] if len(args) > 10 else (True, True, True)
    if x.dim() not in _ONEDNN_DIMS:
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
kernels (oneDNN convolution on NCL and NCHW float32, batch norm) and matter twice: they add to the peak,
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
