"""Inference latency, measured honestly: the ONNX export in ONNX Runtime, or PyTorch eager.

:func:`measure_latency` times the very file a user deploys (``zoo.export_onnx``'s output) in ONNX
Runtime, batch 1 by default, as the median of ``runs`` calls after ``warmup`` untimed ones.

Why the care (seen on this project's 2-core machine): measurements disturb one another. ORT's
intra-op pool spins after each run by default and steals the CPU from whatever runs next; a timm
ResNet-18 timed 16 ms in eager PyTorch on its own, 50 ms after a legacy ONNX export in the same
process, and 530 ms after two exports with an ORT session alive beside it. So:

* ORT sessions are made with spinning off (intra- and inter-op), ``threads`` intra-op threads
  (default: the physical cores available), one inter-op thread, sequential execution; one
  session at a time, released before returning (``factory/_ort_timer.py``);
* with ``isolate=True`` (the default) the timing runs in a fresh subprocess
  (``python -m zoo.factory._ort_timer``) that imports only onnxruntime and numpy, so nothing this
  process did (an export, a warm PyTorch pool) disturbs it, and nothing it does outlives it.

:func:`measure_eager_latency` times PyTorch eager under ``torch.inference_mode()`` through the same
:func:`zoo.factory.timing.time_callable`, so the two figures are comparable.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from zoo import validation

from .timing import Timing, library_versions, physical_cores, time_callable, torch_threads

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_SUBPROCESS_TIMEOUT_S = 600


@dataclass(frozen=True)
class LatencyResult:
    """One latency measurement, in milliseconds, with what it was measured with.

    ``provider``: ``"cpu"``/``"cuda"`` (ONNX Runtime) or ``"torch-eager-cpu"``/``"torch-eager-cuda"``.
    ``versions``: library versions (torch, onnxruntime, onnx, ..., python).
    """
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    runs: int
    threads: int
    provider: str
    versions: dict = field(default_factory=dict)
    batch_size: int = 1
    isolated: bool = False
    input_shapes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def timing(self) -> Timing:
        return Timing(self.median_ms, self.p90_ms, self.min_ms, self.max_ms, self.mean_ms, self.runs)


def _resolve_threads(threads) -> int:
    if threads is None:
        return physical_cores()
    return validation.positive_int("threads", threads)


def measure_latency(model_or_onnx_path, *, batch_size: int = 1, provider: str = "cpu",
                    threads: int | None = None, warmup: int = 10, runs: int = 50,
                    isolate: bool = True) -> LatencyResult:
    """Median (p90, min, max) inference latency of an ONNX file, or of a model's ONNX export.

    Args:
        model_or_onnx_path: a zoo model (exported first, with :func:`zoo.export_onnx`'s defaults,
            to a temporary file that is removed afterwards) or the path of an ``.onnx`` file.
        batch_size: the batch fed to a dynamic ``batch`` axis. Graph models are timed at the
            node and edge counts of the example they were exported with.
        provider: ``"cpu"``, or ``"cuda"`` when ``onnxruntime.get_available_providers()`` offers
            ``CUDAExecutionProvider`` (``ValueError`` otherwise). CUDA timings include the copies
            of the inputs to, and outputs from, the GPU — what a caller of ``session.run`` waits.
        threads: ORT intra-op threads; default: the physical cores available to this process.
        warmup, runs: untimed calls, then timed calls.
        isolate: time in a fresh subprocess (see the module docstring). ``False`` times in this
            process: faster to start, but exposed to whatever this process did before.
    """
    from zoo.factory._ort_timer import check_provider

    validation.positive_int("batch_size", batch_size)
    validation.non_negative_int("warmup", warmup)
    validation.positive_int("runs", runs)
    check_provider(provider)
    threads = _resolve_threads(threads)
    if isinstance(model_or_onnx_path, nn.Module):
        import zoo

        with tempfile.TemporaryDirectory(prefix="zoo-latency-") as tmp:
            path = zoo.export_onnx(model_or_onnx_path, Path(tmp) / "model.onnx")
            return _time_file(path, batch_size, provider, threads, warmup, runs, isolate)
    if not isinstance(model_or_onnx_path, (str, os.PathLike)):
        raise ValueError(f"model_or_onnx_path={type(model_or_onnx_path).__name__} is not accepted: "
                         f"expected a zoo model or the path of an .onnx file")
    path = Path(model_or_onnx_path)
    if not path.is_file():
        raise ValueError(f"model_or_onnx_path={str(path)!r} is not accepted: no such file")
    return _time_file(path, batch_size, provider, threads, warmup, runs, isolate)


def _time_file(path: Path, batch_size: int, provider: str, threads: int, warmup: int, runs: int,
               isolate: bool, max_time_s: float | None = None) -> LatencyResult:
    if isolate:
        out = _run_isolated(path, batch_size, provider, threads, warmup, runs, max_time_s)
    else:
        from zoo.factory._ort_timer import time_onnx

        out = time_onnx(str(path), batch_size=batch_size, provider=provider, threads=threads,
                        warmup=warmup, runs=runs, max_time_s=max_time_s)
    versions = library_versions()
    versions["onnxruntime"] = out["onnxruntime"]
    return LatencyResult(median_ms=out["median_ms"], p90_ms=out["p90_ms"], min_ms=out["min_ms"],
                         max_ms=out["max_ms"], mean_ms=out["mean_ms"], runs=out["runs"],
                         threads=out["threads"], provider=provider, versions=versions,
                         batch_size=batch_size, isolated=isolate, input_shapes=out["input_shapes"])


def _run_isolated(path: Path, batch_size: int, provider: str, threads: int, warmup: int,
                  runs: int, max_time_s: float | None = None) -> dict:
    """Run ``python -m zoo.factory._ort_timer`` on ``path`` and return its JSON answer."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "zoo.factory._ort_timer", str(path), "--batch-size", str(batch_size),
           "--provider", provider, "--threads", str(threads), "--warmup", str(warmup),
           "--runs", str(runs)] + ([] if max_time_s is None else ["--max-seconds", str(max_time_s)])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=_SUBPROCESS_TIMEOUT_S,
                          check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"ONNX Runtime timer on {path} exited with code {proc.returncode} and no "
                           f"result; stderr: {proc.stderr.strip()[-2000:]}") from None
    if "error" in out:
        raise RuntimeError(f"ONNX Runtime timing of {path} failed: {out['error']}")
    return out


