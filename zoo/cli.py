"""The zoo's own commands, ``zoo list`` and ``zoo export``, as sub-parsers.

The ``zoo`` command is one parser assembled in the layer above (:func:`zoo.factory.cli.main`, with
``build`` and ``check``); this module only adds its sub-parsers (:func:`add_subparser`) and never
imports the factory. Each sub-parser sets ``func(args) -> int``.
"""
from __future__ import annotations

import argparse
import json

from .registry import create, get_entry, list_models
from .resolve import model_from, parse_overrides


def _count_params(name: str) -> int:
    model = create(name, device="meta")  # counts without allocating
    return sum(p.numel() for p in model.parameters())


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_models(args.pattern):
        entry = get_entry(name)
        rows.append({"name": name, "family": entry.family, "input": entry.input_kind,
                     "params": _count_params(name), "reference": entry.reference})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no model matches {args.pattern!r}")
        return 1
    print(f"{'name':<14} {'family':<12} {'input':<9} {'params (defaults)':>18}  reference")
    for r in rows:
        print(f"{r['name']:<14} {r['family']:<12} {r['input']:<9} {r['params']:>18,}  {r['reference']}")
    return 0


def _model_for_export(args: argparse.Namespace):
    """The model ``zoo export`` writes: NAME_OR_FILE with ``--arg``/``--num-classes``/``--img-size``."""
    overrides = parse_overrides(args.arg)
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    if args.img_size is not None:
        overrides["img_size"] = args.img_size
    return model_from(args.model, **overrides)


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx_export import dynamic_axes_for, export_onnx

    model = _model_for_export(args)
    path = export_onnx(model, args.out, batch_size=args.batch_size,
                       dynamic_batch=not args.static_batch, opset=args.opset)
    n_params = sum(p.numel() for p in model.parameters())
    dims = sorted({d for axes in dynamic_axes_for(model).values() for d in axes.values()})
    axes = "static shapes" if args.static_batch else f"dynamic {', '.join(dims)}"
    print(f"wrote {path} ({model.config['name']}, {n_params:,} params, {axes}, "
          f"inputs {', '.join(model.input_names)} -> outputs {', '.join(model.output_names)})")
    return 0


def add_list_subparser(sub) -> None:
    """``zoo list [PATTERN] [--json]``."""
    p = sub.add_parser("list", help="registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)


def add_export_subparser(sub) -> None:
    """``zoo export NAME_OR_FILE --out PATH [...]``."""
    p = sub.add_parser("export", help="write a registry model or a saved .safetensors model as ONNX",
                       description="Export a model to one self-contained ONNX file (Conv+BN folded, "
                                   "config in its metadata), written atomically.")
    p.add_argument("model", metavar="NAME_OR_FILE",
                   help="a registry name (see `zoo list`) or a file written by zoo.save()")
    p.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="batch of the traced example (the exported batch is dynamic unless --static-batch)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch axis to --batch-size")
    p.add_argument("--opset", type=int, default=None, metavar="K", help="ONNX opset (default: 18)")
    p.add_argument("--num-classes", type=int, default=None, metavar="K", help="output size (registry names)")
    p.add_argument("--img-size", type=int, default=None, metavar="N",
                   help="input resolution of an image model (registry names)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other builder argument, repeatable: --arg width_mult=0.5 --arg depth_mult=2")
    p.set_defaults(func=cmd_export)


def add_subparser(sub) -> None:
    """Add ``list`` and ``export`` to ``sub`` (an ``argparse`` sub-parsers action)."""
    add_list_subparser(sub)
    add_export_subparser(sub)
