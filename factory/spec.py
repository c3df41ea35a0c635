"""``ModelSpec``: what ``build`` chose, what it costs, and why -- a JSON-serialisable record.

The spec alone rebuilds the architecture (``zoo.from_config(spec.config)``). It travels inside
saved files: :func:`zoo.save` writes ``spec.to_dict()`` into the safetensors metadata as
``"zoo.spec"`` and :func:`zoo.export_onnx` into the ONNX metadata; :meth:`ModelSpec.from_dict`
reads it back.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields

SPEC_VERSION = 2
"""2: the policy's candidate key is ``candidate`` (version 1 called it ``family``, which is also the
registry's word for e.g. ``"resnet"``); :meth:`ModelSpec.from_dict` reads both."""

LATENCY_FIELDS = ("median_ms", "p90_ms", "min_ms", "max_ms", "mean_ms", "runs", "threads",
                  "provider", "batch_size", "isolated")


@dataclass
class ModelSpec:
    """The decision record of one :func:`zoo.factory.build` call.

    ``candidate``: the policy's key of the chosen candidate (:data:`zoo.factory.policy.CANDIDATES`,
    e.g. ``"mobilenetv2-se"``); ``registry_name``: the model it builds.
    ``memory``: the training-memory breakdown in bytes (:class:`zoo.factory.training_memory.MemoryEstimate`
    as a dict). ``latency``: the measured ONNX Runtime latency of the chosen model (median, p90,
    min, max in ms, runs, threads, provider), or None when there was no latency budget or the
    model is small enough that ``latency_bound_ms`` (from its FLOPs) already meets it.
    ``budgets``: the arguments the costs were judged against. ``candidates``: every architecture costed, with its costs. ``rules``: the
    policy rows that fired (name and reason). ``reasons``: each family's verdict, the chosen one
    last.
    """
    task: str
    candidate: str
    registry_name: str
    config: dict
    width_mult: float
    depth_mult: float
    params: int
    flops: int
    memory: dict
    latency: dict | None
    budgets: dict
    data_cap: int
    latency_bound_ms: float | None = None
    latency_spread: dict | None = None
    candidates: list = field(default_factory=list)
    rules: list = field(default_factory=list)
    reasons: list = field(default_factory=list)
    search: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    spec_version: int = SPEC_VERSION

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict | str) -> "ModelSpec":
        """Read a spec back from :meth:`to_dict` output (or its JSON text); unknown keys are
        ignored, missing ones raise ``ValueError`` naming them."""
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError(f"data={type(data).__name__} is not accepted: expected a dict (or its "
                             f"JSON) as written by ModelSpec.to_dict()")
        if data.get("spec_version", 1) == 1 and "family" in data:  # version 1 names
            data = {("candidate" if k == "family" else k): v for k, v in data.items()}
            data["spec_version"] = SPEC_VERSION
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"data is not a ModelSpec: missing {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_search(cls, problem, result, *, flops: int, seconds: float) -> "ModelSpec":
        """The record of a finished search: ``problem`` (:class:`zoo.factory.problem.Problem`),
        ``result`` (:class:`zoo.factory.search.SearchResult`), the chosen model's ``flops`` and the
        build's wall ``seconds``."""
        from .search import LATENCY_MARGIN
        from .timing import library_versions

        chosen, shape = result.chosen, problem.input_shape
        lat = chosen.latency.to_dict() if chosen.latency is not None else None
        if lat is not None:
            lat = {k: lat[k] for k in LATENCY_FIELDS}
        reasons = problem.task.kind.notes(shape)
        if problem.families is not None:
            reasons.append(f"families={list(problem.families)!r}: candidates restricted to "
                           f"{', '.join(problem.candidates)}")
        if problem.device == "cuda" and problem.provider == "cpu":
            reasons.insert(0, "device='cuda' but this onnxruntime has no CUDA provider: latency "
                              "was measured on the CPU provider")
        from .policy import CANDIDATES

        flat = CANDIDATES[chosen.candidate].flat
        if flat:
            reasons.append(f"input_view 'flat': the model takes each sample flattened to "
                           f"{chosen.config['in_features']:,} features (x.reshape(len(x), -1))")
        reasons += list(getattr(result, "evidence", []))
        reasons += list(result.reasons)
        if chosen.memory.trace == "lower-bound":
            reasons.append("training memory is a floor (weights, optimizer state, one batch of "
                           "inputs), not traced: a step this large is not profiled here")
        if chosen.latency is None and chosen.latency_bound is None:
            reasons.append("no latency budget: latency not measured (zoo.export_onnx + "
                           "zoo.factory.latency.measure_latency measure it)")
        return cls(
            task=problem.task.name, candidate=chosen.candidate,
            registry_name=chosen.config["name"], config=chosen.config,
            width_mult=chosen.width_mult, depth_mult=chosen.depth_mult, params=chosen.params,
            flops=flops, memory=chosen.memory.to_dict(), latency=lat,
            latency_bound_ms=chosen.latency_bound,
            latency_spread=getattr(result, "spread", None),
            budgets={"n_samples": problem.n_samples, "vram_gb": problem.vram_gb,
                     "latency_ms": problem.latency_ms, "batch_size": problem.batch_size,
                     "optimizer": problem.optimizer, "dtype": problem.dtype,
                     "device": problem.device, "provider": problem.provider,
                     "input_shape": list(shape), "num_classes": problem.num_classes,
                     "n_edges": (problem.input_kwargs or {}).get("num_edges"),
                     "latency_margin": getattr(result, "margin", LATENCY_MARGIN),
                     "input_view": "flat" if flat else "native",
                     "train_budget_s": getattr(problem, "train_budget_s", None),
                     "epochs": getattr(problem, "epochs", None)},
            data_cap=result.data_cap,
            candidates=[p.to_dict() for p in result.tried],
            rules=[{"name": r.name, "reason": r.reason} for r in problem.rules],
            reasons=reasons,
            search={"measured": result.measured, "exported": result.exported,
                    "costed": len(result.tried), "seconds": round(seconds, 3),
                    "bound_by": next((o.bound_by for o in result.outcomes
                                      if o.status == "chosen"), None),
                    "candidates": [{"candidate": o.candidate, "status": o.status,
                                    "reason": o.reason} for o in result.outcomes]},
            versions=library_versions())

    @property
    def memory_gb(self) -> float:
        return self.memory["total"] / 1e9

    def report(self) -> str:
        """The decision as readable text: the model, its costs against the budgets, the reasons."""
        b = self.budgets
        lines = [f"zoo build {self.task}: {self.registry_name} "
                 f"(candidate {self.candidate}, width_mult {self.width_mult:g}, "
                 f"depth_mult {self.depth_mult:g})",
                 f"  parameters  {self.params:>14,}   data cap {self.data_cap:,} for "
                 f"{b['n_samples']:,} samples",
                 f"  FLOPs       {self.flops:>14,}   per inference at batch 1"]
        m = self.memory
        vram = f"vram_gb={b['vram_gb']:g}" if b.get("vram_gb") is not None else "no memory budget"
        lines.append(f"  training    {m['total'] / 1e9:>11.4f} GB   at batch {b['batch_size']} with "
                     f"{b['optimizer']} ({b['dtype']}, {b['device']}); {vram}")
        parts = ["weights", "gradients", "optimizer_state", "activations", "transient",
                 "allocator", "framework"] + (["context"] if m.get("context") else [])
        lines.append("              = " + ", ".join(f"{k} {m[k] / 1e9:.4f}" for k in parts) +
                     " GB (activations and gradients do not peak together)")
        if self.latency:
            lat = self.latency
            budget = (f"latency_ms={b['latency_ms']:g}" if b.get("latency_ms") is not None
                      else "no latency budget")
            lines.append(f"  latency     {lat['median_ms']:>11.3f} ms   median (p90 {lat['p90_ms']:.3f}, "
                         f"min {lat['min_ms']:.3f}, max {lat['max_ms']:.3f}; {lat['runs']} runs, "
                         f"{lat['threads']} threads, ONNX Runtime {lat['provider']}); {budget}")
        elif self.latency_bound_ms is not None:
            lines.append(f"  latency   <= {self.latency_bound_ms:>8.3f} ms   bound from its FLOPs "
                         f"(small enough not to export); latency_ms={b['latency_ms']:g}")
        else:
            lines.append("  latency     not measured (no latency budget)")
        s = self.search
        lines.append(f"  search      {len(self.candidates)} architectures costed, "
                     f"{s.get('measured', 0)} exported and timed, {s.get('seconds', 0):.1f} s")
        lines.append("Rules that fired:")
        lines += [f"  - {r['name']}: {r['reason']}" for r in self.rules]
        lines.append("Decision:")
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()
