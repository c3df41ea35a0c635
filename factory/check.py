"""``zoo check``: audit a built model against the project's design principles.

:func:`check_model` takes any zoo model (``zoo.create`` / ``zoo.load`` / ``zoo.build``) and returns
a :class:`CheckReport`: one :class:`Finding` per rule of the "Design Checklist" and "Debugging
Architectures" sections of ``shared/seed/architecture-design-principles.txt`` (the seed), each
``pass``, ``warn``, ``fail`` or ``skip`` (the rule needs an argument that was not given, or a
forward pass the model cannot run, e.g. on the meta device). The rules, in the order they run,
with the seed's words in :data:`PRINCIPLES`:

1. ``inductive-bias`` -- the model's input kind (its registry entry) is the task's
   (:data:`zoo.factory.policy.TASKS`); an MLP on images fails.
2. ``capacity`` -- parameters against :func:`zoo.factory.policy.capacity_cap` for the data size.
3. ``skip-connections`` -- weight layers on the longest input-to-output path, and whether residual
   connections exist; more than 10 layers without them warns.
4. ``depth-width`` -- the narrowest hidden layer of a deep net, the widest of a shallow one.
5. ``gradient-flow`` -- one real forward + backward (train mode, a deep copy): the gradient norm of
   the first and the last weight layer, non-finite gradients, parameters left without one.

How depth is measured (rules 3 and 4): one forward pass runs under :class:`PathTracer`, a
``TorchDispatchMode`` that follows the data flow op by op. Every floating tensor derived from the
inputs carries two numbers: ``longest`` and ``shortest``, the most and fewest weight layers on any
path from an input to it. A *weight layer* is a convolution or matrix product of an activation with
a parameter (``aten.convolution``, ``aten.mm``/``addmm``/``bmm``...: convs and linears, GCN's
``X W``) or a whole recurrent layer (``nn.LSTM``/``GRU``/``RNN``: ``num_layers`` layers, whatever
kernel runs them). Other ops pass the largest (``longest``) and the smallest (``shortest``) of their
operands' counts on. An ``add`` of two same-shaped activations of different ``longest`` is a
residual connection ``x + F(x)``; with them the gradient reaches the first layer through
``shortest`` layers however deep the net is (ResNet-18: 18 on the longest path, 5 on the shortest).
Deviations, documented: the gates of squeeze-and-excitation modules (:class:`zoo.models.se.SEModule`)
rescale channels and are not counted as layers or widths (SE-ResNet-18 is 18 layers deep, as its
name says; its 8-channel squeezes are no bottleneck); embedding look-ups are inputs, not layers;
recurrence through time is not depth here (an LSTM of 2 layers is 2 deep at any length).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

import zoo

from . import policy
from .train_step import make_loss

STATUSES = ("pass", "warn", "fail", "skip")

# Thresholds, each from the seed (quoted in PRINCIPLES).
MAX_PLAIN_DEPTH = 10          # "For networks > 10 layers, ALWAYS use skip connections."
MIN_DEEP_WIDTH = 16           # "100 layers x 8 channels bottlenecks capacity": < 16 on > 10 layers
MAX_SHALLOW_WIDTH = 4096      # "2 layers x 1024 channels" under-uses depth: > 4096 on <= 2 layers
SHALLOW_DEPTH = 2
VANISHING_RATIO = 1e-4        # first/last gradient norm below this: "vanishing"
EXPLODING_RATIO = 1e4         # above this (or any non-finite gradient): "exploding"

PRINCIPLES: dict[str, str] = {
    "inductive-bias": "Match inductive bias to problem: images -> CNN, sequences -> RNN/Transformer, "
                      "graphs -> GNN, tabular -> MLP (Design Checklist; anti-pattern: 'MLP for "
                      "images (should use CNN)')",
    "capacity": "Match capacity to data size: parameters in proportion to the dataset "
                "(Design Checklist; Debugging, Problem 2: check the parameter/data ratio); the cap is "
                "factory.policy.CAPACITY, which recalibrates the seed's 0.01-0.1x to its own examples",
    "skip-connections": "Use skip connections for deep networks (> 10 layers): 'plain networks > 10 "
                        "layers suffer from vanishing gradients and degradation' (Design Checklist)",
    "depth-width": "Balance depth and width: not too deep and narrow ('100 layers x 8 channels "
                   "bottlenecks capacity'), not too shallow and wide ('2 layers x 1024 channels' "
                   "under-utilizes depth); standard: 12-50 layers, 64-512 channels (Design Checklist)",
    "gradient-flow": "Verify gradient flow: check gradients in early layers (should be non-zero); "
                     "vanishing -> add skip connections, exploding -> gradient clipping or lower LR "
                     "(Debugging Architectures, Problem 1)",
}

# What the registry families are known to have (rule 3 prefers what the trace saw; this table is
# the fallback when no forward pass can run, and the expectation the trace is compared with).
RESIDUAL_FAMILIES: dict[str, str] = {
    "resnet": "identity / 1x1-projection shortcut around every block (He et al. 2016)",
    "seresnet": "identity / 1x1-projection shortcut around every block (He et al. 2016)",
    "mobilenetv2": "shortcut around every stride-1 block of equal width (Sandler et al. 2018)",
    "transformer": "pre-norm residual around attention and MLP (Xiong et al. 2020)",
}
PLAIN_FAMILIES: dict[str, str] = {
    "linear": "one layer",
    "mlp": "a plain stack of Linear layers",
    "lstm": "stacked LSTM layers (gated through time, not across layers)",
    "inception": "Inception blocks concatenate branches; no shortcut",
    "gcn": "stacked graph convolutions (deep GCNs over-smooth, Li et al. 2018)",
}
FAMILY_NOTES: dict[str, str] = {
    "inception": "GoogLeNet trains at 22 layers without skip connections thanks to BatchNorm after "
                 "every conv (the 2015 original needed auxiliary classifiers); deeper still wants "
                 "residuals",
}


# --------------------------------------------------------------------------------------------------
# Findings and the report
# --------------------------------------------------------------------------------------------------


@dataclass
class Finding:
    """The verdict of one rule: ``status`` in :data:`STATUSES`, a readable ``message``, the
    numbers behind it in ``data`` (JSON-serialisable) and the seed ``principle`` it encodes."""
    rule: str
    status: str
    message: str
    data: dict = field(default_factory=dict)
    principle: str = ""

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not accepted: expected one of {STATUSES}")
        if not self.principle:
            self.principle = PRINCIPLES.get(self.rule, "")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=_json_default))


@dataclass
class CheckReport:
    """What :func:`check_model` found. ``ok``: no finding failed (warnings allowed)."""
    model: str
    config: dict
    params: int
    task: str | None
    n_samples: int | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.status == s for f in self.findings) for s in STATUSES}

    def finding(self, rule: str) -> Finding:
        """The finding of ``rule`` (one of :data:`PRINCIPLES`)."""
        for f in self.findings:
            if f.rule == rule:
                return f
        raise ValueError(f"rule={rule!r} is not accepted: expected one of "
                         f"{', '.join(f.rule for f in self.findings)}")

    def to_dict(self) -> dict:
        return {"model": self.model, "config": _jsonable(self.config), "params": self.params,
                "task": self.task, "n_samples": self.n_samples, "ok": self.ok,
                "counts": self.counts(), "findings": [f.to_dict() for f in self.findings]}

    def report(self) -> str:
        """Readable text: a header, one line per rule, a verdict (principles: :meth:`to_dict`)."""
        about = [f"{self.params:,} params"]
        if self.task:
            about.append(f"task {self.task}")
        if self.n_samples is not None:
            about.append(f"{self.n_samples:,} samples")
        lines = [f"zoo check {self.model} ({'; '.join(about)})"]
        width = max(len(r) for r in PRINCIPLES)
        for f in self.findings:
            lines.append(f"  {f.status.upper():<4}  {f.rule:<{width}}  {f.message}")
        c = self.counts()
        verdict = "FAIL" if c["fail"] else "OK"
        lines.append(f"{verdict}: {c['pass']} passed, {c['warn']} warned, {c['fail']} failed, "
                     f"{c['skip']} skipped")
        return "\n".join(lines)


def _json_default(obj):
    return str(obj)  # e.g. a torch.dtype in a config


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=_json_default))


# --------------------------------------------------------------------------------------------------
# Tracing the longest / shortest weight-layer paths
# --------------------------------------------------------------------------------------------------

aten = torch.ops.aten
# Ops that apply a weight to an activation: one weight layer each (linears decompose to t + mm/addmm
# below autograd, convs of every kind reach aten.convolution).
_WEIGHT_OPS = {aten.convolution, aten._convolution, aten.mm, aten.addmm, aten.bmm, aten.baddbmm,
               aten.matmul, aten.linear}
_ADD_OPS = {aten.add, aten.add_}
_CHANNEL_FIRST_OPS = {aten.convolution, aten._convolution}


@dataclass
class _Act:
    """An activation: weight layers on the longest and the shortest path from an input."""
    longest: int
    shortest: int


@dataclass
class LayerEvent:
    """One weight layer as the forward ran it: its weight's name, output width, depth reached."""
    param: str
    width: int
    depth: int


