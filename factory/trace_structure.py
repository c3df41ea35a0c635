"""The structure of any ``nn.Module``, read off one traced forward pass.

:func:`trace_structure` runs ``model(*inputs)`` under :class:`StructureTracer`, a
``TorchDispatchMode`` that follows the data flow op by op, and returns a :class:`Structure`: the
weight layers on the longest and the shortest input-to-output path, residual adds, layer widths,
recurrent layers (and the steps they run), attention and message passing. Nothing here judges;
:mod:`zoo.factory.check_rules` does.

How it counts. Every floating tensor derived from the inputs (an *activation*) carries three
numbers: ``longest`` and ``shortest``, the most and fewest weight layers on any path from an input
to it, and ``hops``, the most message-passing aggregations on a path. An op's output takes the
largest ``longest``/``hops`` and the smallest ``shortest`` of its activation operands, plus one
where the op is a layer:

* a *weight layer* applies a parameter to an activation: ``aten.convolution`` (convs of every
  kind; kind ``conv1d``/``conv2d``/``conv3d`` from the kernel's rank) or a matrix product
  (``mm``/``addmm``/``bmm``/``matmul``/``linear``: Linear layers, a GCN's ``X W``), kind
  ``linear``; or a whole recurrent module (``nn.LSTM``/``GRU``/``RNN``: ``num_layers`` layers;
  an ``nn.*Cell`` called once per step: one layer), kind ``recurrent``. Recurrence through time
  is not depth (an LSTM of 2 layers is 2 deep at any length); the steps are recorded apart.
* a *message-passing* aggregation sums activations over an index: ``scatter_add``,
  ``scatter_reduce``, ``index_add``, ``index_reduce``, ``index_put`` with ``accumulate`` and
  ``segment_reduce`` (PyG's and the zoo's GCN propagation), and a sparse-dense product.
* *attention*: a fused ``scaled_dot_product_*`` op, or a softmax over the product of two
  activations (``q k^T``) written out by hand.

An ``add`` of two same-shaped activations of different ``longest`` is a *residual connection*
``x + F(x)``; through it the gradient reaches the first layer across ``shortest`` layers however
deep the net is (ResNet-18: 18 on the longest path, 5 on the shortest). A ``cat`` of activations
of different depth is recorded as a concatenation skip (DenseNet; Inception's branches).

Deviations, documented: weight layers inside a gate module (the zoo's squeeze-and-excitation,
:class:`zoo.models.se.SEModule`) rescale channels and are not counted as layers or widths;
embedding look-ups are where the network's input starts, not layers; a recurrence written as a
Python loop over ``nn.Linear`` is unrolled by the trace, so its steps count as depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten
_CONV_OPS = {aten.convolution, aten._convolution}
_MATMUL_OPS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.matmul, aten.linear}
_ADD_OPS = {aten.add, aten.add_}
_AGGREGATE_OPS = {aten.scatter_add, aten.scatter_add_, aten.scatter_reduce, aten.scatter_reduce_,
                  aten.index_add, aten.index_add_, aten.index_reduce, aten.index_reduce_,
                  aten.segment_reduce, aten._segment_reduce_backward}
_INDEX_PUT_OPS = {aten.index_put, aten.index_put_, aten._index_put_impl_}
_SOFTMAX_OPS = {aten._softmax, aten.softmax, aten._safe_softmax}


@dataclass
class _Act:
    longest: int
    shortest: int
    hops: int
    scores: bool = False  # a product of two activations (attention scores before the softmax)


@dataclass
class LayerEvent:
    """One weight layer as the forward ran it: its parameter, kind, output width and the depth
    (weight layers on the longest path) its output reached."""
    param: str
    kind: str   # conv1d | conv2d | conv3d | linear | recurrent
    width: int
    depth: int


@dataclass
class RecurrentEvent:
    """One recurrent module: its name, type, stacked layers and the time steps one forward ran."""
    module: str
    type: str
    layers: int
    steps: int


@dataclass
class Structure:
    """What one traced forward pass showed (see the module docstring for how it is counted).

    ``input_kinds``: what the inputs look like (:func:`input_kind_of`), e.g. ``["image"]``.
    ``graph_edges``: edges of an ``edge_index``-shaped input (None: no such input).
    """
    longest: int = 0
    shortest: int = 0
    residual_adds: int = 0
    concat_skips: int = 0
    layers: list[LayerEvent] = field(default_factory=list)
    recurrent: list[RecurrentEvent] = field(default_factory=list)
    attention: int = 0
    message_passing: int = 0          # aggregations on the path with the most
    aggregations: int = 0             # aggregation ops seen in all
    input_kinds: list[str] = field(default_factory=list)
    graph_edges: int | None = None

    def count(self, kind: str) -> int:
        """Weight layers of ``kind`` run in the forward (``conv`` matches every conv rank)."""
        return sum(e.kind.startswith(kind) for e in self.layers)

    @property
    def architecture(self) -> str:
        """The family the trace looks like: ``gnn``, ``rnn``, ``transformer``, ``cnn``,
        ``temporal-cnn`` (1-D convs only), ``mlp`` or ``linear`` (one weight layer)."""
        if self.message_passing:
            return "gnn"
        if self.recurrent:
            return "rnn"
        if self.attention:
            return "transformer"
        if self.count("conv2d") or self.count("conv3d"):
            return "cnn"
        if self.count("conv1d"):
            return "temporal-cnn"
        return "linear" if self.longest <= 1 else "mlp"

    def hidden_widths(self) -> list[LayerEvent]:
        """Every weight layer but the last run (the head, whose width is the output's)."""
        return self.layers[:-1]

    def summary(self) -> str:
        """One line: depth, skips, widths and the special layers."""
        kinds = {}
        for e in self.layers:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        parts = [f"{self.architecture}: {self.longest} weight layers on the longest path, "
                 f"{self.shortest} on the shortest",
                 f"layers run: {', '.join(f'{n} {k}' for k, n in kinds.items()) or 'none'}",
                 f"{self.residual_adds} residual adds"]
        widths = [e.width for e in self.hidden_widths()]
        if widths:
            parts.append(f"hidden widths {min(widths)}-{max(widths)}")
        if self.attention:
            parts.append(f"{self.attention} attention ops")
        for r in self.recurrent:
            parts.append(f"{r.module or r.type} ({r.type}, {r.layers} layer(s)) over {r.steps} "
                         f"steps")
        if self.message_passing:
            parts.append(f"{self.message_passing} message-passing hops")
        return "; ".join(parts)


def input_kind_of(tensors: list) -> list[str]:
    """What the inputs look like, from shapes and dtypes alone (the batch comes first):
    ``graph`` (float (N, F) beside an integer (2, E)), ``image`` (float of rank 4-5),
    ``sequence`` (float (B, T, F) or integer token ids (B, T)), ``tabular`` (float (B, F))."""
    floats = [t for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point()]
    ints = [t for t in tensors if isinstance(t, torch.Tensor) and not t.is_floating_point()
            and t.dtype != torch.bool]
    if any(t.dim() == 2 and t.shape[0] == 2 for t in ints) and any(t.dim() == 2 for t in floats):
        return ["graph"]
    kinds = []
    for t in floats:
        kind = {2: "tabular", 3: "sequence", 4: "image", 5: "image"}.get(t.dim())
        if kind and kind not in kinds:
            kinds.append(kind)
    if not floats and any(t.dim() == 2 for t in ints):
        kinds.append("sequence")  # token ids
    return kinds


class StructureTracer(TorchDispatchMode):
    """Follows one forward pass op by op (module docstring). Construct with the model and its
    inputs, run the forward inside ``with tracer:``, then call :meth:`result` on the output and
    :meth:`close` to remove the module hooks."""

    def __init__(self, model: nn.Module, inputs: tuple, gate_modules: tuple[type, ...] = ()):
        super().__init__()
        self.acts = WeakTensorKeyDictionary()      # activation -> _Act
        self.derived = WeakTensorKeyDictionary()   # a view / copy of a parameter -> its name
        self.params = dict(model.named_parameters())
        self.weights = {id(p): n for n, p in self.params.items()}
        self.gates: set[str] = set()
        for mname, module in model.named_modules():
            if gate_modules and isinstance(module, gate_modules):
                self.gates.update(f"{mname}.{n}" if mname else n
                                  for n, _ in module.named_parameters())
        self.s = Structure()
        self._suspended = 0
        self._hooks = []
        self._cells: dict[str, RecurrentEvent] = {}
        for name, module in model.named_modules():
            if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
                self._hooks.append(module.register_forward_pre_hook(self._enter))
                self._hooks.append(module.register_forward_hook(self._make_exit(name)))
        flat = [t for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor)]
        for obj in inputs:  # a PyG Data / Batch: its x and edge_index
            if hasattr(obj, "x") and hasattr(obj, "edge_index"):
                flat += [t for t in (obj.x, obj.edge_index) if isinstance(t, torch.Tensor)]
        self.s.input_kinds = input_kind_of(flat)
        for t in flat:
            if t.is_floating_point():
                self.acts[t] = _Act(0, 0, 0)
            elif t.dim() == 2 and t.shape[0] == 2:
                self.s.graph_edges = int(t.shape[1])

    def close(self) -> None:
        """Remove the recurrent-module hooks from the model."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def _weight_name(self, t: torch.Tensor) -> str | None:
        name = self.weights.get(id(t))
        if name is not None and self.params[name] is t:
            return name
        return self.derived.get(t)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        operands = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        acts = [self.acts[t] for t in operands if t in self.acts]
        weights = [w for w in (self._weight_name(t) for t in operands) if w is not None]
        packet = func.overloadpacket
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if packet is aten.embedding:  # a look-up: its output is where the network's input starts
            for t in outs:
                self.acts[t] = _Act(0, 0, 0)
            return out
        if not acts:
            if weights:  # a view or copy of a parameter (weight.t(), pos[:, :t]) is that parameter
                for t in outs:
                    self.derived[t] = weights[0]
            return out
        longest = max(a.longest for a in acts)
        shortest = min(a.shortest for a in acts)
        hops = max(a.hops for a in acts)
        scores = any(a.scores for a in acts)  # scores stay scores through scaling and masking
        live = not self._suspended
        if live and weights and (packet in _CONV_OPS or packet in _MATMUL_OPS) \
                and not any(w in self.gates for w in weights):
            longest, shortest, scores = longest + 1, shortest + 1, False
            if outs:
                # The matrix / kernel names the layer (addmm's first operand is the bias).
                weight = max(weights, key=lambda w: self.params[w].dim())
                conv = packet in _CONV_OPS
                kind = f"conv{self.params[weight].dim() - 2}d" if conv else "linear"
                width = int(outs[0].shape[1 if conv else -1]) if outs[0].dim() else 1
                self.s.layers.append(LayerEvent(weight, kind, width, longest))
        elif live and self._aggregates(packet, args, kwargs, operands, acts):
            hops += 1
            self.s.aggregations += 1
        elif live and packet in _MATMUL_OPS and len(acts) >= 2 and not weights:
            scores = True
        elif live and (packet in _SOFTMAX_OPS and scores or "scaled_dot_product" in str(packet)):
            self.s.attention += 1
            scores = False
        elif live and packet in _ADD_OPS and len(acts) == 2 and acts[0].longest != acts[1].longest:
            floats = [t for t in operands if t in self.acts]
            if len(floats) == 2 and floats[0].shape == floats[1].shape:
                self.s.residual_adds += 1
        elif live and packet is aten.cat and len({a.longest for a in acts}) > 1:
            self.s.concat_skips += 1
        for t in outs:
            if t.is_floating_point():
                self.acts[t] = _Act(longest, shortest, hops, scores)
        return out

    def _aggregates(self, packet, args, kwargs, operands, acts) -> bool:
        """An op that sums activations over an index or a sparse adjacency (message passing)."""
        if packet in _AGGREGATE_OPS:
            return True
        if packet in _INDEX_PUT_OPS:
            return bool(kwargs.get("accumulate", args[3] if len(args) > 3 else False))
        if packet in _MATMUL_OPS:
            return any(t.layout != torch.strided for t in operands)
        return False

    # -- recurrent modules: num_layers weight layers, whatever kernel runs them --

    def _enter(self, module, args):
        self._suspended += 1

    def _make_exit(self, name: str):
        def hook(module, args, output):
            self._suspended -= 1
            if self._suspended:
                return
            cell = isinstance(module, nn.RNNCellBase)
            # A cell's hidden state comes back in: only its input (args[0]) sets the depth.
            sources = tree_flatten(args[:1] if cell else args)[0]
            acts = [self.acts[t] for t in sources if isinstance(t, torch.Tensor) and t in self.acts]
            base = _Act(max((a.longest for a in acts), default=0),
                        min((a.shortest for a in acts), default=0),
                        max((a.hops for a in acts), default=0))
            prefix = f"{name}." if name else ""
            n = 1 if cell else module.num_layers
            width = module.hidden_size * (2 if getattr(module, "bidirectional", False) else 1)
            if cell:
                event = self._cells.get(name)
                if event is None:
                    event = self._cells[name] = RecurrentEvent(name, type(module).__name__, 1, 0)
                    self.s.recurrent.append(event)
                    self.s.layers.append(LayerEvent(f"{prefix}weight_ih", "recurrent", width,
                                                    base.longest + 1))
                event.steps += 1
            else:
                self.s.recurrent.append(RecurrentEvent(name, type(module).__name__, n,
                                                       _steps(module, args)))
                for k in range(n):
                    self.s.layers.append(LayerEvent(f"{prefix}weight_ih_l{k}", "recurrent", width,
                                                    base.longest + k + 1))
            for t in tree_flatten(output)[0]:
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    self.acts[t] = _Act(base.longest + n, base.shortest + n, base.hops)
        return hook

    def result(self, output) -> Structure:
        acts = [self.acts[t] for t in tree_flatten(output)[0]
                if isinstance(t, torch.Tensor) and t in self.acts]
        self.s.longest = max((a.longest for a in acts), default=0)
        self.s.shortest = min((a.shortest for a in acts), default=0)
        self.s.message_passing = max((a.hops for a in acts), default=0)
        return self.s


def _steps(module: nn.RNNBase, args: tuple) -> int:
    """Time steps of an ``nn.LSTM``/``GRU``/``RNN`` call: the input's time axis."""
    x = args[0] if args else None
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.batch_sizes.numel())
    if not isinstance(x, torch.Tensor):
        return 0
    if x.dim() == 2:  # unbatched (T, F)
        return int(x.shape[0])
    return int(x.shape[1] if module.batch_first else x.shape[0])


def gate_modules() -> tuple[type, ...]:
    """Modules whose weight layers are gates, not layers (the zoo's squeeze-and-excitation)."""
    from zoo.models.se import SEModule

    return (SEModule,)


def trace_structure(model: nn.Module, inputs: tuple) -> tuple[Structure, object]:
    """Run ``model(*inputs)`` under :class:`StructureTracer`; returns the structure and the output
    (autograd still records: the caller may run a backward from it)."""
    tracer = StructureTracer(model, inputs, gate_modules())
    try:
        with tracer:
            out = model(*inputs)
    finally:
        tracer.close()
    return tracer.result(out), out
