"""The design policy as data: which candidates fit a task, how big the data lets them be, and where
their multipliers may go. Every rule carries its reason; nothing here runs a model.

Read top to bottom:

* :data:`CANDIDATES` -- the searchable candidates (:class:`Candidate`: a key such as
  ``"mobilenetv2-se"``, the registry name it builds, fixed arguments, the bounds of
  ``width_mult`` / ``depth_mult`` and the reason for them). A candidate is not a registry family
  (``zoo.get_entry(name).family``, e.g. ``"resnet"``): two candidates may build one registry name.
* :data:`RULES` -- task and data -> candidates, in preference order. Every row whose condition
  holds contributes its candidates, in table order. Rows only ever *add* candidates as the data
  grows or a budget loosens, which is half of why ``build`` is monotone (the search is the other
  half, see :mod:`zoo.factory.search`).
* :data:`CAPACITY` and :func:`capacity_cap` -- the largest parameter count the data supports.
* :func:`scaling_path` -- the compound-scaling path a candidate's search walks.

The tasks and what each kind of input means are in :mod:`zoo.factory.tasks`.

Sources: the project's design principles (the "seed", a document given to the project and kept
outside this repository: its decision tree for tabular data and its capacity rule of thumb are
quoted where used);
He et al. 2016 (ResNet), Hu et al. 2018 (SE), Sandler et al. 2018 (MobileNetV2), Szegedy et al.
2015 (Inception), Hochreiter & Schmidhuber 1997 (LSTM), Xiong et al. 2020 (pre-norm
Transformer), Kipf & Welling 2017 (GCN), Li et al. 2018 (GCN over-smoothing), Tan & Le 2019
(EfficientNet compound scaling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .tasks import TASKS  # noqa: F401  (the tasks the rules serve; zoo.factory.check reads them here)


def _fit() -> dict:
    """The fitted constants (``factory/policy_fit.py``), or {} where they were never generated."""
    try:
        from .policy_fit import FIT as fitted
    except ImportError:
        return {}
    return fitted

# ---------------------------------------------------------------------------------------------------
# Candidates and their search bounds
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
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
    flat: bool = False  # takes each sample flattened to one feature vector (C*H*W or T*F)


CANDIDATES: dict[str, Candidate] = {c.key: c for c in (
    Candidate("linear", "linear", None, None,
           "y = Wx + b: the baseline every tabular task starts from; nothing to scale"),
    Candidate("mlp", "mlp", (0.125, 4.0), None,
           "hidden width 32-1024 (x256) at 2 hidden layers, the depth learn.json measured "
           "(the seed's bound of <= 4 layers without skip connections holds)"),
    Candidate("linear-flat", "linear", None, None,
           "the linear baseline over the flattened input (image pixels, series steps x features)",
           flat=True),
    Candidate("mlp-flat", "mlp", (0.125, 1.0), None,
           "an MLP of 2 hidden layers (32-256 wide) over the flattened input: on small images and "
           "small sets of series it learns where deep nets do not (issue 8, learn.json); bounded at "
           "x1, the widest learn.json measured, so that a wider family (a conv net) that the data "
           "allows is preferred to an MLP stretched beyond the evidence", flat=True),
    Candidate("resnet18-small", "resnet18", (0.25, 2.0), (1.0, 2.0),
           "ResNet-18 with the small stem (3x3 stride 1, no max-pool: He et al. 2016 for CIFAR) for "
           "inputs <= 64 px, from x0.25 (16-128 channels, the width learn.json measured)",
           fixed={"stem": "small"}),
    Candidate("mobilenetv2-small", "mobilenetv2", (0.35, 1.4), (1.0, 1.5),
           "MobileNetV2 with the small stem (stride 1 in the stem and first stride-2 stage)",
           fixed={"stem": "small"}),
    Candidate("tcn", "tcn", (0.25, 2.0), None,
           "temporal CNN (1-D residual convolutions, Wang et al. 2017) at the depth learn.json "
           "measured; width x0.25-2"),
    Candidate("resnet18", "resnet18", (1.0, 2.0), (1.0, 2.0),
           "basic-block ResNet from ResNet-18 (64-512 channels, 18 layers) up to twice as wide "
           "and deep (34 layers); narrower stages fall below the 64-512 channel pattern, where "
           "MobileNetV2 is the better small network"),
    Candidate("resnet50", "resnet50", (1.0, 2.0), (1.0, 2.0),
           "bottleneck ResNet from ResNet-50 up: bottlenecks pay off from 50 layers (He et al. "
           "2016), so depth_mult >= 1"),
    Candidate("seresnet18", "seresnet18", (1.0, 2.0), (1.0, 2.0),
           "ResNet-18 layout with squeeze-and-excitation in every block (Hu et al. 2018)"),
    Candidate("seresnet50", "seresnet50", (1.0, 2.0), (1.0, 2.0),
           "ResNet-50 layout with squeeze-and-excitation in every block (Hu et al. 2018)"),
    Candidate("mobilenetv2", "mobilenetv2", (0.35, 1.4), (0.5, 1.5),
           "inverted residuals; width 0.35-1.4 as designed (Sandler et al. 2018); depth 0.5-1.5 "
           "(a deviation: the paper scales width and resolution only)"),
    Candidate("mobilenetv2-se", "mobilenetv2", (0.35, 1.4), (0.5, 1.5),
           "MobileNetV2 with squeeze-and-excitation in its expanded blocks (as MobileNetV3)",
           fixed={"se": True}),
    # Other depths of the same layouts, only when asked for by name (families=...).
    Candidate("resnet34", "resnet34", (1.0, 2.0), (1.0, 2.0), "ResNet-34 layout, scaled up"),
    Candidate("resnet101", "resnet101", (1.0, 2.0), (1.0, 2.0), "ResNet-101 layout, scaled up"),
    Candidate("seresnet34", "seresnet34", (1.0, 2.0), (1.0, 2.0), "SE-ResNet-34 layout, scaled up"),
    Candidate("seresnet101", "seresnet101", (1.0, 2.0), (1.0, 2.0), "SE-ResNet-101 layout, scaled up"),
    Candidate("inception", "inception", (0.5, 2.0), (0.5, 2.0),
           "GoogLeNet-style Inception blocks (multi-scale branches); only when asked for"),
    Candidate("lstm", "lstm", (0.25, 4.0), (0.5, 1.5),
           "32-512 hidden units (x128), 1-3 stacked layers (x2): deeper LSTMs gain little"),
    Candidate("transformer", "transformer", (0.5, 4.0), (0.5, 3.0),
           "pre-norm encoder (Xiong et al. 2020), d_model 64-512 (x128), 2-12 blocks (x4); "
           "residual + pre-norm keep deep stacks trainable"),
    Candidate("gcn", "gcn", (0.5, 8.0), (1.0, 1.5),
           "32-512 hidden (x64) and 2-3 graph convolutions: more layers over-smooth node "
           "features (Li et al. 2018)"),
)}

# ---------------------------------------------------------------------------------------------------
# Rules: task and data -> candidates, in preference order
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """``candidates`` (keys of :data:`CANDIDATES`) join when every condition in ``when`` holds.

    Conditions (all optional): ``min_samples``; ``min_seq_len`` / ``max_seq_len`` (sequence
    steps); ``min_img_size`` /
    ``max_img_size`` (the shorter image side); ``no_latency_budget`` (True: only when
    ``latency_ms`` is None). Only ``min_samples`` varies with the data's size, and only upwards:
    more data never removes a candidate.
    """
    name: str
    input_kind: str
    candidates: tuple[str, ...]
    reason: str
    when: dict = field(default_factory=dict)


LARGE_IMAGE_DATA = 500_000
LARGE_IMAGE_SIDE = 128
LONG_SEQUENCE = 100
TRANSFORMER_MIN_SAMPLES = 10_000

# Evidence-fitted constants (``factory/policy_fit.py``, written by ``python -m
# zoo.benchmarks.fit_policy`` from benchmarks/results/learn*.json, never from a held-out set).
# Each one below names the rows it came from (the ``*_rows`` texts travel into the rules' reasons).
FIT = _fit()
_MS = FIT.get("min_samples", {})
_MS_ROWS = FIT.get("min_samples_rows", {})


def _min_samples(key: str, seed_value: int) -> tuple[int, str]:
    """The fitted threshold of ``key`` and its evidence; the seed's value where no rows exist."""
    rows = _MS_ROWS.get(key, "no rows")
    if rows == "no rows":
        return seed_value, f"no learn.json rows: the seed's {seed_value:,} kept"
    value = _MS.get(key)
    if value is None:  # never good up to the largest n measured: beyond it, the seed's value
        top = (FIT.get("min_samples_max_n") or {}).get(key) or 0
        return (max(seed_value, top + 1),
                f"never within 2 points of the best up to n = {top:,} in learn.json ({rows}); "
                f"beyond the evidence the seed's {seed_value:,}")
    return value, f"learn.json: {rows}"


