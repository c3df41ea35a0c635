"""Time one ONNX file in ONNX Runtime, in a process that imports only onnxruntime and numpy.

Run as ``python -m zoo.factory._ort_timer FILE --batch-size B --provider cpu --threads T --warmup W
--runs R``; prints one JSON object (the :class:`zoo.factory.timing.Timing` fields plus what was run)
on stdout. :func:`zoo.factory.latency.measure_latency` starts it, so nothing the parent process did
(an export, a warm PyTorch thread pool, another session) disturbs the measurement. It is also
called in-process (``isolate=False``) through :func:`time_onnx`.

Session settings, chosen for an honest number (see ``factory/latency.py``): intra-op threads =
``threads``, one inter-op thread, sequential execution, and thread-pool spinning OFF for both
pools. ORT's default lets idle pool threads spin after each run; that is faster for a process
doing nothing else, but the spinning threads steal the CPU from whatever runs next (a PyTorch
timing measured 30x slower beside a live session on this project's 2-core machine). Exactly one
session exists at a time, and it is released before :func:`time_onnx` returns.

Inputs are random, shaped from the graph: a symbolic ``batch`` axis takes ``batch_size``; any
other symbolic axis (a graph's ``nodes``/``edges``) takes the size of the example the file was
exported with (``zoo.inputs`` metadata). Integer inputs (token ids, edge indices) are drawn in
``[0, high)`` with ``high`` from that metadata, so every index is valid.

This module must not import torch (a test checks it): keep ``factory/__init__.py`` light, since
``python -m zoo.factory._ort_timer`` imports the package first.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys

import numpy as np
import onnxruntime as ort

from zoo.factory.timing import time_callable

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
_NP_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
              "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


def check_provider(provider: str) -> list[str]:
    """ORT execution providers for ``provider`` ('cpu' or 'cuda'); ValueError if unavailable."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider={provider!r} is not accepted: expected one of {sorted(PROVIDERS)}")
    available = ort.get_available_providers()
    if PROVIDERS[provider][0] not in available:
        raise ValueError(f"provider={provider!r} is not available: this onnxruntime "
                         f"({ort.__version__}) offers {available}; install onnxruntime-gpu for CUDA")
    return PROVIDERS[provider]


def session_options(threads: int) -> ort.SessionOptions:
    """Options for an undisturbed, undisturbing measurement (see the module docstring)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: warnings would go to the JSON reader's stderr
    return opts


def random_inputs(session: ort.InferenceSession, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds for every graph input (see the module docstring for the shape rules)."""
    meta = session.get_modelmeta().custom_metadata_map
    examples = {d["name"]: d for d in json.loads(meta.get("zoo.inputs", "[]"))}
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        example = examples.get(inp.name, {})
        shape = []
        for axis, dim in enumerate(inp.shape):
            if isinstance(dim, int) and dim >= 0:
                shape.append(dim)
            elif dim == "batch" or (not example and axis == 0):
                shape.append(batch_size)
            elif example:
                shape.append(int(example["shape"][axis]))
            else:
                raise ValueError(f"input {inp.name!r} axis {axis} is symbolic ({dim!r}) and the file "
                                 f"has no zoo.inputs metadata giving its size; export it with "
                                 f"zoo.export_onnx")
        dtype = _NP_DTYPES.get(inp.type)
        if dtype is None:
            raise ValueError(f"input {inp.name!r} has type {inp.type}, which the timer cannot feed")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[inp.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[inp.name] = rng.integers(0, int(example.get("high", 1)), shape).astype(dtype)
    return feeds


def time_onnx(path: str, *, batch_size: int = 1, provider: str = "cpu", threads: int = 1,
              warmup: int = 10, runs: int = 50, max_time_s: float | None = None) -> dict:
    """Time ``runs`` inference calls of the ONNX file ``path``; a JSON-ready dict.

    Keys: the Timing fields (``median_ms``, ``p90_ms``, ``min_ms``, ``max_ms``, ``mean_ms``,
    ``runs``), ``threads``, ``provider``, ``providers`` (what the session really used),
    ``batch_size``, ``input_shapes``, ``onnxruntime`` (version), ``torch_imported``.
    ``max_time_s`` caps a slow model's warm-up and timing (:func:`zoo.factory.timing.time_callable`).
    """
    providers = check_provider(provider)
    session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
    try:
        feeds = random_inputs(session, batch_size)
        output_names = [o.name for o in session.get_outputs()]
        timing = time_callable(lambda: session.run(output_names, feeds), warmup=warmup, runs=runs,
                               max_time_s=max_time_s)
        used = session.get_providers()
    finally:
        del session  # one session at a time: release its thread pool before anything else runs
        gc.collect()
    return {**timing.to_dict(), "threads": threads, "provider": provider, "providers": used,
            "batch_size": batch_size, "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
            "onnxruntime": ort.__version__, "torch_imported": "torch" in sys.modules}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo.factory._ort_timer", description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--provider", default="cpu", choices=sorted(PROVIDERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        result = time_onnx(args.path, batch_size=args.batch_size, provider=args.provider,
                           threads=args.threads, warmup=args.warmup, runs=args.runs,
                           max_time_s=args.max_seconds)
    except Exception as exc:  # noqa: BLE001 - a process boundary: the parent raises it with context
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
