"""A candidate's scaling path as :class:`Point` s: the architectures the search walks.

:func:`candidate_path` takes the policy's compound-scaling path (width and depth grow together,
:func:`zoo.factory.policy.scaling_path`) and puts the reference architectures
(:data:`REFERENCES`, and every family's default at width = depth = 1) on it where they belong, so
a budget they meet is never answered with a smaller model.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass

import zoo
from zoo.registry import PLACEMENT_ARGS

from . import count_cache, policy
from .problem import Problem
from .training_memory import MemoryEstimate

# Reference architectures, put on every path that can reach them: registry -> (width, depth)s.
REFERENCES = {"mobilenetv2": [(w, 1.0) for w in (0.35, 0.5, 0.75, 1.0, 1.4)]}


@dataclass
class Point:
    """One architecture on a candidate's path, with whatever costs were computed for it.

    ``params`` is counted on first use (a build on the meta device, cached across processes by
    :mod:`~zoo.factory.count_cache`), so walking a path costs only the points the search looks at.
    """
    candidate: str
    index: int
    width_mult: float
    depth_mult: float
    config: dict
    memory: MemoryEstimate | None = None
    flops: int | None = None
    latency: object | None = None          # LatencyResult
    latency_bound: float | None = None     # ms, when accepted by the FLOPs bound unmeasured
    latency_predicted: float | None = None  # ms, from this machine's fit, when not exported
    reference: bool = False                 # a reference architecture (see candidate_path)

    @property
    def params(self) -> int:
        return count_cache.params(self.config)

    def label(self) -> str:
        return f"{self.candidate} (width {self.width_mult:g}, depth {self.depth_mult:g})"

    def to_dict(self) -> dict:
        d = {"candidate": self.candidate, "registry": self.config["name"],
             "width_mult": self.width_mult, "depth_mult": self.depth_mult, "params": self.params}
        if self.memory is not None:
            d["memory_gb"] = round(self.memory.total / 1e9, 6)
        if self.flops is not None:
            d["flops"] = self.flops
        if self.latency is not None:
            d["latency_ms"] = round(self.latency.median_ms, 4)
        if self.latency_bound is not None:
            d["latency_bound_ms"] = round(self.latency_bound, 4)
        if self.latency_predicted is not None:
            d["latency_predicted_ms"] = round(self.latency_predicted, 4)
        return d


def _key(config: dict, *extra) -> str:
    return json.dumps([config, *extra], sort_keys=True, default=str)


def config_for(registry: str, **kwargs) -> dict:
    """The config :func:`zoo.create` would record for ``registry`` with ``kwargs`` (every builder
    argument, defaults included, placement excluded), without building the model."""
    entry = zoo.get_entry(registry)
    bound = inspect.signature(entry.builder).bind(**kwargs)
    bound.apply_defaults()
    return {"name": registry, **{k: v for k, v in bound.arguments.items()
                                 if k not in PLACEMENT_ARGS}}


def candidate_path(problem: Problem, cand: policy.Candidate) -> list[Point]:
    """The candidate's path as :class:`Point` s, non-decreasing in width, depth and parameters.

    Neighbouring points may build the same architecture (widths round to multiples of 8, depths
    to whole blocks); they share every cached cost.
    """
    entry = zoo.get_entry(cand.registry)
    points: list[Point] = []
    for w, d in policy.scaling_path(cand):
        kw = dict(problem.base_kwargs(cand.registry), **cand.fixed)
        if entry.scales_width:
            kw["width_mult"] = w
        if entry.scales_depth:
            kw["depth_mult"] = d
        points.append(Point(cand.key, len(points), w, d, config_for(cand.registry, **kw)))
    for w, d in REFERENCES.get(cand.registry, ()):
        _insert_reference(points, problem, cand, entry, w, d)
    refs = {(1.0, 1.0), *REFERENCES.get(cand.registry, ())}
    for i, p in enumerate(points):
        p.index = i
        p.reference = (p.width_mult, p.depth_mult) in refs
    return points


def _insert_reference(points: list[Point], problem: Problem, cand: policy.Candidate, entry,
                      w: float, d: float) -> None:
    """Put the reference architecture ``(w, d)`` on the path (within the candidate's bounds),
    where its parameter count belongs: after every point it dominates in both width and depth,
    before every point that dominates it, and by parameters (bisection) among the rest."""
    if (cand.width and not cand.width[0] <= w <= cand.width[1]) or \
            (cand.depth and not cand.depth[0] <= d <= cand.depth[1]):
        return
    if any(p.width_mult == w and p.depth_mult == d for p in points):
        return
    kw = dict(problem.base_kwargs(cand.registry), **cand.fixed)
    if entry.scales_width:
        kw["width_mult"] = w
    if entry.scales_depth:
        kw["depth_mult"] = d
    ref = Point(cand.key, 0, w, d, config_for(cand.registry, **kw))
    lo = max([i + 1 for i, p in enumerate(points) if p.width_mult <= w and p.depth_mult <= d],
             default=0)
    hi = min([i for i, p in enumerate(points) if p.width_mult >= w and p.depth_mult >= d],
             default=len(points))
    while lo < hi:  # first index in [lo, hi) whose parameters are not below the reference's
        mid = (lo + hi) // 2
        if points[mid].params < ref.params:
            lo = mid + 1
        else:
            hi = mid
    points.insert(lo, ref)