@dataclass
class PathTrace:
    """What :class:`PathTracer` saw in one forward pass."""
    longest: int
    shortest: int
    residual_adds: int
    layers: list[LayerEvent]


class PathTracer(TorchDispatchMode):
    """Follows one forward pass op by op and counts weight layers along its paths (module
    docstring). Construct with the model, enter, run the forward, then :meth:`result`."""

    def __init__(self, model: nn.Module, inputs: tuple, gate_modules: tuple[type, ...] = ()):
        super().__init__()
        self.acts = WeakTensorKeyDictionary()      # activation -> _Act
        self.derived = WeakTensorKeyDictionary()   # view / copy of a parameter -> its name
        self.params = dict(model.named_parameters())
        self.weights = {id(p): n for n, p in self.params.items()}
        self.gates: set[str] = set()               # parameters below a gate module (SE)
        for mname, module in model.named_modules():
            if gate_modules and isinstance(module, gate_modules):
                self.gates.update(f"{mname}.{n}" if mname else n for n, _ in module.named_parameters())
        self.layers: list[LayerEvent] = []
        self.residual_adds = 0
        self._suspended = 0
        self._hooks = []
        for name, module in model.named_modules():
            if isinstance(module, nn.RNNBase):
                self._hooks.append(module.register_forward_pre_hook(self._rnn_enter))
                self._hooks.append(module.register_forward_hook(self._make_rnn_exit(name)))
        for t in tree_flatten(inputs)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.acts[t] = _Act(0, 0)

    def close(self) -> None:
        """Remove the recurrent-layer hooks from the model."""
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
                self.acts[t] = _Act(0, 0)
            return out
        if not acts:
            if weights:  # a view or copy of a parameter (weight.t(), pos[:, :t]) is that parameter
                for t in outs:
                    self.derived[t] = weights[0]
            return out
        longest = max(a.longest for a in acts)
        shortest = min(a.shortest for a in acts)
        layer = (packet in _WEIGHT_OPS and weights and not self._suspended
                 and not any(w in self.gates for w in weights))
        if layer:
            longest, shortest = longest + 1, shortest + 1
            if outs:
                dim = 1 if packet in _CHANNEL_FIRST_OPS else -1
                # The matrix / kernel names the layer (addmm's first operand is the bias).
                weight = max(weights, key=lambda w: self.params[w].dim())
                self.layers.append(LayerEvent(weight, int(outs[0].shape[dim]), longest))
        elif (packet in _ADD_OPS and not self._suspended and len(acts) == 2
              and acts[0].longest != acts[1].longest):
            floats = [t for t in operands if t in self.acts]
            if len(floats) == 2 and floats[0].shape == floats[1].shape:
                self.residual_adds += 1
        for t in outs:
            if t.is_floating_point():
                self.acts[t] = _Act(longest, shortest)
        return out

    # -- recurrent layers: num_layers weight layers, whatever kernel runs them --

    def _rnn_enter(self, module, args):
        self._suspended += 1

    def _make_rnn_exit(self, name: str):
        def hook(module, args, output):
            self._suspended -= 1
            acts = [self.acts[t] for t in tree_flatten(args)[0]
                    if isinstance(t, torch.Tensor) and t in self.acts]
            base = _Act(max((a.longest for a in acts), default=0),
                        min((a.shortest for a in acts), default=0))
            n = module.num_layers
            prefix = f"{name}." if name else ""
            width = module.hidden_size * (2 if module.bidirectional else 1)
            for k in range(n):
                self.layers.append(LayerEvent(f"{prefix}weight_ih_l{k}", width, base.longest + k + 1))
            for t in tree_flatten(output)[0]:
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    self.acts[t] = _Act(base.longest + n, base.shortest + n)
        return hook

    def result(self, output) -> PathTrace:
        acts = [self.acts[t] for t in tree_flatten(output)[0]
                if isinstance(t, torch.Tensor) and t in self.acts]
        return PathTrace(longest=max((a.longest for a in acts), default=0),
                         shortest=min((a.shortest for a in acts), default=0),
                         residual_adds=self.residual_adds, layers=list(self.layers))


