"""zoo check: audit a model -- the user's own, a registry name or a saved file.

    zoo check mypkg.models:Net --input-shape 3,32,32 --task image-classification --n-samples 1000
    zoo check resnet18 --arg img_size=64 --task image-classification --overfit-batch
    zoo check model.safetensors --history curves.json --json

MODULE:ATTR names a model, or a function (or class) that returns one when called without
arguments, importable from the current directory (added to sys.path, as pytest and uvicorn do).
Prints the report, or JSON with --json. Exit status: 0 when no finding fails, 1 when one does,
2 for bad input.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

PROG = "zoo check"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors in the same form as ours
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, "
                                         f"e.g. 3,32,32") from None


def _arguments(p: argparse.ArgumentParser) -> None:
    from . import policy

    p.add_argument("model", metavar="MODULE:ATTR|NAME|FILE",
                   help="your model (module:attribute, a model or a function returning one), a "
                        "registry name (with --arg overrides) or a file written by zoo.save()")
    p.add_argument("--input-shape", type=_ints, metavar="DIMS",
                   help="one sample's shape, e.g. 3,32,32 (the batch is prepended); needed for "
                        "models without example_inputs()")
    p.add_argument("--task", metavar="T", help=f"the task: {', '.join(policy.TASKS)}")
    p.add_argument("--n-samples", type=int, metavar="N",
                   help="training-set size (nodes for graphs)")
    p.add_argument("--history", metavar="JSON",
                   help="learning curves to diagnose: a zoo.fit History saved with to_dict(), or "
                        '{"train": [...], "val": [...]}')
    p.add_argument("--target", type=float, metavar="X",
                   help="the train metric below which curves underfit (default 0.9, ours)")
    p.add_argument("--overfit-batch", action="store_true",
                   help="also check that one small batch can be fitted (Adam, up to 200 steps)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N",
                   help="batch of the traced step's generated inputs (default 8)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder argument for a registry name, repeatable: --arg img_size=64")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_subparser(subparsers) -> None:
    """Add ``check`` to the ``zoo`` command's sub-parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("check", help="audit any PyTorch model against the design principles",
                              description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[2:]))
    _arguments(p)
    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.splitlines()[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n".join(__doc__.splitlines()[2:]))
    _arguments(p)
    return p


def _user_object(spec: str):
    """``module:attr`` (``attr`` may be dotted) from the user's code, the cwd importable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model={spec!r} is not accepted: expected MODULE:ATTR, e.g. mynet:Net")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model={spec!r} is not accepted: cannot import {module_name!r} from "
                         f"{cwd} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model={spec!r} is not accepted: {module_name} has no attribute "
                             f"{attr!r}")
        obj = getattr(obj, part)
    return obj


def resolve_model(spec: str, overrides: dict):
    """The model ``spec`` names: ``MODULE:ATTR`` (a module, or a callable returning one), else a
    registry name or saved file through :func:`zoo.model_from`."""
    import torch.nn as nn

    import zoo

    if ":" in spec and not os.path.exists(spec):
        if overrides:
            raise ValueError(f"--arg {', '.join(overrides)} is not accepted for {spec}: --arg "
                             f"overrides apply to registry names")
        obj = _user_object(spec)
        if not isinstance(obj, nn.Module) and callable(obj):
            obj = obj()
        if not isinstance(obj, nn.Module):
            raise ValueError(f"model={spec!r} is not accepted: expected a torch.nn.Module or a "
                             f"function returning one, got {type(obj).__name__}")
        return obj
    return zoo.model_from(spec, **overrides)


def run(args: argparse.Namespace) -> int:
    """``zoo check`` on parsed arguments; the exit status."""
    import torch

    from zoo import validation as v
    from zoo.resolve import parse_overrides

    from . import policy
    from .check import check

    try:
        v.optional(v.choice, "task", args.task, choices=policy.TASKS)  # before building anything
        overrides = parse_overrides(args.arg)
        torch.manual_seed(0)  # a registry name builds the same random weights every run
        model = resolve_model(args.model, overrides)
        report = check(model, task=args.task, n_samples=args.n_samples,
                       input_shape=args.input_shape, history=args.history,
                       overfit_batch=args.overfit_batch, batch_size=args.batch_size,
                       target=args.target)
    except ValueError as exc:  # bad input (and zoo.ModelFileError): a clear message, no traceback
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.report())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``zoo check`` run directly (the ``zoo`` command assembles :func:`add_subparser`)."""
    return run(build_parser().parse_args(sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())
