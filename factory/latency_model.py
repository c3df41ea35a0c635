"""Latency predicted from what was measured, and a margin from the measured spread, per machine.

Every ONNX Runtime latency the search measures is kept in a per-machine JSON file under the
user's cache directory (:func:`zoo.factory.user_cache.cache_dir`, sub-folder ``latency``), keyed
by :func:`machine_key` -- CPU model, ORT threads, provider, the onnxruntime version and
:data:`CACHE_VERSION`. A file written under another key (a new ORT, other
threads, another CPU) is ignored, so a version change invalidates it. Writes are atomic
(:func:`zoo.atomic.write_text_atomic`); concurrent writers lose at most each other's additions.

**Prediction.** Latency is modelled per candidate as a power law of inference FLOPs F,
``log t = a + b log F``, fitted by least squares to that candidate's measurements (``b`` kept in
[:data:`MIN_SLOPE`, :data:`MAX_SLOPE`]); with one measurement the line goes through it with the
pooled slope; with none, the pooled fit over every candidate of this machine is used.

**Margin.** The search aims ``latency_ms * (1 - margin)``. The chosen point is timed again in
fresh processes; the relative spread between the process medians, ``s = (max - min) / min``, is
recorded (the last :data:`SPREADS_KEPT`). ``margin = clip(max(s), MIN_MARGIN, MAX_MARGIN)``:
a median measured at ``t <= B (1 - m)`` re-measures at most ``t (1 + s) <= B`` when ``m >= s/(1+s)``.
The margin is read once per process (frozen), so budgets compare consistently within a process.
"""
from __future__ import annotations

import json
import math
from importlib import metadata
from zoo.atomic import write_text_atomic

from .timing import cpu_name
from .user_cache import cache_dir, keyed_path

CACHE_VERSION = 2   # 2: FLOPs counted on meta, attention included (zoo.factory.counts)
DEFAULT_MARGIN = 0.10     # before any spread is measured on this machine
MIN_MARGIN, MAX_MARGIN = 0.10, 0.25
# The floor: three process medians understate the tail. On the project's 2-core VM a margin of
# 0.03 (after two spreads under 0.5 %) let through a 5.41 ms choice for a 6 ms budget that a later
# process timed at 7.05 ms (`zoo-bench build`, 2026-11-29, 2 of 21 re-measured over budget).
SPREADS_KEPT = 5
SEARCHED_KEPT = 1000
MIN_SLOPE, MAX_SLOPE = 0.3, 1.3
DEFAULT_SLOPE = 0.8

_MODELS: dict[tuple, "LatencyModel"] = {}


def _ort_version() -> str | None:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return None


def machine_key(provider: str, threads: int) -> dict:
    """What a latency depends on beyond the model: CPU, threads, provider, ORT version."""
    return {"cpu": cpu_name(), "threads": int(threads), "provider": provider,
            "onnxruntime": _ort_version(), "cache_version": CACHE_VERSION}


