"""The one timing loop of the project, and a record of what the numbers were measured on.

:func:`time_callable` (and :func:`time_interleaved`, its paired form for comparisons) is used by latency measurement (ONNX Runtime and PyTorch eager) and by every
benchmark; nobody else writes a timing loop. :func:`runtime_info` records the device, the thread
settings and the library versions that belong next to every figure.

This module imports only the standard library, so the isolated ONNX Runtime timer
(``python -m zoo.factory._ort_timer``) starts without importing torch.
"""
from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Callable

# Libraries whose versions are recorded beside every figure (distribution name -> key).
VERSIONED = {"torch": "torch", "onnxruntime": "onnxruntime", "onnx": "onnx", "onnxscript": "onnxscript",
             "timm": "timm", "torch_geometric": "torch-geometric", "numpy": "numpy"}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "KMP_AFFINITY",
              "OMP_WAIT_POLICY", "ORT_NUM_THREADS")
MAX_RUNS_FOR_MIN_TIME = 100_000
MIN_RUNS_FOR_MAX_TIME = 10     # timed calls kept however slow the function (``max_time_s``)


@dataclass(frozen=True)
class Timing:
    """Summary of ``runs`` timed calls, in milliseconds (median, 90th percentile, min, max, mean)."""
    median_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    runs: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> "Timing":
        """Summarise per-call times (ms). The p90 is the nearest-rank percentile."""
        if not samples_ms:
            raise ValueError("samples_ms=[] is not accepted: expected at least one timing")
        ordered = sorted(samples_ms)
        p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
        return cls(median_ms=statistics.median(ordered), p90_ms=p90, min_ms=ordered[0],
                   max_ms=ordered[-1], mean_ms=statistics.fmean(ordered), runs=len(ordered))


