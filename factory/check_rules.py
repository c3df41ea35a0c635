"""The rules of ``zoo check``: what the design principles say, and how a trace decides each.

Every rule returns a :class:`Finding`: ``pass``, ``warn`` or ``fail`` (``skip`` where it needs an
argument that was not given), the measured fact, and the remedies in the order the seed -- the
project's "Architecture Design Principles" (its Design Checklist and Debugging Architectures
sections), quoted where it matters since the text does not ship with the package -- gives them.
Each rule's :class:`Basis` quotes the seed and states apart the numbers that are ours, with why.
The seed's own numbers are: "> 10 layers" for skip connections, "100 layers x 8 channels" and "2
layers x 1024 channels" as the bad depth/width examples (standard: "12-50 layers, 64-512
channels"), "< 100 timesteps" for RNNs, "< 10k samples" and "> 100k samples" for Transformers, and
"grad_mean > 1, grad_std > 1" for exploding gradients. Every other number below is ours.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from . import policy
from .trace_structure import Structure

STATUSES = ("pass", "warn", "fail", "skip")

DEEP = 10                 # seed: "For networks > 10 layers, ALWAYS use skip connections."
PLAIN_FAIL = 20           # ours, see BASIS["skip-connections"]
SKIP_SHARE = 0.5          # ours: skips must at least halve the layers the gradient crosses
NARROW = 16               # ours, see BASIS["depth-width"]
SHALLOW, WIDE = 2, 1024   # seed: "2 layers x 1024 channels" under-utilizes depth
OVERSMOOTH = 4            # ours, see BASIS["over-smoothing"]
LONG_SEQUENCE = 100       # seed: RNNs for "Short sequences (< 100 timesteps)"
TRANSFORMER_MIN_SAMPLES = 10_000        # seed: Transformers not on "Small datasets (< 10k samples)"
IMAGE_TRANSFORMER_MIN_SAMPLES = 100_000  # seed: "Large datasets (> 100k samples)"; ViT "very large"
VANISHING = 1e-3          # ours: first / last weight layer gradient std
EXPLODING_RATIO = 1e3     # ours: the same ratio, the other way
EXPLODING_MOMENT = 1.0    # seed: "Exploding: grad_mean > 1, grad_std > 1"


DEEP_NARROW_FIX = "widen the layers (standard: 64-512 channels) and use fewer of them"
SHALLOW_WIDE_FIX = "trade width for depth: more, narrower layers (hierarchical features)"
VANISHING_FIX = ("add skip connections (ResNet)", "check initialization (Xavier or He)",
                 "lower the learning rate", "check data preprocessing (normalized inputs?)")
EXPLODING_FIX = ("gradient clipping or a lower learning rate",
                 "check initialization (Xavier or He)",
                 "check data preprocessing (normalized inputs?)")
NO_GRADIENT_FIX = ("(ours) connect the parameter to the loss: no .detach() / .data / numpy "
                   "round trip in forward, no layer left unused; freeze on purpose with "
                   "requires_grad=False",)


@dataclass(frozen=True)
class Basis:
    """Why a rule exists: the seed's words, the remedies in the seed's order, our numbers."""
    seed: str
    remedies: tuple[str, ...]
    ours: str = ""


BASIS: dict[str, Basis] = {
    "inductive-bias": Basis(
        "Match inductive bias to problem: Images -> CNN, Sequences -> RNN/Transformer, Graphs -> "
        "GNN, Tabular -> MLP (Design Checklist); MLP: not for images, sequences or graphs; CNN: "
        "not for tabular data; Transformer: not on small datasets (< 10k samples) or where strong "
        "structural priors exist (images -> CNN); GNN: test an MLP baseline first",
        ("use the architecture whose inductive bias matches the data: images -> CNN (ResNet; "
         "EfficientNet/MobileNet for mobile), sequences -> LSTM/GRU (< 100 steps) or Transformer, "
         "graphs -> GNN (GCN, GraphSAGE, GAT), tabular -> linear or a small MLP",
         "fix the architecture before tuning hyperparameters (Anti-pattern 5)")),
    "capacity": Basis(
        "Match capacity to data size (Design Checklist); Problem 2: check the parameter/data "
        "ratio",
        ("reduce capacity (fewer layers/channels)", "add dropout / weight decay",
         "data augmentation", "collect more data"),
        "the cap is the factory's zoo.factory.policy.capacity_cap (the seed's 0.01-0.1x "
        "dataset size contradicts its own examples; the policy's rows give the evidence)"),
    "skip-connections": Basis(
        "Use skip connections for deep networks (> 10 layers): plain networks > 10 layers "
        "suffer from vanishing gradients and degradation",
        ("add skip connections: residual out = x + F(x) (ResNet), dense concatenation "
         "(DenseNet) or highway gates; pre-norm residuals for Transformers",
         "or remove layers: start simple"),
        f"FAIL above {PLAIN_FAIL} layers (the seed's degradation example: a 56-layer plain net "
        f"is worse than a 20-layer one); skips count when they at least halve the weight layers "
        f"on the gradient's shortest route"),
    "depth-width": Basis(
        "Balance depth and width: not too deep and narrow ('100 layers x 8 channels bottlenecks "
        "capacity'), not too shallow and wide ('2 layers x 1024 channels' under-utilizes "
        "depth); standard: 12-50 layers, 64-512 channels",
        (DEEP_NARROW_FIX, SHALLOW_WIDE_FIX),
        f"narrow means a hidden width < {NARROW} on > {DEEP} layers (the seed's example has 8; "
        f"{NARROW} keeps the narrowest standard nets, MobileNetV2's 16-channel projections, "
        f"out)"),
    "over-smoothing": Basis(
        "GNN weakness: over-smoothing (too many layers)",
        ("use fewer graph convolutions (the factory's GCN has 2-3)",
         "test an MLP baseline first: does the graph structure help?"),
        f"more than {OVERSMOOTH} message-passing hops warns (Kipf & Welling 2017 and Li et al. "
        f"2018 find deeper GCNs worse; the seed gives no number)"),
    "recurrent-length": Basis(
        "RNN/LSTM: short sequences (< 100 timesteps); not for long sequences; decision tree: "
        "< 100 timesteps -> LSTM/GRU, 100-4000 tokens -> Transformer, > 4000 tokens -> Sparse "
        "Transformer (Longformer)",
        ("a Transformer for 100-4000 steps", "a sparse Transformer (Longformer) beyond 4000",
         "(the zoo's addition, not the seed's) a temporal CNN (registry name tcn) on small sets "
         "of long series")),
    "gradient-flow": Basis(
        "Verify gradient flow: check gradients in early layers (should be non-zero); Problem 1: "
        "vanishing: grad_mean ~ 0, grad_std ~ 0 -> add skip connections; exploding: grad_mean "
        "> 1, grad_std > 1 -> gradient clipping or lower LR",
        VANISHING_FIX,
        f"'~ 0' is ours: the first weight layer's gradient std below {VANISHING:g} x the last's "
        f"(or exactly 0); exploding also when that ratio exceeds {EXPLODING_RATIO:g}; one "
        f"forward + backward on the inputs with random targets"),
}


@dataclass
class Finding:
    """One rule's verdict: ``status`` in :data:`STATUSES`, the measured ``fact``, the
    ``remedies`` in the seed's order (empty when it passes), the numbers in ``data``."""
    rule: str
    status: str
    fact: str
    remedies: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r} is not accepted: expected one of {STATUSES}")

    @property
    def basis(self) -> Basis | None:
        return BASIS.get(self.rule)

    def to_dict(self) -> dict:
        d = json.loads(json.dumps(asdict(self), default=str))
        if self.basis is not None:
            d["seed"], d["ours"] = self.basis.seed, self.basis.ours
        return d


