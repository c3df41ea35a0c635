"""``zoo-bench models``: every registered model's size, cost and latency, with timm beside ours.

Per model (registry defaults; ``--img-size`` changes image models' resolution), batch 1:

* parameters, and forward FLOPs counted by PyTorch's ``FlopCounterMode`` on the model itself
  (2 per multiply-add; ops it has no formula for, e.g. element-wise ones, count 0);
* PyTorch eager latency (:func:`zoo.factory.latency.measure_eager_latency`, inference mode);
* ONNX Runtime latency of the model's ONNX export (:func:`zoo.factory.latency.measure_latency`,
  isolated in a fresh process), and eager / ORT;
* where timm has the same architecture, timm's eager latency and ours, in paired interleaved
  runs (:func:`zoo.factory.timing.time_interleaved`), and ours / timm;

and a ``fold_conv_bn`` row (when ``resnet50`` is selected): resnet50 eager, folded
(:func:`zoo.kernels.fold_bn.fold_conv_bn`) vs unfolded, paired and interleaved.

All timings use the same number of threads (``--threads``, default: the physical cores). A model
whose measurement fails (e.g. its export) gets an ``error`` entry instead of figures, the others
are still measured, and the exit status is 1.
"""
from __future__ import annotations

import argparse

import torch

from zoo.factory.timing import physical_cores, runtime_info, time_interleaved, torch_threads

from .report import fmt_count, fmt_figure, figure, plot_figures, print_header, print_table, progress, \
    ratio, write_json

# Our registry name -> timm's name for the same architecture (same parameter names and count).
TIMM_TWINS = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
              "resnet101": "resnet101", "seresnet18": "seresnet18", "seresnet34": "seresnet34",
              "seresnet50": "seresnet50", "seresnet101": "seresnet101",
              "mobilenetv2": "mobilenetv2_100"}
FOLD_MODEL = "resnet50"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default=None, metavar="PATTERN",
                        help="shell-style pattern of registry names, e.g. 'resnet*' (default: all)")
    parser.add_argument("--img-size", type=int, default=None, metavar="N",
                        help="input resolution of image models (default: each model's, 224)")
    parser.add_argument("--runs", type=int, default=30, metavar="N", help="timed runs per figure")
    parser.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed runs first")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="threads for PyTorch and ONNX Runtime (default: physical cores)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write every figure as JSON")
    parser.add_argument("--plot", default=None, metavar="PATH", help="latency per model (.png/.svg)")


def _check(args) -> list[str]:
    import zoo

    for name in ("runs", "warmup", "threads", "img_size"):
        value, minimum = getattr(args, name), 0 if name == "warmup" else 1
        if value is not None and value < minimum:
            raise ValueError(f"--{name.replace('_', '-')}={value} is not accepted: expected >= {minimum}")
    names = zoo.list_models(args.filter)
    if not names:
        raise ValueError(f"--filter={args.filter!r} matches no model; registered: "
                         f"{', '.join(zoo.list_models())}")
    return names


def _build(name: str, img_size: int | None):
    import zoo

    kw = {"img_size": img_size} if img_size and zoo.get_entry(name).input_kind == "image" else {}
    torch.manual_seed(0)
    return zoo.create(name, **kw).eval()


def measure_model(name: str, args, threads: int) -> dict:
    """One row: params, FLOPs, eager and ORT latency (and timm's) of ``name`` at batch 1."""
    import tempfile
    from pathlib import Path

    import zoo
    from zoo.factory.latency import measure_eager_latency, measure_latency

    model = _build(name, args.img_size)
    inputs = model.example_inputs(batch_size=1)
    entry = zoo.get_entry(name)
    row = {"model": name, "family": entry.family, "input_shapes": [list(t.shape) for t in inputs],
           "params": sum(p.numel() for p in model.parameters()),
           "flops": count_flops(model, inputs)}
    eager = measure_eager_latency(model, inputs, warmup=args.warmup, runs=args.runs, threads=threads)
    row["eager"] = figure(eager)
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        path = zoo.export_onnx(model, Path(tmp) / f"{name}.onnx")
        onnx = measure_latency(path, threads=threads, warmup=args.warmup, runs=args.runs, isolate=True)
    row["onnx"] = figure(onnx)
    row["eager_over_onnx"] = ratio(row["eager"], row["onnx"])
    row["timm"] = _timm_pair(name, model, inputs, args, threads) if name in TIMM_TWINS else None
    return row


