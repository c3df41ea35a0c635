"""The ``zoo`` command: ``zoo list``, ``zoo export``, ``zoo build``, ``zoo check``.

``build`` and ``check`` are the factory's, imported only when that subcommand runs (zoo never
imports factory at import time).
"""
from __future__ import annotations

import argparse
import json
import sys

from .registry import create, get_entry, list_models


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


def _parse_value(text: str):
    """``--arg`` value: a JSON literal (``3``, ``0.5``, ``true``, ``null``, ``[1, 2]``), Python's
    ``True``/``False``/``None``, or else the string itself."""
    python_literals = {"True": True, "False": False, "None": None}
    if text in python_literals:
        return python_literals[text]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--arg {pair!r} is not accepted: expected KEY=VALUE, e.g. --arg width_mult=0.5")
        overrides[key.strip()] = _parse_value(value.strip())
    return overrides


def _model_for_export(args: argparse.Namespace):
    """The model ``zoo export`` writes: a zoo file loaded, or a registry name built."""
    from pathlib import Path

    from .io import load

    overrides = _parse_overrides(args.arg)
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    if args.img_size is not None:
        overrides["img_size"] = args.img_size
    source = args.model
    if source in list_models():
        return create(source, **overrides)
    if Path(source).is_file() or source.endswith(".safetensors"):
        if overrides:
            raise ValueError(f"{', '.join(sorted(overrides))} cannot be changed for a saved model "
                             f"({source}): its architecture is fixed by the weights in the file")
        return load(source)
    get_entry(source)  # raises ValueError naming close registry names
    raise AssertionError("unreachable")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
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
    # `zoo build` belongs to the factory (a layer above); main() hands its arguments over unparsed.
    sub.add_parser("build", add_help=False,
                   help="choose the largest model fitting task, data and budgets (zoo build -h)")
    sub.add_parser("check", add_help=False,
                   help="audit a model against the design principles (zoo check -h)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["build"]:
        from zoo.factory.cli import main as build_main  # lazy: the factory sits above zoo

        return build_main(argv[1:])
    if argv[:1] == ["check"]:
        from zoo.factory.check import main as check_main  # lazy, as build

        return check_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad input: a clear message, no traceback
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
