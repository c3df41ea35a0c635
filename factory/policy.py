"""The design policy as data: which families fit a task, how big the data lets them be, and where
their multipliers may go. Every rule carries its reason; nothing here runs a model.

Read top to bottom:

* :data:`TASKS` -- the tasks ``build`` accepts, their input kind, loss and default batch size.
* :data:`FAMILIES` -- the searchable candidates: registry name, fixed arguments, the bounds of
  ``width_mult`` / ``depth_mult`` and the reason for them.
* :data:`RULES` -- task and data -> candidate families, in preference order. Every row whose
  condition holds contributes its families, in table order. Rows only ever *add* families as
  the data grows or a budget loosens, which is half of why ``build`` is monotone (the search is
  the other half, see :mod:`zoo.factory.search`).
* :data:`CAPACITY` and :func:`capacity_cap` -- the largest parameter count the data supports.
* :func:`scaling_path` -- the compound-scaling path a family's search walks.

Sources: the project's design principles (``shared/seed/architecture-design-principles.txt``);
He et al. 2016 (ResNet), Hu et al. 2018 (SE), Sandler et al. 2018 (MobileNetV2), Szegedy et al.
2015 (Inception), Hochreiter & Schmidhuber 1997 (LSTM), Xiong et al. 2020 (pre-norm
Transformer), Kipf & Welling 2017 (GCN), Li et al. 2018 (GCN over-smoothing), Tan & Le 2019
(EfficientNet compound scaling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A task ``build`` accepts: its input kind, whether it classifies, and its default batch."""
    name: str
    input_kind: str          # tabular | image | sequence | graph (the registry's input kinds)
    classification: bool
    default_batch: int       # graphs train on the whole graph: one "batch"
    shape_doc: str           # what input_shape means


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("tabular-classification", "tabular", True, 64, "(n_features,)"),
    Task("tabular-regression", "tabular", False, 64, "(n_features,)"),
    Task("image-classification", "image", True, 64, "(C, H, W), default (3, 224, 224)"),
    Task("sequence-classification", "sequence", True, 64, "(seq_len, n_features)"),
    Task("sequence-regression", "sequence", False, 64, "(seq_len, n_features)"),
    Task("node-classification", "graph", True, 1, "(n_nodes, n_features)"),
)}

DEFAULT_EDGES_PER_NODE = 10
DEFAULT_IMAGE_SHAPE = (3, 224, 224)

