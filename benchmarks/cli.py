"""``zoo-bench`` (also ``python -m zoo.benchmarks``): the benchmark CLI, one subcommand per suite.

Each suite is the module ``zoo.benchmarks.suite_<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status), imported only when its subcommand runs (or when its
options are listed), so one suite's heavy imports never slow another. A suite module that is not
there yet is reported as such instead of breaking the CLI.

Output conventions (see :mod:`zoo.benchmarks.report`): a header with the device, threads and versions;
every figure as median [min-max]; ``--json PATH`` with every figure and the runtime info.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUITES = ("models", "kernels", "memory", "build", "learn", "export", "distributed")
DESCRIPTIONS = {
    "models": "per registered model: params, FLOPs, eager vs ONNX Runtime latency, timm twins, BN folding",
    "kernels": "each kernel vs its reference twin and the library users would otherwise use",
    "memory": "training-memory estimate vs measured peak",
    "build": "zoo build timings",
    "export": "zoo.export_onnx time per model (cold and warm) and vs sequence length / edge count",
    "distributed": "per-device training memory under DDP and FSDP2 (1 to 512 devices) vs Gloo runs",
    "learn": "learning curves on real offline data sets: score vs parameters per n, trained by zoo.fit",
}


def _load_suite(name: str):
    """The suite module, or None when it does not exist (yet). Other import errors propagate."""
    module = f"zoo.benchmarks.suite_{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo-bench", description="Benchmarks of the zoo: one "
                                     "subcommand per suite; figures are median [min-max].")
    sub = parser.add_subparsers(dest="suite", required=True, metavar="SUITE")
    # Only the chosen suite is imported; `zoo-bench -h` lists every suite without importing any.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name in SUITES:
        p = sub.add_parser(name, help=DESCRIPTIONS.get(name, ""), description=DESCRIPTIONS.get(name))
        if name == chosen:
            module = _load_suite(name)
            if module is not None:
                module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        print(f"zoo-bench {args.suite}: error: this suite is not available yet "
              f"(module benchmarks/suite_{args.suite}.py is missing)", file=sys.stderr)
        return 2
    del args._module
    try:
        return int(module.run(args) or 0)
    except (ValueError, ModuleNotFoundError) as exc:  # bad input, a missing extra: a message
        print(f"zoo-bench {args.suite}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