def measure_eager_latency(model: nn.Module, inputs, *, warmup: int = 10, runs: int = 50,
                          threads: int | None = None) -> LatencyResult:
    """Median (p90, min, max) latency of ``model(*inputs)`` in PyTorch eager mode.

    Timed under ``torch.inference_mode()`` with the model in eval mode (its previous mode is
    restored afterwards), through :func:`zoo.factory.timing.time_callable`; on CUDA each call is
    synchronised. ``threads`` (default: the physical cores available, as for ONNX Runtime) is
    set with ``torch.set_num_threads`` for the measurement and restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module")
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise ValueError("inputs is not accepted: expected a tensor or a non-empty tuple of tensors")
    validation.non_negative_int("warmup", warmup)
    validation.positive_int("runs", runs)
    threads = _resolve_threads(threads)
    names = list(getattr(model, "input_names", ()))[:len(inputs)]
    names += [f"input{i}" for i in range(len(names), len(inputs))]
    cuda = inputs[0].device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None
    was_training = model.training
    model.eval()
    try:
        with torch_threads(threads), torch.inference_mode():
            timing = time_callable(lambda: model(*inputs), warmup=warmup, runs=runs, sync=sync)
    finally:
        model.train(was_training)
    return LatencyResult(**timing.to_dict(), threads=threads,
                         provider="torch-eager-cuda" if cuda else "torch-eager-cpu",
                         versions=library_versions(), batch_size=int(inputs[0].shape[0]),
                         isolated=False, input_shapes=dict(zip(names, (list(t.shape) for t in inputs))))