def _gate_modules() -> tuple[type, ...]:
    from zoo.models.se import SEModule

    return (SEModule,)


# --------------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------------


def _fmt(n: float) -> str:
    """1234567 -> '1.23M' (parameter counts in messages)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def rule_inductive_bias(name: str, family: str, kind: str, task: str | None) -> Finding:
    rule = "inductive-bias"
    if family != name:
        name = f"{name} ({family})"
    if task is None:
        return Finding(rule, "skip", f"no task given ({name} fits {kind} inputs); pass --task",
                       {"input_kind": kind})
    want = policy.TASKS[task].input_kind
    fits = sorted({f for r in policy.RULES if r.input_kind == want for f in r.candidates})
    data = {"input_kind": kind, "task_input_kind": want, "policy_families": fits}
    if kind != want:
        return Finding(rule, "fail",
                       f"{name} is built for {kind} inputs but {task} has {want} inputs; "
                       f"the policy's {want} families: {', '.join(fits)}", data)
    return Finding(rule, "pass", f"{name} fits {task} ({want} inputs)", data)


def rule_capacity(name: str, family: str, kind: str, params: int, n_samples: int | None) -> Finding:
    rule = "capacity"
    if n_samples is None:
        return Finding(rule, "skip", f"no data size given ({_fmt(params)} params); pass "
                       f"--n-samples", {"params": params})
    cap = policy.capacity_cap(kind, n_samples)
    data = {"params": params, "n_samples": n_samples, "cap": cap,
            "params_per_sample": params / n_samples, "ratio_to_cap": params / cap,
            "cap_reason": policy.CAPACITY[kind].reason}
    ps = params / n_samples
    per = f"{ps:,.0f} params/sample" if ps >= 100 else f"{ps:.3g} params/sample"
    if family == "linear":
        return Finding(rule, "pass", f"{_fmt(params)} params for {n_samples:,} samples ({per}): the "
                       f"linear baseline is always allowed", data)
    if params > cap:
        return Finding(rule, "warn",
                       f"{_fmt(params)} params for {n_samples:,} {kind} samples ({per}) is "
                       f"{params / cap:.1f}x the cap of {_fmt(cap)}: expect overfitting; reduce "
                       f"width/depth or use more data", data)
    return Finding(rule, "pass", f"{_fmt(params)} params for {n_samples:,} {kind} samples ({per}), "
                   f"{params / cap:.2f}x the cap of {_fmt(cap)}", data)


def rule_skip_connections(family: str, trace: PathTrace | None, error: str | None) -> Finding:
    rule = "skip-connections"
    known = True if family in RESIDUAL_FAMILIES else False if family in PLAIN_FAMILIES else None
    why = RESIDUAL_FAMILIES.get(family) or PLAIN_FAMILIES.get(family) or "unknown family"
    if trace is None:
        return Finding(rule, "skip", f"could not trace a forward pass ({error}); {family}: {why}",
                       {"family_has_skips": known})
    has = trace.residual_adds > 0
    data = {"weight_layers_longest_path": trace.longest,
            "weight_layers_shortest_path": trace.shortest,
            "residual_adds": trace.residual_adds, "family_has_skips": known, "family": family}
    if known is not None and known != has:
        data["note"] = (f"the {family} family {'has' if known else 'has no'} skip connections, "
                        f"but this configuration traced {trace.residual_adds} residual add(s)")
    note = f" ({FAMILY_NOTES[family]})" if family in FAMILY_NOTES else ""
    if has:
        return Finding(rule, "pass",
                       f"{trace.longest} weight layers on the longest path, {trace.residual_adds} "
                       f"residual connections; the gradient reaches the input through "
                       f"{trace.shortest}", data)
    if trace.longest > MAX_PLAIN_DEPTH:
        return Finding(rule, "warn",
                       f"{trace.longest} weight layers in a row and no skip connections: plain "
                       f"nets deeper than {MAX_PLAIN_DEPTH} suffer vanishing gradients and "
                       f"degradation; add skip connections (a residual family) or remove "
                       f"layers{note}", data)
    return Finding(rule, "pass", f"{trace.longest} weight layer(s), no skip connections needed "
                   f"(<= {MAX_PLAIN_DEPTH})", data)


def rule_depth_width(trace: PathTrace | None, error: str | None) -> Finding:
    rule = "depth-width"
    if trace is None:
        return Finding(rule, "skip", f"could not trace a forward pass ({error})")
    hidden = trace.layers[:-1]  # the last weight layer run is the head: its width is the output's
    depth = trace.longest
    if not hidden:
        return Finding(rule, "pass", f"{depth} weight layer(s), no hidden layer",
                       {"depth": depth})
    narrow = min(hidden, key=lambda e: e.width)
    wide = max(hidden, key=lambda e: e.width)
    data = {"depth": depth, "min_width": narrow.width, "min_width_layer": narrow.param,
            "max_width": wide.width, "max_width_layer": wide.param}
    span = f"{depth} layers, hidden widths {narrow.width}-{wide.width}"
    if depth > MAX_PLAIN_DEPTH and narrow.width < MIN_DEEP_WIDTH:
        return Finding(rule, "warn",
                       f"{span}: deep and narrow, {narrow.param} has {narrow.width} units/channels "
                       f"(< {MIN_DEEP_WIDTH} on > {MAX_PLAIN_DEPTH} layers bottlenecks capacity; "
                       f"widen it)", data)
    if depth <= SHALLOW_DEPTH and wide.width > MAX_SHALLOW_WIDTH:
        return Finding(rule, "warn",
                       f"{span}: shallow and wide, {wide.param} has {wide.width} units (> "
                       f"{MAX_SHALLOW_WIDTH} on <= {SHALLOW_DEPTH} layers under-uses depth; trade "
                       f"width for layers)", data)
    return Finding(rule, "pass", span, data)


def rule_gradient_flow(model: nn.Module, trace: PathTrace | None, error: str | None) -> Finding:
    """Gradients of ``model`` after one backward (already run): first vs last weight layer."""
    rule = "gradient-flow"
    if trace is None:
        return Finding(rule, "skip", f"no forward/backward pass ({error})")
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and p.grad is None]
    bad = [n for n, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all()]
    first = trace.layers[0].param if trace.layers else None
    last = trace.layers[-1].param if trace.layers else None
    data: dict = {"first_layer": first, "last_layer": last}
    if missing:
        data["no_gradient"] = missing
        return Finding(rule, "fail", f"{len(missing)} parameter(s) got no gradient: "
                       f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", data)
    if bad:
        data["non_finite"] = bad
        return Finding(rule, "fail", f"exploding: non-finite gradients in {', '.join(bad[:5])}"
                       f"{' ...' if len(bad) > 5 else ''}; lower the learning rate, clip "
                       f"gradients, check the init", data)
    if first is None or params[first].grad is None or params[last].grad is None:
        return Finding(rule, "pass", "every parameter got a finite gradient (no weight layer to "
                       "compare)", data)
    g_first = float(params[first].grad.detach().float().norm())
    g_last = float(params[last].grad.detach().float().norm())
    ratio = g_first / g_last if g_last > 0 else (math.inf if g_first > 0 else 0.0)
    data.update(first_grad_norm=g_first, last_grad_norm=g_last,
                ratio=ratio if math.isfinite(ratio) else None)  # None: the last layer's is 0
    norms = f"|grad| {first} {g_first:.3g}, {last} {g_last:.3g}, ratio {ratio:.3g}"
    if ratio > EXPLODING_RATIO:
        return Finding(rule, "fail", f"exploding: {norms} (> {EXPLODING_RATIO:g}); lower the "
                       f"learning rate, clip gradients, check the init", data)
    if ratio < VANISHING_RATIO:
        return Finding(rule, "warn", f"vanishing: {norms} (< {VANISHING_RATIO:g}); add skip "
                       f"connections, check the init", data)
    return Finding(rule, "pass", norms, data)


# --------------------------------------------------------------------------------------------------
# check_model
# --------------------------------------------------------------------------------------------------


def _check_options(task, n_samples, batch_size) -> None:
    """Raise ``ValueError`` naming the first bad option, its value and what is accepted."""
    if task is not None and task not in policy.TASKS:
        raise ValueError(f"task={task!r} is not accepted: expected one of "
                         f"{', '.join(policy.TASKS)} (or None)")
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int)
                                  or n_samples < 1):
        raise ValueError(f"n_samples={n_samples!r} is not accepted: expected an int >= 1 (or None)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not accepted: expected an int >= 1")


def _loss_kind(out: torch.Tensor, task: str | None) -> str:
    """Cross-entropy for a classifier of >= 2 outputs (one class would give a constant loss and no
    gradient), else MSE regression."""
    classifies = policy.TASKS[task].classification if task is not None else True
    return "cross_entropy" if classifies and out.shape[-1] > 1 else "mse"


def _run_step(model: nn.Module, *, batch_size: int, task: str | None) -> tuple[nn.Module | None,
                                                                          PathTrace | None, str | None]:
    """One traced forward (+ backward unless on meta) on a deep copy in train mode, seeded and
    without touching the caller's RNG. Returns the copy (with gradients), the trace, or the error."""
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)
        work = copy.deepcopy(model)
        work.train()
        work.zero_grad(set_to_none=True)
        on_meta = any(p.device.type == "meta" for p in work.parameters())
        try:
            inputs = tuple(work.example_inputs(batch_size))
            tracer = PathTracer(work, inputs, _gate_modules())
            try:
                with tracer:
                    out = work(*inputs)
            finally:
                tracer.close()
            trace = tracer.result(out)
            if on_meta:
                return None, trace, "the model is on the meta device: no data to differentiate"
            make_loss(out, _loss_kind(out, task)).backward()
        except Exception as exc:  # a model that cannot run its own example is a finding, not a crash
            return None, None, f"{type(exc).__name__}: {exc}"
    return work, trace, None


