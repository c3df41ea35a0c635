"""The ``zoo`` command, assembled here, at the top layer: ``zoo list`` and ``zoo export`` (the
zoo's, :mod:`zoo.cli`), ``zoo build`` (this module) and ``zoo check`` (the factory's audit, :mod:`zoo.factory.check_cli`).
Each command module adds its sub-parser with ``add_subparser(subparsers)``, setting
``func(args) -> int``; bad input and unmeetable budgets exit with status 2 and
``zoo COMMAND: error: ...``, with no traceback.

``zoo build`` chooses, reports and writes the model for a task, data size and machine:

    zoo build image-classification --n-samples 50000 --vram-gb 8 --latency-ms 30 \\
        --input-shape 3,32,32 --num-classes 10 --out out/

prints the decision (the model, its costs against the budgets, the reasons) -- or the spec as
JSON with ``--json`` -- and with ``--out`` writes ``model.safetensors``, ``model.onnx`` and
``spec.json`` there, each atomically. ``--data FILE`` (:mod:`zoo.factory.data_files`) reads
``--n-samples``, ``--input-shape`` and ``--num-classes`` from the data; ``--train`` then trains the
pick on it with :func:`zoo.fit` (``--train-budget-s`` seconds, ``--epochs``) and writes the trained
weights with ``history.json`` and the learning curve ``curve.png`` beside the spec:

    zoo build image-classification --vram-gb none --latency-ms none --data digits.npz \\
        --train --train-budget-s 60 --out out/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo import cli as zoo_cli

from . import check_cli
from .tasks import TASKS


def _budget(text: str) -> float | None:
    if text.lower() in ("none", "inf", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'none' for no bound)")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, "
                                         f"e.g. 3,32,32")


def add_subparser(sub) -> None:
    """Add ``build`` to ``sub`` (an ``argparse`` sub-parsers action)."""
    p = sub.add_parser("build", help="choose the model that learns from this data and fits the memory and latency budgets",
                       description="Choose, report and write the model for a task, data size "
                                   "and machine.",
                       epilog="tasks: " + ", ".join(TASKS))
    p.add_argument("task", help="one of: " + ", ".join(TASKS))
    p.add_argument("--n-samples", type=int,
                   help="training samples (nodes for node tasks); inferred with --data")
    p.add_argument("--vram-gb", type=_budget, required=True,
                   help="training memory budget in GB ('none': no bound)")
    p.add_argument("--latency-ms", type=_budget, required=True,
                   help="batch-1 ONNX Runtime latency budget in ms ('none': no bound)")
    p.add_argument("--input-shape", type=_ints,
                   help="tabular F; image C,H,W (default 3,224,224); sequence T,F; node N,F")
    p.add_argument("--num-classes", type=int, help="classes (classification tasks)")
    p.add_argument("--batch-size", type=int, help="training batch for the memory budget")
    p.add_argument("--families", help="restrict candidates, e.g. mobilenetv2,resnet18")
    p.add_argument("--optimizer", default="adam", help="adam, adamw, sgd, sgd-momentum")
    p.add_argument("--dtype", default="float32", help="training dtype (float32, bfloat16, ...)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--n-edges", type=int, help="edges of the graph (node tasks; default 10/node)")
    p.add_argument("--seed", type=int, default=0, help="seed of the returned model's weights")
    p.add_argument("--out", type=Path, help="write model.safetensors, model.onnx, spec.json here")
    p.add_argument("--data", type=Path, help=".npz (X, y; graphs x, edge_index, y) or .csv "
                   "(with --target): n-samples, input-shape and num-classes are read from it")
    p.add_argument("--target", help="the label column of a .csv --data file")
    p.add_argument("--train", action="store_true", help="train the pick on --data with zoo.fit "
                   "(20%% validation split) and write the trained weights, curve.png, history.json")
    p.add_argument("--train-budget-s", type=float, help="seconds of training: only models that get "
                   "the epochs they need in it (the evidence's, or --epochs)")
    p.add_argument("--epochs", type=int, help="epochs the model must get in --train-budget-s "
                   "(and --train's epochs)")
    p.add_argument("--devices", type=int, default=1, help="data-parallel devices: --vram-gb is "
                   "then per device and --batch-size global")
    p.add_argument("--strategy", default="ddp", help="ddp or fsdp (with --devices > 1)")
    p.add_argument("--json", action="store_true", help="print the spec as JSON, not the report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build)


def write_outputs(model, out: Path) -> list[Path]:
    """``model.safetensors``, ``model.onnx`` and ``spec.json`` in ``out`` (created), atomically."""
    import zoo
    from zoo.atomic import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    paths = [zoo.save(model, out / "model.safetensors"),
             zoo.export_onnx(model, out / "model.onnx")]
    write_text_atomic(out / "spec.json", model.spec.to_json() + "\n")
    paths.append(out / "spec.json")
    return paths


def cmd_build(args: argparse.Namespace) -> int:
    import zoo

    from .data_files import flatten_if, infer

    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    data = None
    n, shape, classes, edges = args.n_samples, args.input_shape, args.num_classes, args.n_edges
    if args.data is not None:
        data = infer(args.data, args.task, target=args.target)
        n = n or data.n_samples
        shape = shape or data.input_shape
        classes = classes or data.num_classes
        edges = edges or data.n_edges
    elif args.train:
        raise ValueError("train=True is not accepted: expected --data FILE to train on")
    if n is None:
        raise ValueError("n_samples=None is not accepted: expected --n-samples N or --data FILE")
    if args.train and args.out is None:
        raise ValueError("out=None is not accepted: expected --out DIR with --train")
    model = zoo.build(args.task, n, args.vram_gb, args.latency_ms,
                      input_shape=shape, num_classes=classes,
                      batch_size=args.batch_size, optimizer=args.optimizer, dtype=args.dtype,
                      device=args.device, families=families, seed=args.seed,
                      progress=not args.quiet, n_edges=edges,
                      train_budget_s=args.train_budget_s, epochs=args.epochs,
                      devices=args.devices, strategy=args.strategy)
    if args.train:
        train = flatten_if(model, data.train)
        val = None if len(train) == 4 else 0.2  # graphs: the nodes of train_mask, no split
        history = zoo.fit(model, train, val, epochs=args.epochs, time_budget_s=args.train_budget_s,
                          seed=args.seed, progress=not args.quiet)
        model.spec.reasons.append(f"trained with zoo.fit on {args.data}: best validation "
                                  f"{history.metric} {history.best.get('val_metric') if history.best else None}"
                                  f" at epoch {history.best_epoch} of {len(history.epochs)}")
    written = write_outputs(model, args.out) if args.out is not None else []
    if args.train:
        import json

        from zoo.atomic import write_text_atomic

        write_text_atomic(args.out / "history.json", json.dumps(history.to_dict(), indent=2) + "\n")
        history.plot(args.out / "curve.png")  # atomic itself
        written += [args.out / "history.json", args.out / "curve.png"]
    if args.json:
        print(model.spec.to_json())
    else:
        print(model.spec.report())
        for path in written:
            print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``zoo`` parser: list, export, build and check."""
    parser = argparse.ArgumentParser(
        prog="zoo", description="Reference models (list, export), the factory that chooses one for "
                                "a task, data and machine (build), and the design audit (check).")
    sub = parser.add_subparsers(dest="command", required=True)
    zoo_cli.add_subparser(sub)
    add_subparser(sub)
    check_cli.add_subparser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``zoo ARGV...``; returns the exit status (2 for bad input, with a one-line message)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad input and BudgetError: a clear message, no traceback
        print(f"zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
