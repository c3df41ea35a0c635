"""GPU checks that cannot run on a CPU-only machine: ``python -m zoo.benchmarks.gpu_check``.

UNTESTED where it was written (no GPU). On a CUDA machine it checks, per case, in a fresh process:

1. the estimate against what the process takes from the device: the caching allocator's reserved
   peak (``torch.cuda.max_memory_reserved``: block rounding and fragmentation included) plus the
   CUDA context, read as ``(total - free)`` from ``torch.cuda.mem_get_info`` minus the reserved
   bytes once the context exists. Printed: the estimate (allocated + the caching allocator's
   reserved slack, :mod:`zoo.factory.cuda_cache` + context), measured allocated peak, reserved
   peak, context, and the estimate's error against reserved + context;
2. that a model trains under ``torch.cuda.set_per_process_memory_fraction(V / total)`` for a
   budget ``V`` = its estimated reserved + context + 10 %, without running out of memory;
3. ONNX Runtime latency with ``CUDAExecutionProvider`` where ``onnxruntime-gpu`` is installed.

Figures go to ``benchmarks/results/gpu_check.json`` (device named). ``--child`` is internal.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = [  # (config, batch)
    ({"name": "mlp", "in_features": 1000, "hidden": 2048, "depth": 2, "num_classes": 10}, 256),
    ({"name": "resnet18", "num_classes": 10, "img_size": 32}, 64),
    ({"name": "transformer", "in_features": 8, "seq_len": 128, "num_classes": 5}, 32),
    ({"name": "lstm", "in_features": 8, "seq_len": 30, "hidden": 512, "layers": 2,
      "num_classes": 5}, 128),
    ({"name": "gcn", "in_features": 128, "hidden": 256, "num_nodes": 20000, "num_classes": 5}, 1),
]


def child(req: dict) -> dict:
    """One case in this fresh process: steps, then the allocator's and the driver's figures."""
    import torch

    import zoo
    from zoo.factory.train_step import make_inputs, make_loss, make_optimizer

    torch.cuda.init()
    total = torch.cuda.mem_get_info()[1]
    if req.get("fraction"):
        torch.cuda.set_per_process_memory_fraction(req["fraction"])
    torch.zeros(1, device="cuda")                       # context created
    free0, _ = torch.cuda.mem_get_info()
    context = (total - free0) - torch.cuda.memory_reserved()
    model = zoo.from_config(req["config"], device="cuda").train()
    opt = make_optimizer("adam", model.parameters())
    oom = False
    try:
        for _ in range(3):
            loss = make_loss(model(*make_inputs(model, req["batch_size"], None)), "cross_entropy")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
    except torch.OutOfMemoryError:
        oom = True
    return {"allocated_peak": torch.cuda.max_memory_allocated(),
            "reserved_peak": torch.cuda.max_memory_reserved(), "context": context,
            "total": total, "oom": oom, "device": torch.cuda.get_device_name()}


def _spawn(req: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "zoo.benchmarks.gpu_check", "--child",
                          json.dumps(req)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ort_latency(config: dict, batch: int) -> float | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    import tempfile

    import zoo
    model = zoo.from_config(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.onnx"
        zoo.export_onnx(model, path)
        sess = ort.InferenceSession(path, providers=["CUDAExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), model.example_inputs(batch))}
        for _ in range(5):
            sess.run(None, feeds)
        t = time.perf_counter()
        for _ in range(20):
            sess.run(None, feeds)
        return (time.perf_counter() - t) / 20 * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.benchmarks.gpu_check")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    import torch
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    from zoo.benchmarks.report import write_json
    from zoo.factory.training_memory import estimate_training_memory

    results, mib = [], 1024 ** 2
    for config, batch in CASES:
        est = estimate_training_memory(config, batch_size=batch, device="cuda")
        m = _spawn({"config": config, "batch_size": batch})
        seen = m["reserved_peak"] + m["context"]
        predicted = est.total   # traced + workspaces + reserved slack + context
        budget = 1.1 * predicted
        fit = _spawn({"config": config, "batch_size": batch, "fraction": budget / m["total"]})
        row = {"config": config, "batch_size": batch, "estimate_allocated": est.allocated,
               "estimate_reserved_slack": est.allocator, "estimate_context": est.context,
               "estimate_with_context": predicted, **m,
               "error_vs_reserved_plus_context": 100 * (predicted / seen - 1),
               "budget_bytes": budget, "oom_under_budget": fit["oom"],
               "ort_cuda_ms": _ort_latency(config, batch)}
        results.append(row)
        print(f"{config['name']:12s} est {predicted / mib:8.1f} MiB | allocated {m['allocated_peak'] / mib:8.1f}"
              f" reserved {m['reserved_peak'] / mib:8.1f} context {m['context'] / mib:6.1f} | "
              f"error {row['error_vs_reserved_plus_context']:+.1f} % | OOM at budget: {fit['oom']}"
              f" | ORT CUDA {row['ort_cuda_ms']} ms", flush=True)
    write_json(args.json, "gpu_check", {"device": results[0]["device"]}, {}, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