def _check_count(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not accepted: expected an integer >= {minimum}")


def time_callable(fn: Callable[[], object], *, warmup: int, runs: int, min_time_s: float | None = None,
                  sync: Callable[[], object] | None = None,
                  max_time_s: float | None = None) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then time each of at least ``runs`` calls.

    With ``min_time_s``, timing continues past ``runs`` until the timed calls add up to
    ``min_time_s`` seconds (at most 100 000 calls), so very fast functions get enough samples.
    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after each call, inside the timed span,
    so asynchronous devices are timed to completion. With ``max_time_s``, a slow function stops
    early: warm-up ends once it took ``max_time_s / 2`` (after at least one call), and timing once
    the timed calls add up to ``max_time_s`` and at least :data:`MIN_RUNS_FOR_MAX_TIME` were timed. The garbage collector is paused while timing
    (as :mod:`timeit` does), so a collection triggered by earlier allocations is not billed to one
    call. Each call is timed on its own with ``time.perf_counter_ns``.
    """
    _check_count("warmup", warmup, 0)
    _check_count("runs", runs, 1)
    if min_time_s is not None and (isinstance(min_time_s, bool) or not isinstance(min_time_s, (int, float))
                                   or not math.isfinite(min_time_s) or min_time_s < 0):
        raise ValueError(f"min_time_s={min_time_s!r} is not accepted: expected None or a number >= 0")
    if max_time_s is not None and (isinstance(max_time_s, bool) or not isinstance(max_time_s, (int, float))
                                   or not math.isfinite(max_time_s) or max_time_s <= 0):
        raise ValueError(f"max_time_s={max_time_s!r} is not accepted: expected None or a number > 0")
    cap_ns = math.inf if max_time_s is None else max_time_s * 1e9
    start = time.perf_counter_ns()
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
        if time.perf_counter_ns() - start >= cap_ns / 2:
            break
    samples: list[float] = []
    total_ns, budget_ns = 0, int((min_time_s or 0.0) * 1e9)
    with _gc_paused():
        while (len(samples) < runs and not (total_ns >= cap_ns
                                            and len(samples) >= MIN_RUNS_FOR_MAX_TIME)) \
                or (total_ns < budget_ns and len(samples) < MAX_RUNS_FOR_MIN_TIME):
            elapsed = _timed_call_ns(fn, sync)
            total_ns += elapsed
            samples.append(elapsed / 1e6)
    return Timing.from_samples(samples)


def time_interleaved(fns: dict[str, Callable[[], object]], *, warmup: int, runs: int,
                     sync: Callable[[], object] | None = None) -> dict[str, Timing]:
    """Time several functions in paired, interleaved runs: one call of each per round.

    For comparisons (ours vs timm, folded vs unfolded): a drift of the machine during the
    measurement (another process, a clock change, a warming cache) hits every function alike
    instead of whichever ran last. The order alternates between rounds (A B, B A, ...) so neither
    always runs right after the other. Compare the medians. Returns ``{name: Timing}``.
    """
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise ValueError(f"fns={fns!r} is not accepted: expected a non-empty dict of name -> callable")
    _check_count("warmup", warmup, 0)
    _check_count("runs", runs, 1)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
            if sync is not None:
                sync()
    samples: dict[str, list[float]] = {name: [] for name in names}
    with _gc_paused():
        for r in range(runs):
            for name in (names if r % 2 == 0 else names[::-1]):
                samples[name].append(_timed_call_ns(fns[name], sync) / 1e6)
    return {name: Timing.from_samples(samples[name]) for name in names}


def _timed_call_ns(fn: Callable[[], object], sync: Callable[[], object] | None) -> int:
    start = time.perf_counter_ns()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter_ns() - start


class _gc_paused:
    """Context manager: collect once, then keep the garbage collector off until exit."""

    def __enter__(self):
        gc.collect()
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self._was_enabled:
            gc.enable()
        return False


@contextlib.contextmanager
def torch_threads(threads: int):
    """Run the block with ``torch.set_num_threads(threads)``, restoring the previous count after.

    (torch is imported here, on use: the rest of this module never imports it.)
    """
    import torch

    _check_count("threads", threads, 1)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (SMT siblings counted once).

    Read from ``/proc/cpuinfo`` (``physical id`` + ``core id`` per processor); where that is
    unavailable, the number of available CPUs. This is the default thread count of latency
    measurement: a second hyper-thread on a core adds little to dense math and adds noise.
    """
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = None
    cores, proc, phys = set(), None, "0"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    proc, phys = int(value), "0"
                elif key == "physical id":
                    phys = value
                elif key == "core id" and (allowed is None or proc in allowed):
                    cores.add((phys, value))
    except (OSError, ValueError):
        cores = set()
    return max(1, min(len(cores), available_cpus())) if cores else available_cpus()


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries behind the figures (None: not installed), and Python's.

    Read from package metadata, so nothing is imported to learn a version.
    """
    versions: dict[str, str | None] = {}
    for key, dist in VERSIONED.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    versions["python"] = platform.python_version()
    return versions


def runtime_info(device: str = "cpu") -> dict:
    """Where and how figures were measured: device name, threads, thread env, load, versions.

    ``device``: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``); for a GPU its name comes from torch. Torch's
    intra-op and inter-op thread counts are recorded when torch is already imported (this function
    never imports it for that); otherwise they are None.
    """
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r} is not accepted: expected 'cpu', 'cuda' or 'cuda:N'")
    torch = sys.modules.get("torch")
    info: dict = {"device_type": device.split(":")[0], "device": cpu_name(), "cpu": cpu_name(),
                  "cpu_count": os.cpu_count(), "available_cpus": available_cpus(),
                  "physical_cores": physical_cores()}
    if info["device_type"] == "cuda":
        import torch  # noqa: F811 - a GPU's name needs torch (the caller is timing torch or ORT-CUDA)

        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} is not accepted: torch sees no CUDA device")
        info["device"] = torch.cuda.get_device_name(torch.device(device))
    info["torch_threads"] = torch.get_num_threads() if torch is not None else None
    info["torch_interop_threads"] = torch.get_num_interop_threads() if torch is not None else None
    info["env"] = {k: os.environ[k] for k in THREAD_ENV if k in os.environ}
    # Other work on the machine while measuring: with more runnable threads than cores, a
    # multi-threaded timing waits for time slices and can read several times slower.
    info["load_average"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    info["versions"] = library_versions()
    info["platform"] = platform.platform()
    return info