def _finding(rule: str, status: str, fact: str, data: dict | None = None,
             remedies: tuple[str, ...] | None = None) -> Finding:
    """A finding with the rule's remedies (or ``remedies``) when it warns or fails."""
    if status not in ("warn", "fail"):
        remedies = ()
    elif remedies is None:
        remedies = BASIS[rule].remedies
    return Finding(rule, status, fact, list(remedies), data or {})


def fmt(n: float) -> str:
    """1234567 -> '1.23M' (parameter counts in messages)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def data_kind(s: Structure, task: str | None) -> str | None:
    """The data's kind: the task's input kind, else what the inputs look like."""
    if task is not None:
        return policy.TASKS[task].input_kind
    return s.input_kinds[0] if len(s.input_kinds) == 1 else None


def rule_inductive_bias(s: Structure, task: str | None, n_samples: int | None) -> Finding:
    rule, arch, kind = "inductive-bias", s.architecture, data_kind(s, task)
    data = {"architecture": arch, "data_kind": kind, "input_kinds": s.input_kinds,
            "n_samples": n_samples}
    if kind is None:
        return _finding(rule, "skip", f"{arch}; the inputs {s.input_kinds} do not say the data "
                        f"kind: pass task", data)
    on = f"{arch} on {kind} data" + (f" ({task})" if task else "")
    small = n_samples is not None and n_samples < TRANSFORMER_MIN_SAMPLES
    why = None
    if kind == "image":
        if arch in ("mlp", "linear"):
            why = "an MLP treats each pixel independently: no spatial locality or translation " \
                  "invariance (the seed: 'MLP for images (should use CNN)')"
        elif arch == "transformer" and (n_samples is None
                                        or n_samples < IMAGE_TRANSFORMER_MIN_SAMPLES):
            why = (f"attention without convolutions needs very large image sets (the seed: > "
                   f"{IMAGE_TRANSFORMER_MIN_SAMPLES:,} samples; ViT for very large data); "
                   f"{'n_samples not given' if n_samples is None else f'{n_samples:,} samples'}")
        elif arch in ("rnn", "gnn", "temporal-cnn"):
            why = "images are grids: a CNN's locality and weight sharing fit them"
    elif kind == "tabular":
        if arch in ("cnn", "temporal-cnn"):
            why = "tabular features have no spatial structure (the seed: CNN not for tabular data)"
        elif arch in ("transformer", "rnn"):
            why = "tabular features are not a sequence (the seed's Anti-pattern 1: a Transformer " \
                  "for tabular data)"
    elif kind == "sequence":
        if arch in ("mlp", "linear"):
            why = "an MLP has no notion of order (the seed: MLP not for sequences)"
        elif arch == "transformer" and small:
            why = f"{n_samples:,} samples < {TRANSFORMER_MIN_SAMPLES:,}: a Transformer's weak " \
                  f"inductive bias needs data (the seed: use an RNN or MLP)"
        elif arch in ("cnn", "gnn"):
            why = "sequences: RNN/Transformer (or 1-D convolutions), not 2-D convolutions or a GNN"
    elif kind == "graph":
        if s.graph_edges == 0:
            why = "the graph has no edges: message passing has nothing to pass"
        elif not s.message_passing:
            why = "a graph task, but no message passing over edges: nodes are treated " \
                  "independently (a baseline the seed recommends testing, not the model)"
    if why:
        return _finding(rule, "warn", f"{on}: {why}", data)
    return _finding(rule, "pass", f"{on} fits", data)


def rule_capacity(s: Structure, params: int, task: str | None, n_samples: int | None) -> Finding:
    rule, kind = "capacity", data_kind(s, task)
    if n_samples is None or kind is None:
        return _finding(rule, "skip", f"{fmt(params)} params; pass n_samples (and task where the "
                        f"inputs do not say the data kind)", {"params": params})
    cap = policy.capacity_cap(kind, n_samples)
    ps = params / n_samples
    per = f"{ps:,.0f}" if ps >= 100 else f"{ps:.3g}"
    capacity = getattr(policy, "CAPACITY", {}).get(kind)
    data = {"params": params, "n_samples": n_samples, "data_kind": kind, "cap": cap,
            "params_per_sample": ps, "ratio_to_cap": params / cap,
            "cap_reason": getattr(capacity, "reason", "")}
    fact = f"{fmt(params)} params for {n_samples:,} {kind} samples ({per} per sample)"
    if len(s.layers) <= 1:
        return _finding(rule, "pass", f"{fact}: one weight layer, the baseline is always allowed",
                        data)
    if params > cap:
        return _finding(rule, "warn", f"{fact} is {params / cap:.1f}x the factory's cap of "
                        f"{fmt(cap)}: expect overfitting", data)
    return _finding(rule, "pass", f"{fact}, {params / cap:.2f}x the factory's cap of {fmt(cap)}",
                    data)


def rule_skip_connections(s: Structure) -> Finding:
    rule, d, short = "skip-connections", s.longest, s.shortest
    data = {"weight_layers_longest_path": d, "weight_layers_shortest_path": short,
            "residual_adds": s.residual_adds, "concat_skips": s.concat_skips}
    if d <= DEEP:
        return _finding(rule, "pass", f"{d} weight layer(s) on the longest path: no skip "
                        f"connections needed (<= {DEEP})", data)
    if s.residual_adds and short <= SKIP_SHARE * d:
        return _finding(rule, "pass", f"{d} weight layers on the longest path, {s.residual_adds} "
                        f"residual adds: the gradient reaches the input through {short}", data)
    skips = (f"{s.residual_adds} residual adds leave {short} layers on the shortest route"
             if s.residual_adds else f"no residual adds; {short} layers on the shortest route")
    status = "fail" if short > PLAIN_FAIL else "warn"
    return _finding(rule, status, f"{d} weight layers on the longest path, {skips}: more than "
                    f"{PLAIN_FAIL if status == 'fail' else DEEP} in a row suffer vanishing "
                    f"gradients and degradation", data)


def rule_depth_width(s: Structure) -> Finding:
    rule, d, hidden = "depth-width", s.longest, s.hidden_widths()
    if not hidden:
        return _finding(rule, "pass", f"{d} weight layer(s), no hidden layer", {"depth": d})
    narrow = min(hidden, key=lambda e: e.width)
    wide = max(hidden, key=lambda e: e.width)
    data = {"depth": d, "min_width": narrow.width, "min_width_layer": narrow.param,
            "max_width": wide.width, "max_width_layer": wide.param}
    span = f"{d} weight layers, hidden widths {narrow.width}-{wide.width}"
    if d > DEEP and narrow.width < NARROW:
        return _finding(rule, "warn", f"{span}: deep and narrow, {narrow.param} has "
                        f"{narrow.width} units/channels (< {NARROW} on > {DEEP} layers)", data,
                        (DEEP_NARROW_FIX,))
    if d <= SHALLOW and wide.width >= WIDE:
        return _finding(rule, "warn", f"{span}: shallow and wide, {wide.param} has {wide.width} "
                        f"units (>= {WIDE} on <= {SHALLOW} layers)", data, (SHALLOW_WIDE_FIX,))
    return _finding(rule, "pass", span, data)


def rule_over_smoothing(s: Structure) -> Finding:
    rule, hops = "over-smoothing", s.message_passing
    data = {"message_passing_hops": hops, "aggregations": s.aggregations}
    if hops > OVERSMOOTH:
        return _finding(rule, "warn", f"{hops} graph convolutions (message-passing hops) in a "
                        f"row (> {OVERSMOOTH}): node features over-smooth", data)
    return _finding(rule, "pass", f"{hops} message-passing hop(s)" if hops else
                    "no message passing", data)


def rule_recurrent_length(s: Structure) -> Finding:
    rule = "recurrent-length"
    data = {"recurrent": [asdict(r) for r in s.recurrent]}
    if not s.recurrent:
        return _finding(rule, "pass", "no recurrent layer", data)
    longest = max(s.recurrent, key=lambda r: r.steps)
    what = f"{longest.module or longest.type} ({longest.type}) runs {longest.steps} steps"
    if longest.steps > LONG_SEQUENCE:
        return _finding(rule, "warn", f"{what} (> {LONG_SEQUENCE}): recurrent nets struggle "
                        f"with long-range dependencies and vanishing gradients through time", data)
    return _finding(rule, "pass", f"{what} (<= {LONG_SEQUENCE})", data)


def rule_gradient_flow(s: Structure, grads: dict, error: str | None) -> Finding:
    """``grads``: parameter name -> its gradient after one backward (None: it got none)."""
    rule = "gradient-flow"
    if error is not None:
        return _finding(rule, "fail", f"one training step failed: {error}")
    missing = [n for n, g in grads.items() if g is None]
    bad = [n for n, g in grads.items() if g is not None and not bool(g.isfinite().all())]
    layers = [e.param for e in s.layers if grads.get(e.param) is not None]
    data: dict = {"no_gradient": missing, "non_finite": bad}
    if missing:
        return _finding(rule, "fail", f"{len(missing)} parameter(s) got no gradient (detached "
                        f"or unused): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
                        data, NO_GRADIENT_FIX)
    if bad:
        return _finding(rule, "fail", f"exploding: non-finite gradients in {', '.join(bad[:5])}",
                        data, EXPLODING_FIX)
    if not layers:
        return _finding(rule, "pass", "every parameter got a finite gradient", data)
    stats = {}
    for name in dict.fromkeys(layers):
        g = grads[name].detach().float()
        stats[name] = (float(g.mean()), float(g.std()) if g.numel() > 1 else 0.0)
    first, last = layers[0], layers[-1]
    f_std, l_std = stats[first][1], stats[last][1]
    ratio = f_std / l_std if l_std > 0 else (math.inf if f_std > 0 else 0.0)
    data.update(first_layer=first, last_layer=last, first_grad_std=f_std, last_grad_std=l_std,
                ratio=ratio if math.isfinite(ratio) else None,
                layers={n: {"mean": m, "std": sd} for n, (m, sd) in stats.items()})
    fact = f"grad std {first} {f_std:.3g}, {last} {l_std:.3g} (ratio {ratio:.3g})"
    big = [n for n, (m, sd) in stats.items()
           if abs(m) > EXPLODING_MOMENT and sd > EXPLODING_MOMENT]
    if big:
        return _finding(rule, "warn", f"exploding: {', '.join(big[:3])} has grad mean and std > "
                        f"{EXPLODING_MOMENT:g}; {fact}", data, EXPLODING_FIX)
    if f_std == 0.0:
        return _finding(rule, "fail", f"vanishing: the first weight layer's gradient is exactly "
                        f"0; {fact}", data)
    if ratio < VANISHING:
        return _finding(rule, "warn", f"vanishing: {fact} < {VANISHING:g}", data)
    if ratio > EXPLODING_RATIO:
        return _finding(rule, "warn", f"exploding: {fact} > {EXPLODING_RATIO:g}", data,
                        EXPLODING_FIX)
    return _finding(rule, "pass", fact, data)


def structure_rules(s: Structure, *, params: int, task: str | None,
                    n_samples: int | None) -> list[Finding]:
    """Every rule the trace decides alone (gradient flow needs the backward: separate)."""
    return [rule_inductive_bias(s, task, n_samples), rule_capacity(s, params, task, n_samples),
            rule_skip_connections(s), rule_depth_width(s), rule_over_smoothing(s),
            rule_recurrent_length(s)]