def check_model(model: nn.Module, *, task: str | None = None, n_samples: int | None = None,
                batch_size: int = 2) -> CheckReport:
    """Audit ``model`` against the design principles (see the module docstring for the rules).

    Args:
        model: a zoo model (``zoo.create`` / ``zoo.load`` / ``zoo.build``); never modified: the
            forward and backward run on a deep copy in train mode.
        task: a :data:`zoo.factory.policy.TASKS` name; enables the inductive-bias rule.
        n_samples: training-set size; enables the capacity rule.
        batch_size: batch of ``model.example_inputs`` for the traced step (graphs: copies of the
            example graph). At least 2 where the model has BatchNorm.

    Raises ``ValueError`` naming a bad argument, its value and what is accepted.
    """
    if not isinstance(model, nn.Module) or getattr(model, "_zoo_config", None) is None:
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a zoo model "
                         f"(zoo.create, zoo.load or zoo.build), which carries its config")
    _check_options(task, n_samples, batch_size)
    config = model.config
    name = config["name"]
    entry = zoo.get_entry(name)
    params = sum(p.numel() for p in model.parameters())
    work, trace, error = _run_step(model, batch_size=batch_size, task=task)
    findings = [
        rule_inductive_bias(name, entry.family, entry.input_kind, task),
        rule_capacity(name, entry.family, entry.input_kind, params, n_samples),
        rule_skip_connections(entry.family, trace, error),
        rule_depth_width(trace, error),
        rule_gradient_flow(work, trace, error) if work is not None
        else Finding("gradient-flow", "skip" if trace is not None else "fail",
                     f"no forward/backward pass ({error})" if trace is not None else
                     f"one training step on the model's example inputs (batch_size={batch_size}) "
                     f"failed: {error}"),
    ]
    return CheckReport(model=name, config=config, params=params, task=task, n_samples=n_samples,
                       findings=findings)


