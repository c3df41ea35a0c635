"""The ``zoo`` command: ``zoo list``, ``zoo export``, ``zoo build``.

``build`` is the factory's, imported only when that subcommand runs (zoo never imports factory at
import time).
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    # `zoo build` belongs to the factory (a layer above); main() hands its arguments over unparsed.
    sub.add_parser("build", add_help=False,
                   help="choose the largest model fitting task, data and budgets (zoo build -h)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["build"]:
        from factory.cli import main as build_main  # lazy: the factory sits above zoo

        return build_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad input: a clear message, no traceback
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
