"""The model builders' arguments: one table saying how each is checked, through :mod:`zoo.validation`.

An argument means the same thing in every family (``hidden`` is a width wherever it appears), so
one table keyed by name checks them all and every family refuses a bad value with the same message:

    ValueError: hidden=0 is not accepted: expected an integer >= 1 and <= 2147483647

:func:`zoo.registry.register_model` refuses a builder with an argument this table lacks (unless the
builder brings its own check, ``checks=``), and every builder checks its arguments here before it
builds anything, whether called through :func:`zoo.create` or directly. Model constructors check
the arguments they take with :func:`check` too. What depends on two arguments (an image family's
smallest input for its ``stem``, Transformer heads dividing the width) is checked in the builder,
also through :mod:`zoo.validation`.

Upper bounds keep a typo from hanging the process or overflowing torch; they are far above any
model this project builds:

- sizes (widths, classes, features, lengths) at most ``2**31 - 1``: torch and ONNX Runtime index a
  dimension with 32-bit integers in many kernels;
- layer counts at most 1,000 and multipliers at most 64: ResNet-1001 (He et al. 2016) is about the
  deepest network trained in the literature, and ResNet-101 at 64x width and depth would hold
  about 10^13 parameters. A config saying ``depth_mult: 1e5`` is refused at once instead of
  building millions of blocks.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

from . import validation as v

SIZE_MAX = 2**31 - 1
COUNT_MAX = 1000
MULTIPLIER_MAX = 64.0
# Image stems: "imagenet" (the reference networks' stem, for inputs of about 128 px and more) and
# "small" (stride 1, no early pooling, for inputs of about 64 px and less); see zoo.models._image.
STEMS = ("imagenet", "small")
NORMS = (None, "batchnorm", "layernorm")

Check = Callable[[str, Any], Any]

ARGUMENTS: dict[str, Check] = {
    # What the model maps from and to.
    "num_classes": partial(v.positive_int, maximum=SIZE_MAX),
    "in_features": partial(v.positive_int, maximum=SIZE_MAX),
    "in_chans": partial(v.positive_int, maximum=SIZE_MAX),
    "img_size": partial(v.positive_int, maximum=SIZE_MAX),   # the family's minimum: in its builder
    "seq_len": partial(v.positive_int, maximum=SIZE_MAX),
    "vocab_size": partial(v.optional, v.positive_int, maximum=SIZE_MAX),  # None: float features
    "num_nodes": partial(v.positive_int, maximum=SIZE_MAX),
    # Widths and depths before scaling.
    "hidden": partial(v.positive_int, maximum=SIZE_MAX),
    "d_model": partial(v.positive_int, maximum=SIZE_MAX),
    "num_heads": partial(v.positive_int, maximum=SIZE_MAX),
    "layers": partial(v.positive_int, maximum=COUNT_MAX),
    "depth": partial(v.positive_int, maximum=COUNT_MAX),
    "mlp_ratio": partial(v.positive_number, maximum=MULTIPLIER_MAX),
    "width_mult": partial(v.positive_number, maximum=MULTIPLIER_MAX),
    "depth_mult": partial(v.positive_number, maximum=MULTIPLIER_MAX),
    # Options.
    "dropout": v.fraction,
    "drop_rate": v.fraction,
    "bidirectional": v.boolean,
    "se": v.boolean,
    "stem": partial(v.choice, choices=STEMS),
    "norm": partial(v.choice, choices=NORMS),
    # Placement: never part of a config.
    "device": v.device,
    "dtype": v.dtype,
}


def check(**arguments: Any) -> dict[str, Any]:
    """Every argument checked by its row of :data:`ARGUMENTS`; returns them converted
    (``"float32"`` -> ``torch.float32``, a NumPy integer -> ``int``). The first bad one raises
    ``ValueError`` naming it, its value and what is accepted."""
    return check_all(arguments)


def check_all(arguments: Mapping[str, Any], checks: Mapping[str, Check] | None = None) -> dict[str, Any]:
    """:func:`check` for a mapping; ``checks`` adds or overrides rows of :data:`ARGUMENTS`."""
    table = {**ARGUMENTS, **(checks or {})}
    out = {}
    for name, value in arguments.items():
        if name not in table:
            raise TypeError(f"argument {name!r} has no check: add it to zoo.arguments.ARGUMENTS "
                            f"or pass checks={{{name!r}: ...}} to register_model")
        out[name] = table[name](name, value)
    return out


def placement(device: Any = None, dtype: Any = None) -> dict[str, Any]:
    """``device``/``dtype`` checked and converted, as the ``**fk`` every constructor passes down."""
    return {"device": v.device("device", device), "dtype": v.dtype("dtype", dtype)}