# --------------------------------------------------------------------------------------------------
# zoo check
# --------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo check",
        description="Audit a model against the design principles: inductive bias, capacity vs "
                    "data, skip connections, depth/width balance, gradient flow. Exit 0 when no "
                    "rule fails, 1 when one does, 2 for bad input.")
    p.add_argument("model", metavar="NAME_OR_FILE",
                   help="a registry name (built with its defaults and --arg) or a file written by "
                        "zoo.save()")
    p.add_argument("--task", default=None, metavar="T",
                   help=f"the task the model is for: {', '.join(policy.TASKS)}")
    p.add_argument("--n-samples", type=int, default=None, metavar="N", help="training-set size")
    p.add_argument("--batch-size", type=int, default=2, metavar="N",
                   help="batch of the traced forward/backward (default 2)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder argument (registry names), repeatable: --arg img_size=64")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    from zoo.cli import _model_for_export  # `zoo export`'s NAME_OR_FILE + --arg resolution

    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        _check_options(args.task, args.n_samples, args.batch_size)  # before building anything
        source = argparse.Namespace(model=args.model, arg=args.arg, num_classes=None, img_size=None)
        torch.manual_seed(0)  # a registry name builds the same random weights every run
        model = _model_for_export(source)
        report = check_model(model, task=args.task, n_samples=args.n_samples,
                             batch_size=args.batch_size)
    except ValueError as exc:
        print(f"zoo check: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.report())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