# tabular: the seed's decision tree says a small MLP from 1k rows; the evidence (iris,
# breast_cancer, diabetes) has MLPs within 2 points of the best from a few dozen rows.
TABULAR_MLP_MIN_SAMPLES, _TAB_MLP_WHY = _min_samples("mlp", 1_000)
# small images (<= SMALL_STEM_MAX_SIDE px): conv nets with the small stem join from this many
# images (digits at 3 sizes, mnist5k); a flat MLP is always a candidate there.
SMALL_STEM_MAX_SIDE = int((FIT.get("small_stem") or {}).get("value") or 64)
_STEM_WHY = (FIT.get("small_stem") or {}).get("rows", "He et al. 2016's CIFAR stem")
IMAGE_CONV_MIN_SAMPLES, _CONV_WHY = _min_samples("resnet18-small", 10_000)
IMAGE_MBV2_MIN_SAMPLES, _MBV2_WHY = _min_samples("mobilenetv2-small", 10_000)
# sequences: the temporal CNN and the LSTM join from these sizes; a flat MLP always.
SEQ_TCN_MIN_SAMPLES, _TCN_WHY = _min_samples("tcn", 1_000)
SEQ_LSTM_MIN_SAMPLES, _LSTM_WHY = _min_samples("lstm", 1_000)