def count_flops(model, inputs) -> int:
    """Forward FLOPs of ``model(*inputs)`` by ``torch.utils.flop_counter.FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops())


def _timm_pair(name: str, model, inputs, args, threads: int) -> dict:
    import timm

    cfg = model.config
    torch.manual_seed(0)
    theirs = timm.create_model(TIMM_TWINS[name], pretrained=False, num_classes=cfg["num_classes"],
                               in_chans=cfg.get("in_chans", 3)).eval()
    with torch_threads(threads), torch.inference_mode():
        t = time_interleaved({"ours": lambda: model(*inputs), "timm": lambda: theirs(*inputs)},
                             warmup=args.warmup, runs=args.runs)
    ours, tm = figure(t["ours"]), figure(t["timm"])
    return {"timm_name": TIMM_TWINS[name], "ours": ours, "timm": tm, "ours_over_timm": ratio(ours, tm)}


def measure_fold(args, threads: int) -> dict:
    """resnet50 eager batch 1: folded vs unfolded, paired, and their largest output difference."""
    from zoo.kernels.fold_bn import fold_conv_bn

    model = _build(FOLD_MODEL, args.img_size)
    folded = fold_conv_bn(model)
    x = model.example_inputs(batch_size=1)
    with torch_threads(threads), torch.inference_mode():
        diff = float((model(*x) - folded(*x)).abs().max())
        t = time_interleaved({"unfolded": lambda: model(*x), "folded": lambda: folded(*x)},
                             warmup=args.warmup, runs=args.runs)
    unfolded, fol = figure(t["unfolded"]), figure(t["folded"])
    return {"model": FOLD_MODEL, "input_shapes": [list(v.shape) for v in x], "unfolded": unfolded,
            "folded": fol, "folded_over_unfolded": ratio(fol, unfolded), "max_abs_diff": diff}


def run(args: argparse.Namespace) -> int:
    names = _check(args)
    threads = args.threads or physical_cores()
    info = runtime_info()
    info["bench_threads"] = threads
    print_header("models", info)
    print(f"batch 1, {args.warmup} warm-up + {args.runs} timed runs per figure, {threads} threads "
          f"(torch and ONNX Runtime; ORT isolated in a subprocess, spinning off); "
          f"figures: median [min-max]\n")
    rows = []
    for name in progress(names, desc="models"):
        try:
            rows.append(measure_model(name, args, threads))
        except Exception as exc:  # noqa: BLE001 - one model's failure must not lose the others'
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            rows.append({"model": name, "error": message})
    fold = measure_fold(args, threads) if FOLD_MODEL in names else None

    for r in rows:
        r["_timm"] = r["timm"]["timm"] if r.get("timm") else None
        r["_ours_timm"] = r["timm"]["ours_over_timm"] if r.get("timm") else None
    print_table(rows, [("model", "model"), ("params", "params", fmt_count),
                       ("flops", "FLOPs", fmt_count), ("eager", "eager ms"),
                       ("onnx", "ONNX Runtime ms"), ("eager_over_onnx", "eager/ORT"),
                       ("_timm", "timm eager ms (paired)"), ("_ours_timm", "ours/timm")])
    for r in rows:
        del r["_timm"], r["_ours_timm"]
    failed = [r for r in rows if "error" in r]
    for r in failed:
        print(f"{r['model']}: FAILED: {r['error']}")
    if fold is not None:
        print(f"\nfold_conv_bn, {fold['model']} eager {fold['input_shapes'][0]}: "
              f"unfolded {fmt_figure(fold['unfolded'])} ms, folded {fmt_figure(fold['folded'])} ms, "
              f"folded/unfolded {fmt_figure(fold['folded_over_unfolded'])} "
              f"(max |difference| {fold['max_abs_diff']:.2e})")
    if args.json:
        write_json(args.json, "models", info, vars(args), {"models": rows, "fold_conv_bn": fold})
        print(f"\nwrote {args.json}")
    if args.plot:
        plot_figures(args.plot, [r["model"] for r in rows],
                     {"PyTorch eager": [r.get("eager") for r in rows],
                      "ONNX Runtime": [r.get("onnx") for r in rows],
                      "timm eager (paired)": [r["timm"]["timm"] if r.get("timm") else None
                                              for r in rows]},
                     title=f"batch 1, {threads} threads, {info['device']}")
        print(f"wrote {args.plot}")
    return 1 if failed else 0