class LatencyModel:
    """Measured latencies of one machine (see the module docstring): ``points`` maps a candidate
    to ``{architecture key: [flops, median_ms]}``; ``results`` keeps each architecture's full
    :class:`zoo.factory.latency.LatencyResult` fields; ``spreads`` the last relative spreads;
    ``searched`` the problems searched here (:meth:`mark_searched`)."""

    def __init__(self, provider: str, threads: int):
        self.key = machine_key(provider, threads)
        self.path = keyed_path("latency", self.key)
        self.points: dict[str, dict[str, list]] = {}
        self.results: dict[str, dict] = {}
        self.spreads: list[float] = []
        self.searched: list[str] = []   # problems searched on this machine (the last SEARCHED_KEPT)
        self._load()
        self.margin = self._margin()   # frozen for this process

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("machine") != self.key:
            return  # another machine, ORT version or cache format: start afresh
        self.points = data.get("points", {})
        self.results = data.get("results", {})
        self.spreads = [float(s) for s in data.get("spreads", [])][-SPREADS_KEPT:]
        searched = data.get("searched", [])
        self.searched = [k for k in searched if isinstance(k, str)][-SEARCHED_KEPT:] \
            if isinstance(searched, list) else []

    def save(self) -> None:
        """Merge with what other processes wrote meanwhile, then write atomically."""
        other = LatencyModel.__new__(LatencyModel)
        other.key, other.path = self.key, self.path
        other.points, other.results, other.spreads, other.searched = {}, {}, [], []
        other._load()
        self.searched = [k for k in other.searched if k not in self.searched] + self.searched
        for cand, pts in other.points.items():
            self.points.setdefault(cand, {}).update({k: v for k, v in pts.items()
                                                     if k not in self.points.get(cand, {})})
        for k, v in other.results.items():
            self.results.setdefault(k, v)
        data = {"machine": self.key, "points": self.points, "results": self.results,
                "spreads": self.spreads[-SPREADS_KEPT:], "searched": self.searched[-SEARCHED_KEPT:]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(data))
        except OSError:
            pass  # a read-only home: the cache is an optimisation only

    # -- measurements ---------------------------------------------------------------------------
    def mark_searched(self, problem_key: str) -> bool:
        """Note a search of ``problem_key`` (a JSON string); whether it was searched here before.
        A repeated search makes no new exports: what the first one measured decides it again, so
        a second build of the same problem costs no export (see :mod:`zoo.factory.search`)."""
        before = problem_key in self.searched
        if not before:
            self.searched.append(problem_key)
        return before

    def record(self, candidate: str, arch_key: str, flops: int, result: dict) -> None:
        self.points.setdefault(candidate, {})[arch_key] = [int(flops), float(result["median_ms"])]
        self.results[arch_key] = dict(result)

    def known(self, arch_key: str) -> dict | None:
        """The stored LatencyResult fields of an architecture measured on this machine, or None."""
        return self.results.get(arch_key)

    def record_spread(self, medians_ms: list[float]) -> float:
        """Record the relative spread ``(max - min) / min`` of process medians; returns it."""
        s = (max(medians_ms) - min(medians_ms)) / min(medians_ms)
        self.spreads = (self.spreads + [round(s, 4)])[-SPREADS_KEPT:]
        return s

    def _margin(self) -> float:
        if not self.spreads:
            return DEFAULT_MARGIN
        return min(MAX_MARGIN, max(MIN_MARGIN, max(self.spreads)))

    # -- prediction -----------------------------------------------------------------------------
    def fit(self, candidate: str | None) -> tuple[float, float] | None:
        """``(a, b)`` of ``log t = a + b log F`` for ``candidate`` (None: pooled), or None."""
        pooled = [p for pts in self.points.values() for p in pts.values()]
        own = list(self.points.get(candidate, {}).values()) if candidate else pooled
        pooled_slope = _slope(pooled) if len({p[0] for p in pooled}) > 1 else DEFAULT_SLOPE
        if not own:
            if candidate is None or not pooled:
                return None
            own = pooled
        xs = [math.log(p[0]) for p in own]
        ys = [math.log(p[1]) for p in own]
        b = _slope(own) if len(set(xs)) > 1 else pooled_slope
        a = sum(ys) / len(ys) - b * sum(xs) / len(xs)
        return a, b

    def predict(self, candidate: str, flops: int) -> float | None:
        """Predicted median latency (ms) at ``flops``, or None when nothing was measured."""
        ab = self.fit(candidate)
        if ab is None:
            return None
        return math.exp(ab[0] + ab[1] * math.log(max(1, flops)))


def _slope(points: list) -> float:
    xs = [math.log(p[0]) for p in points]
    ys = [math.log(p[1]) for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return DEFAULT_SLOPE
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return min(MAX_SLOPE, max(MIN_SLOPE, b))


def model_for(provider: str, threads: int) -> LatencyModel:
    """This process's :class:`LatencyModel` for ``provider`` and ``threads`` (loaded once)."""
    key = (provider, int(threads), str(cache_dir()))
    if key not in _MODELS:
        _MODELS[key] = LatencyModel(provider, threads)
    return _MODELS[key]


class Exports:
    """What the candidate searches of one search share: the exports left ,
    a temporary folder for the exported files (kept for the spread re-timing), the ORT threads."""

    def __init__(self, left: int):
        import tempfile

        from .timing import physical_cores

        self.left, self.threads = left, physical_cores()
        self._tmp = tempfile.TemporaryDirectory(prefix="zoo-search-")
        self.files: dict[str, str] = {}

    def model(self, provider: str) -> LatencyModel:
        return model_for(provider, self.threads)

    def file_for(self, key: str) -> str:
        self.files[key] = f"{self._tmp.name}/{len(self.files)}.onnx"
        return self.files[key]

    def close(self) -> None:
        self._tmp.cleanup()


def measure_spread(problem, chosen, cs, shared: Exports, progress, processes: int) -> dict | None:
    """Time the chosen file again in ``processes`` fresh processes and record the
    relative spread of the process medians on this machine (the next process's margin)."""
    if problem.latency_ms is None or chosen.latency is None:
        return None
    lm = shared.model(problem.provider)
    file = shared.files.get(cs.arch_key(chosen))
    out = {"margin": lm.margin, "spreads": list(lm.spreads)}
    if file is None:  # measured by an earlier process: the cached spreads stand
        return out
    from .latency import _time_file

    progress(f"spread: time {chosen.label()} in {processes} more processes")
    medians = [chosen.latency.median_ms] + [
        _time_file(file, 1, problem.provider, shared.threads, cs.warmup, cs.runs,
                   True, cs.max_time_s).median_ms for _ in range(processes)]
    s = lm.record_spread(medians)
    lm.save()
    out.update(medians_ms=[round(m, 4) for m in medians], spread=round(s, 4),
               spreads=list(lm.spreads))
    return out