RULES: tuple[Rule, ...] = (
    # tabular
    Rule("tabular-mlp", "tabular", ("mlp",),
         f"tabular data with >= {TABULAR_MLP_MIN_SAMPLES:,} samples: an MLP of 2 hidden layers "
         f"(the seed said 1k; fitted: {_TAB_MLP_WHY})",
         {"min_samples": TABULAR_MLP_MIN_SAMPLES}),
    Rule("tabular-linear", "tabular", ("linear",),
         "tabular data: the linear baseline is always a candidate (start simple; Occam's razor)"),
    # small images (the only sizes learn.json has): flat MLP always, conv nets with the small stem
    Rule("image-small-resnet", "image", ("resnet18-small",),
         f"images <= {SMALL_STEM_MAX_SIDE} px with >= {IMAGE_CONV_MIN_SAMPLES:,} images: ResNet-18 "
         f"with the 3x3 stride-1 stem (He et al. 2016 CIFAR; {_STEM_WHY}); joins at: {_CONV_WHY}",
         {"min_samples": IMAGE_CONV_MIN_SAMPLES, "max_img_size": SMALL_STEM_MAX_SIDE}),
    Rule("image-small-mobilenet", "image", ("mobilenetv2-small",),
         f"images <= {SMALL_STEM_MAX_SIDE} px with >= {IMAGE_MBV2_MIN_SAMPLES:,} images: "
         f"MobileNetV2 with the small stem; joins at: {_MBV2_WHY}",
         {"min_samples": IMAGE_MBV2_MIN_SAMPLES, "max_img_size": SMALL_STEM_MAX_SIDE}),
    Rule("image-small-mlp", "image", ("mlp-flat", "linear-flat"),
         f"images <= {SMALL_STEM_MAX_SIDE} px: an MLP (and the linear baseline) over the flattened "
         "pixels is always a candidate (digits: 99% where an ImageNet-stem MobileNetV2 stayed at "
         "chance, issue 8)", {"max_img_size": SMALL_STEM_MAX_SIDE}),
    # larger images: no learn.json evidence (every set there is <= 28 px): the seed's rules kept
    Rule("image-bottleneck", "image", ("resnet50",),
         f"large data (>= {LARGE_IMAGE_DATA:,} images) and inputs (>= {LARGE_IMAGE_SIDE} px): "
         "bottleneck blocks join the candidates (ResNet-50 and deeper, as for ImageNet)",
         {"min_samples": LARGE_IMAGE_DATA, "min_img_size": LARGE_IMAGE_SIDE}),
    Rule("image-resnet", "image", ("resnet18",),
         f"images > {SMALL_STEM_MAX_SIDE} px are grids: a CNN's locality and weight sharing fit "
         "them; a basic-block ResNet with the ImageNet stem (no learn.json rows at this size)",
         {"min_img_size": SMALL_STEM_MAX_SIDE + 1}),
    Rule("image-se-bottleneck", "image", ("seresnet50",),
         "no latency budget: squeeze-and-excitation is cheap (~10% parameters, <1% FLOPs; its "
         "latency cost on CPU is what makes it expensive elsewhere)",
         {"min_samples": LARGE_IMAGE_DATA, "min_img_size": LARGE_IMAGE_SIDE,
          "no_latency_budget": True}),
    Rule("image-se", "image", ("seresnet18",),
         "no latency budget: squeeze-and-excitation is cheap (~10% parameters, <1% FLOPs)",
         {"no_latency_budget": True, "min_img_size": SMALL_STEM_MAX_SIDE + 1}),
    Rule("image-mobilenet", "image", ("mobilenetv2",),
         "MobileNetV2 where latency binds or the data is small: designed for it (0.35-1.4 width), "
         "it covers the sizes below ResNet-18", {"min_img_size": SMALL_STEM_MAX_SIDE + 1}),
    Rule("image-mobilenet-se", "image", ("mobilenetv2-se",),
         "no latency budget: MobileNetV2 with squeeze-and-excitation is a candidate too",
         {"no_latency_budget": True, "min_img_size": SMALL_STEM_MAX_SIDE + 1}),
    # sequences
    Rule("sequence-transformer", "sequence", ("transformer",),
         f"long sequences (>= {LONG_SEQUENCE} steps) and >= {TRANSFORMER_MIN_SAMPLES:,} samples: "
         "a pre-norm Transformer (attention reaches every step; never on < 10k samples, whose "
         "weak inductive bias needs data; learn.json has no set that large)",
         {"min_seq_len": LONG_SEQUENCE, "min_samples": TRANSFORMER_MIN_SAMPLES}),
    Rule("sequence-tcn", "sequence", ("tcn",),
         f"sequences with >= {SEQ_TCN_MIN_SAMPLES:,} samples: the temporal CNN (1-D residual "
         f"convolutions, Wang et al. 2017); joins at: {_TCN_WHY}",
         {"min_samples": SEQ_TCN_MIN_SAMPLES}),
    Rule("sequence-lstm", "sequence", ("lstm",),
         f"short sequences (< {LONG_SEQUENCE} steps) with >= {SEQ_LSTM_MIN_SAMPLES:,} samples: an "
         f"LSTM (the seed: LSTMs for short sequences; on long ones it stayed near chance in "
         f"learn.json, GunPoint/ArrowHead/Tecator); joins at: {_LSTM_WHY}",
         {"min_samples": SEQ_LSTM_MIN_SAMPLES, "max_seq_len": LONG_SEQUENCE - 1}),
    Rule("sequence-mlp", "sequence", ("mlp-flat", "linear-flat"),
         "sequences: an MLP (and the linear baseline) over the flattened series is always a "
         "candidate (GunPoint: 95% where an LSTM stayed at chance, issue 8)"),
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
    if "min_img_size" in w and (img_size is None or img_size < w["min_img_size"]):
        return False
    if "max_seq_len" in w and (seq_len is None or seq_len > w["max_seq_len"]):
        return False
    if "max_img_size" in w and (img_size is None or img_size > w["max_img_size"]):
        return False
    if w.get("no_latency_budget") and latency_ms is not None:
        return False
    return True


def allowed_candidates(input_kind: str, *, n_samples: int, seq_len: int | None = None,
                       img_size: int | None = None, latency_ms: float | None = None
                       ) -> tuple[list[str], list[Rule]]:
    """The candidate keys the policy allows, in preference order, and the rules that fired."""
    fired = [r for r in RULES if r.input_kind == input_kind
             and rule_matches(r, n_samples=n_samples, seq_len=seq_len, img_size=img_size,
                              latency_ms=latency_ms)]
    keys: list[str] = []
    for rule in fired:
        keys += [k for k in rule.candidates if k not in keys]
    return keys, fired


# ---------------------------------------------------------------------------------------------------
# Capacity cap by data size
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityRule:
    """``cap(n) = k n`` up to ``n_max``, the largest n learn.json measured for this kind (``k``
    parameters per sample, fitted there); beyond it ``max(k n_max, min(k n, A n^b))``: the power
    law through two known-good large-data (samples, parameters) pairs bounds the cap where
    learn.json has no rows. Monotone in n. Without fitted rows: ``A n^b`` alone."""
    input_kind: str
    anchors: tuple[tuple[float, float], tuple[float, float]]
    reason: str
    per_sample: float | None = None
    evidence: str = ""
    n_max: int = 0

    @property
    def exponent(self) -> float:
        (n1, p1), (n2, p2) = self.anchors
        return math.log(p2 / p1) / math.log(n2 / n1)

    def anchor_cap(self, n_samples: int) -> int:
        (n1, p1), _ = self.anchors
        return int(p1 * (n_samples / n1) ** self.exponent)

    def cap(self, n_samples: int) -> int:
        anchored = self.anchor_cap(n_samples)
        if self.per_sample is None:
            return anchored
        k = self.per_sample
        if n_samples <= self.n_max:
            return int(k * n_samples)
        return int(max(k * self.n_max, min(k * n_samples, anchored)))


def _per_sample(kind: str) -> tuple[float | None, str, int]:
    c = (FIT.get("capacity") or {}).get(kind) or {}
    k = c.get("params_per_sample")
    if k is None:
        return None, "no learn.json rows: the anchors alone", 0
    return k, (f"k = {k:g} parameters per sample up to n = {c.get('max_n'):,}, fitted (k range "
               f"{c.get('range')}; picks within 2 points of the best in {c.get('within')} groups "
               f"of learn.json): {c.get('rows')}"), int(c.get("max_n") or 0)


CAPACITY: dict[str, CapacityRule] = {c.input_kind: c for c in (
    CapacityRule("image", ((50_000, 11.7e6), (1_200_000, 25.6e6)),
                 "ResNet-18 (11.7M) on CIFAR's 50k images and ResNet-50 (25.6M) on ImageNet's "
                 "1.2M train well: b ~= 0.25, far more parameters than samples, which weight "
                 "sharing and augmentation allow (the seed's 0.01-0.1 x samples contradicts its "
                 "own examples); below, the fitted k n", *_per_sample("image")),
    CapacityRule("tabular", ((1_000, 1e4), (100_000, 1e6)),
                 "no weight sharing or augmentation: ~10 parameters per sample (the seed's "
                 "sizing); the fitted k n below it; the linear model is always allowed",
                 *_per_sample("tabular")),
    CapacityRule("sequence", ((20_000, 2e6), (500_000, 2e7)),
                 "sequence classifiers of ~2M parameters on ~20k sequences (IMDB-sized: 25k) "
                 "and ~20M on ~500k: b ~= 0.72; the fitted k n below it", *_per_sample("sequence")),
    CapacityRule("graph", ((2_708, 23e3), (169_343, 110e3)),
                 "node samples: Kipf & Welling's 2-layer GCN on Cora (2,708 nodes, 23k "
                 "parameters) and OGB's 3-layer GCN on ogbn-arxiv (169k nodes, 110k): b ~= 0.38; "
                 "the fitted k n below it", *_per_sample("graph")),
)}


def capacity_cap(input_kind: str, n_samples: int) -> int:
    """Largest parameter count the data supports (monotone in ``n_samples``)."""
    return CAPACITY[input_kind].cap(n_samples)


def epochs_needed(input_kind: str) -> int:
    """Epochs a model that learns needed in learn.json (75th percentile of best epoch + 1 over the
    runs within 2 points of their group's best); the training-budget filter asks for this many."""
    e = (FIT.get("epochs_needed") or {}).get(input_kind) or {}
    return int(e.get("value") or DEFAULT_EPOCHS_NEEDED)


DEFAULT_EPOCHS_NEEDED = 10  # zoo.fit's minimum default epochs, where learn.json has no rows


def evidence_rows(input_kind: str) -> list[dict]:
    """learn.json's groups of this kind (not held out): data set, n, best candidate, its params and
    score, and the smallest larger candidate that scored > 2 points lower."""
    return list((FIT.get("evidence") or {}).get(input_kind, []))


# ---------------------------------------------------------------------------------------------------
# The compound-scaling path of a candidate
# ---------------------------------------------------------------------------------------------------

# EfficientNet's compound scaling (Tan & Le 2019, eq. 3): depth alpha^phi, width beta^phi with
# alpha * beta^2 ~= 2, so each unit of phi roughly doubles FLOPs with depth and width growing
# together -- balanced, never one to an extreme while the other stays put (until a bound stops it).
ALPHA_DEPTH = 1.2
BETA_WIDTH = 1.1
PHI_STEP = 0.25


def scaling_path(candidate: Candidate) -> list[tuple[float, float]]:
    """``(width_mult, depth_mult)`` points from the candidate's smallest to its largest, both
    non-decreasing (compound scaling clipped to the bounds), rounded to 3 decimals.

    Consecutive points that build the same architecture are dropped later, by the search, which
    knows the parameter counts.
    """
    if candidate.width is None and candidate.depth is None:
        return [(1.0, 1.0)]
    lo, hi = [], []
    for bounds, base in ((candidate.width, BETA_WIDTH), (candidate.depth, ALPHA_DEPTH)):
        if bounds is not None:
            lo.append(math.log(bounds[0]) / math.log(base))
            hi.append(math.log(bounds[1]) / math.log(base))
    phi_lo, phi_hi = min(lo), max(hi)
    # A grid anchored at phi = 0 (the reference model), plus both ends.
    grid = [k * PHI_STEP for k in range(math.ceil(phi_lo / PHI_STEP - 1e-9),
                                        math.floor(phi_hi / PHI_STEP + 1e-9) + 1)]
    points = []
    for phi in sorted({phi_lo, phi_hi, *grid}):
        w = _clip(BETA_WIDTH ** phi, candidate.width)
        d = _clip(ALPHA_DEPTH ** phi, candidate.depth)
        point = (round(w, 3), round(d, 3))
        if not points or point != points[-1]:
            points.append(point)
    return points


def _clip(value: float, bounds: tuple[float, float] | None) -> float:
    if bounds is None:
        return 1.0
    return min(max(value, bounds[0]), bounds[1])


def policy_table() -> str:
    """The rules, candidates and capacity anchors as readable text."""
    lines = ["Rules (every row whose condition holds adds its candidates, in this order):"]
    for r in RULES:
        cond = ", ".join(f"{k}={v}" for k, v in r.when.items()) or "always"
        lines.append(f"  [{r.input_kind}] {r.name}: {', '.join(r.candidates)} when {cond}\n"
                     f"      {r.reason}")
    lines.append("Candidates (search bounds):")
    for f in CANDIDATES.values():
        lines.append(f"  {f.key}: registry {f.registry}{' ' + str(f.fixed) if f.fixed else ''}, "
                     f"width {f.width}, depth {f.depth}\n      {f.reason}")
    lines.append("Capacity cap by data size, cap(n) = min(k n, A n^b):")
    for c in CAPACITY.values():
        lines.append(f"  {c.input_kind}: k = {c.per_sample}, anchors {c.anchors}, "
                     f"b = {c.exponent:.3f}\n      {c.reason}\n      {c.evidence}")
    return "\n".join(lines)