# ---------------------------------------------------------------------------------------------------
# Candidate families and their search bounds
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A searchable candidate: a registry builder, fixed arguments, and multiplier bounds.

    ``width`` / ``depth``: inclusive bounds of ``width_mult`` / ``depth_mult`` (``None``: the
    builder does not scale that way).
    """
    key: str
    registry: str
    width: tuple[float, float] | None
    depth: tuple[float, float] | None
    reason: str
    fixed: dict = field(default_factory=dict)


FAMILIES: dict[str, Family] = {f.key: f for f in (
    Family("linear", "linear", None, None,
           "y = Wx + b: the baseline every tabular task starts from; nothing to scale"),
    Family("mlp", "mlp", (0.25, 4.0), (0.5, 2.0),
           "hidden width 64-1024 (x256), 1-4 hidden layers (x2): an MLP has no skip connections, "
           "so it stays at <= 4 hidden layers"),
    Family("resnet18", "resnet18", (1.0, 2.0), (1.0, 2.0),
           "basic-block ResNet from ResNet-18 (64-512 channels, 18 layers) up to twice as wide "
           "and deep (34 layers); narrower stages fall below the 64-512 channel pattern, where "
           "MobileNetV2 is the better small network"),
    Family("resnet50", "resnet50", (1.0, 2.0), (1.0, 2.0),
           "bottleneck ResNet from ResNet-50 up: bottlenecks pay off from 50 layers (He et al. "
           "2016), so depth_mult >= 1"),
    Family("seresnet18", "seresnet18", (1.0, 2.0), (1.0, 2.0),
           "ResNet-18 layout with squeeze-and-excitation in every block (Hu et al. 2018)"),
    Family("seresnet50", "seresnet50", (1.0, 2.0), (1.0, 2.0),
           "ResNet-50 layout with squeeze-and-excitation in every block (Hu et al. 2018)"),
    Family("mobilenetv2", "mobilenetv2", (0.35, 1.4), (0.5, 1.5),
           "inverted residuals; width 0.35-1.4 as designed (Sandler et al. 2018); depth 0.5-1.5 "
           "(a deviation: the paper scales width and resolution only)"),
    Family("mobilenetv2-se", "mobilenetv2", (0.35, 1.4), (0.5, 1.5),
           "MobileNetV2 with squeeze-and-excitation in its expanded blocks (as MobileNetV3)",
           fixed={"se": True}),
    # Other depths of the same layouts, only when asked for by name (families=...).
    Family("resnet34", "resnet34", (1.0, 2.0), (1.0, 2.0), "ResNet-34 layout, scaled up"),
    Family("resnet101", "resnet101", (1.0, 2.0), (1.0, 2.0), "ResNet-101 layout, scaled up"),
    Family("seresnet34", "seresnet34", (1.0, 2.0), (1.0, 2.0), "SE-ResNet-34 layout, scaled up"),
    Family("seresnet101", "seresnet101", (1.0, 2.0), (1.0, 2.0), "SE-ResNet-101 layout, scaled up"),
    Family("inception", "inception", (0.5, 2.0), (0.5, 2.0),
           "GoogLeNet-style Inception blocks (multi-scale branches); only when asked for"),
    Family("lstm", "lstm", (0.25, 4.0), (0.5, 1.5),
           "32-512 hidden units (x128), 1-3 stacked layers (x2): deeper LSTMs gain little"),
    Family("transformer", "transformer", (0.5, 4.0), (0.5, 3.0),
           "pre-norm encoder (Xiong et al. 2020), d_model 64-512 (x128), 2-12 blocks (x4); "
           "residual + pre-norm keep deep stacks trainable"),
    Family("gcn", "gcn", (0.5, 8.0), (1.0, 1.5),
           "32-512 hidden (x64) and 2-3 graph convolutions: more layers over-smooth node "
           "features (Li et al. 2018)"),
)}

# ---------------------------------------------------------------------------------------------------
# Rules: task and data -> families, in preference order
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """``families`` become candidates when every condition in ``when`` holds.

    Conditions (all optional): ``min_samples``; ``min_seq_len`` / ``max_seq_len`` (sequence
    steps); ``min_img_size`` (the shorter image side); ``no_latency_budget`` (True: only when
    ``latency_ms`` is None).
    """
    name: str
    input_kind: str
    families: tuple[str, ...]
    reason: str
    when: dict = field(default_factory=dict)


LARGE_IMAGE_DATA = 500_000
LARGE_IMAGE_SIDE = 128
LONG_SEQUENCE = 100
TRANSFORMER_MIN_SAMPLES = 10_000
TABULAR_MLP_MIN_SAMPLES = 1_000

RULES: tuple[Rule, ...] = (
    # tabular
    Rule("tabular-mlp", "tabular", ("mlp",),
         f"tabular data with >= {TABULAR_MLP_MIN_SAMPLES:,} samples: a small MLP (the seed's "
         "decision tree: 1k-100k samples -> small MLP)",
         {"min_samples": TABULAR_MLP_MIN_SAMPLES}),
    Rule("tabular-linear", "tabular", ("linear",),
         "tabular data: the linear baseline is always a candidate, and the only one under "
         f"{TABULAR_MLP_MIN_SAMPLES:,} samples (start simple; Occam's razor)"),
    # images: grid-structured -> CNN
    Rule("image-bottleneck", "image", ("resnet50",),
         f"large data (>= {LARGE_IMAGE_DATA:,} images) and inputs (>= {LARGE_IMAGE_SIDE} px): "
         "bottleneck blocks join the candidates (ResNet-50 and deeper, as for ImageNet)",
         {"min_samples": LARGE_IMAGE_DATA, "min_img_size": LARGE_IMAGE_SIDE}),
    Rule("image-resnet", "image", ("resnet18",),
         "images are grids: a CNN's locality and weight sharing fit them; a basic-block ResNet "
         "by default (skip connections, balanced 64-512 channels)"),
    Rule("image-se-bottleneck", "image", ("seresnet50",),
         "no latency budget: squeeze-and-excitation is cheap (~10% parameters, <1% FLOPs; its "
         "latency cost on CPU is what makes it expensive elsewhere)",
         {"min_samples": LARGE_IMAGE_DATA, "min_img_size": LARGE_IMAGE_SIDE,
          "no_latency_budget": True}),
    Rule("image-se", "image", ("seresnet18",),
         "no latency budget: squeeze-and-excitation is cheap (~10% parameters, <1% FLOPs)",
         {"no_latency_budget": True}),
    Rule("image-mobilenet", "image", ("mobilenetv2",),
         "MobileNetV2 where latency binds or the data is small: designed for it (0.35-1.4 width), "
         "it covers the sizes below ResNet-18"),
    Rule("image-mobilenet-se", "image", ("mobilenetv2-se",),
         "no latency budget: MobileNetV2 with squeeze-and-excitation is a candidate too",
         {"no_latency_budget": True}),
    # sequences
    Rule("sequence-transformer", "sequence", ("transformer",),
         f"long sequences (>= {LONG_SEQUENCE} steps) and >= {TRANSFORMER_MIN_SAMPLES:,} samples: "
         "a pre-norm Transformer (attention reaches every step; never on < 10k samples, whose "
         "weak inductive bias needs data)",
         {"min_seq_len": LONG_SEQUENCE, "min_samples": TRANSFORMER_MIN_SAMPLES}),
    Rule("sequence-lstm", "sequence", ("lstm",),
         f"sequences: an LSTM (temporal inductive bias) for short ones (< {LONG_SEQUENCE} steps), "
         "and for long ones on small data"),
    # graphs
    Rule("graph-gcn", "graph", ("gcn",),
         "graph-structured data: a GCN (message passing over the edges), 2-3 layers"),
)



def rule_matches(rule: Rule, *, n_samples: int, seq_len: int | None, img_size: int | None,
                 latency_ms: float | None) -> bool:
    w = rule.when
    if "min_samples" in w and n_samples < w["min_samples"]:
        return False
    if "min_seq_len" in w and (seq_len is None or seq_len < w["min_seq_len"]):
        return False
    if "max_seq_len" in w and (seq_len is None or seq_len > w["max_seq_len"]):
        return False
    if "min_img_size" in w and (img_size is None or img_size < w["min_img_size"]):
        return False
    if w.get("no_latency_budget") and latency_ms is not None:
        return False
    return True


def candidate_families(input_kind: str, *, n_samples: int, seq_len: int | None = None,
                       img_size: int | None = None, latency_ms: float | None = None
                       ) -> tuple[list[str], list[Rule]]:
    """The families the policy allows, in preference order, and the rules that fired."""
    fired = [r for r in RULES if r.input_kind == input_kind
             and rule_matches(r, n_samples=n_samples, seq_len=seq_len, img_size=img_size,
                              latency_ms=latency_ms)]
    families: list[str] = []
    for rule in fired:
        families += [f for f in rule.families if f not in families]
    return families, fired


# ---------------------------------------------------------------------------------------------------
# Capacity cap by data size
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityRule:
    """``cap(n) = A n^b``, the power law through two known-good (samples, parameters) pairs."""
    input_kind: str
    anchors: tuple[tuple[float, float], tuple[float, float]]
    reason: str

    @property
    def exponent(self) -> float:
        (n1, p1), (n2, p2) = self.anchors
        return math.log(p2 / p1) / math.log(n2 / n1)

    def cap(self, n_samples: int) -> int:
        (n1, p1), _ = self.anchors
        return int(p1 * (n_samples / n1) ** self.exponent)


CAPACITY: dict[str, CapacityRule] = {c.input_kind: c for c in (
    CapacityRule("image", ((50_000, 11.7e6), (1_200_000, 25.6e6)),
                 "ResNet-18 (11.7M) on CIFAR's 50k images and ResNet-50 (25.6M) on ImageNet's "
                 "1.2M train well: b ~= 0.25, far more parameters than samples, which weight "
                 "sharing and augmentation allow (the seed's 0.01-0.1 x samples contradicts its "
                 "own examples)"),
    CapacityRule("tabular", ((1_000, 1e4), (100_000, 1e6)),
                 "no weight sharing or augmentation: ~10 parameters per sample (a 2-layer MLP of "
                 "~10k parameters for 1k rows, ~1M for 100k rows, as tabular MLPs are sized); "
                 "the linear model is always allowed"),
    CapacityRule("sequence", ((20_000, 2e6), (500_000, 2e7)),
                 "sequence classifiers of ~2M parameters on ~20k sequences (IMDB-sized: 25k) "
                 "and ~20M on ~500k: b ~= 0.72"),
    CapacityRule("graph", ((2_708, 23e3), (169_343, 110e3)),
                 "node samples: Kipf & Welling's 2-layer GCN on Cora (2,708 nodes, 23k "
                 "parameters) and OGB's 3-layer GCN on ogbn-arxiv (169k nodes, 110k): b ~= 0.38"),
)}


def capacity_cap(input_kind: str, n_samples: int) -> int:
    """Largest parameter count the data supports (monotone in ``n_samples``)."""
    return CAPACITY[input_kind].cap(n_samples)


# ---------------------------------------------------------------------------------------------------
# The compound-scaling path of a family
# ---------------------------------------------------------------------------------------------------

# EfficientNet's compound scaling (Tan & Le 2019, eq. 3): depth alpha^phi, width beta^phi with
# alpha * beta^2 ~= 2, so each unit of phi roughly doubles FLOPs with depth and width growing
# together -- balanced, never one to an extreme while the other stays put (until a bound stops it).
ALPHA_DEPTH = 1.2
BETA_WIDTH = 1.1
PHI_STEP = 0.25


def scaling_path(family: Family) -> list[tuple[float, float]]:
    """``(width_mult, depth_mult)`` points from the family's smallest to its largest, both
    non-decreasing (compound scaling clipped to the bounds), rounded to 3 decimals.

    Consecutive points that build the same architecture are dropped later, by the search, which
    knows the parameter counts.
    """
    if family.width is None and family.depth is None:
        return [(1.0, 1.0)]
    lo, hi = [], []
    for bounds, base in ((family.width, BETA_WIDTH), (family.depth, ALPHA_DEPTH)):
        if bounds is not None:
            lo.append(math.log(bounds[0]) / math.log(base))
            hi.append(math.log(bounds[1]) / math.log(base))
    phi_lo, phi_hi = min(lo), max(hi)
    # A grid anchored at phi = 0 (the reference model), plus both ends.
    grid = [k * PHI_STEP for k in range(math.ceil(phi_lo / PHI_STEP - 1e-9),
                                        math.floor(phi_hi / PHI_STEP + 1e-9) + 1)]
    points = []
    for phi in sorted({phi_lo, phi_hi, *grid}):
        w = _clip(BETA_WIDTH ** phi, family.width)
        d = _clip(ALPHA_DEPTH ** phi, family.depth)
        point = (round(w, 3), round(d, 3))
        if not points or point != points[-1]:
            points.append(point)
    return points


def _clip(value: float, bounds: tuple[float, float] | None) -> float:
    if bounds is None:
        return 1.0
    return min(max(value, bounds[0]), bounds[1])


def policy_table() -> str:
    """The rules, families and capacity anchors as readable text (for ``zoo build --policy``)."""
    lines = ["Rules (every row whose condition holds adds its families, in this order):"]
    for r in RULES:
        cond = ", ".join(f"{k}={v}" for k, v in r.when.items()) or "always"
        lines.append(f"  [{r.input_kind}] {r.name}: {', '.join(r.families)} when {cond}\n"
                     f"      {r.reason}")
    lines.append("Families (search bounds):")
    for f in FAMILIES.values():
        lines.append(f"  {f.key}: registry {f.registry}{' ' + str(f.fixed) if f.fixed else ''}, "
                     f"width {f.width}, depth {f.depth}\n      {f.reason}")
    lines.append("Capacity cap by data size, cap(n) = A n^b:")
    for c in CAPACITY.values():
        lines.append(f"  {c.input_kind}: anchors {c.anchors}, b = {c.exponent:.3f}\n"
                     f"      {c.reason}")
    return "\n".join(lines)
