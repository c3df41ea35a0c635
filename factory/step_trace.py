"""One training step's allocations as a :class:`Trace`: traced on fake tensors, or profiled.

* :func:`fake_trace` runs forward, loss, backward and optimizer step on fake tensors under
  :class:`zoo.factory.storage_tracker.StorageTracker`: nothing is allocated.
* :func:`profiled_trace` runs one *real* step at small scale and reads every allocation of
  PyTorch's CPU allocator off ``torch.profiler`` (kernel-internal buffers included);
  :func:`extrapolated_trace` scales two such steps linearly to the requested batch or graph.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import torch

import zoo

from .counts import materialise, weight_bytes
from .storage_tracker import StorageTracker
from .train_step import make_inputs, make_loss, make_optimizer


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


def fake_trace(config: dict, *, batch_size: int, optimizer: str, dtype: torch.dtype, loss: str,
                input_kwargs: dict | None, workspaces: bool) -> Trace:
    """One training step on fake tensors under :class:`StorageTracker` (nothing is allocated)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        # No initialisation kernels on fake tensors: build on meta, then give it empty storages.
        model = materialise(zoo.from_config(config, device="meta", dtype=dtype)).train()
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


def profiled_trace(config: dict, *, batch_size: int, optimizer: str, dtype: torch.dtype,
                    loss: str, input_kwargs: dict | None) -> Trace:
    """One *real* training step, its allocations read from ``torch.profiler(profile_memory=True)``.

    Every allocation of PyTorch's CPU allocator is an event there, kernel-internal buffers
    included, with its address (to pair frees with allocations). Used on small instances only,
    for the families whose CPU kernels the fake-tensor trace cannot see
    (:data:`zoo.factory.training_memory.PROFILED_FAMILIES`).
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


def extrapolated_trace(config: dict, *, batch_size: int, input_kwargs: dict | None,
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
            return profiled_trace(config, batch_size=batch_size, input_kwargs=input_kwargs, **kw)
        scales, target = (1, 2), 8.0
        kwargs_at = [{k: max(1, v * s // 8) for k, v in full.items()} for s in scales]
        traces = [profiled_trace(config, batch_size=batch_size, input_kwargs=kws, **kw)
                  for kws in kwargs_at]
    else:
        if batch_size <= 4:
            return profiled_trace(config, batch_size=batch_size, input_kwargs=input_kwargs, **kw)
        scales, target = (2, 4), float(batch_size)
        traces = [profiled_trace(config, batch_size=s, input_kwargs=input_kwargs, **kw)
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
