"""The :class:`zoo.BudgetError` of a search nothing passed: which budget, what the cheapest
candidate costs, and a budget that would work (rounded up to 2 significant digits)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from zoo.errors import BudgetError

if TYPE_CHECKING:
    from .problem import Problem
    from .search import CandidateOutcome, CandidateSearch
    from .training_memory import MemoryEstimate


def budget_error(problem: Problem, outcomes: list[CandidateOutcome],
                 searches: dict[str, CandidateSearch]) -> BudgetError:
    """The budget nothing met, the cheapest candidate's cost, and a budget that would work."""
    from .device_budget import devices_hint

    margin = next(iter(searches.values())).lm.margin if searches else 0.0

    def cheapest(failed: str) -> CandidateOutcome | None:
        rejected = [o for o in outcomes if o.failed == failed and o.cheapest is not None]
        if failed == "vram_gb":
            for o in rejected:  # the full estimate where it can be had: a budget that would work
                searches[o.candidate].memory(o.cheapest, full=True)
            return min(rejected, key=lambda o: o.cheapest.memory.total, default=None)
        if failed == "latency_ms":
            return min(rejected, key=lambda o: _ms(o.cheapest), default=None)
        return min(rejected, key=lambda o: o.cheapest.params, default=None)

    def memory_error(o: CandidateOutcome) -> BudgetError:
        need = o.cheapest.memory.total / 1e9
        would = round_up(need)
        floor = o.cheapest.memory.trace == "lower-bound"
        works = (f"no vram_gb below {would:g} can work (a floor: weights, optimizer state and one "
                 f"batch of inputs, not traced)" if floor else f"vram_gb >= {would:g} would work")
        return BudgetError(
            f"vram_gb={problem.vram_gb:g}: the cheapest candidate ({o.cheapest.label()}, "
            f"{o.cheapest.params:,} params) needs {at_least(o.cheapest.memory)}{need:.3g} GB to "
            f"train at batch {problem.batch_size} with {problem.optimizer}"
            f"{per_device(problem)}; {works}{devices_hint(problem, o.cheapest.config)}",
            budget="vram_gb", cheapest=o.cheapest.to_dict(), would_work=would)

    o = cheapest("vram_gb")
    if o is not None and all(x.failed == "vram_gb" for x in outcomes):
        return memory_error(o)
    o = cheapest("latency_ms")
    if o is not None:
        ms = _ms(o.cheapest)
        how = "takes" if o.cheapest.latency is not None else "is predicted to take"
        would = round_up(ms / (1.0 - margin))
        mem = [x for x in outcomes if x.failed == "vram_gb"]
        extra = (f" ({', '.join(x.candidate for x in mem)} did not fit vram_gb={problem.vram_gb:g})"
                 if mem else "")
        return BudgetError(
            f"latency_ms={problem.latency_ms:g}: the cheapest candidate that fits memory "
            f"({o.cheapest.label()}, {o.cheapest.params:,} params) {how} {ms:.3g} ms at batch 1 "
            f"in ONNX Runtime ({problem.provider}); the search keeps a {margin:.0%} "
            f"margin (the spread between processes measured here), so latency_ms >= {would:g} "
            f"would work{extra}",
            budget="latency_ms", cheapest=o.cheapest.to_dict(), would_work=would)
    return memory_error(cheapest("vram_gb"))


def per_device(problem: Problem) -> str:
    n = getattr(problem, "devices", 1)
    return f" on each of {n} devices ({problem.strategy}; global batch)" if n > 1 else ""


def _ms(p) -> float:
    return p.latency.median_ms if p.latency is not None else p.latency_predicted


def at_least(memory: MemoryEstimate) -> str:
    return "at least " if memory.trace == "lower-bound" else ""


def round_up(x: float) -> float:
    """``x`` rounded up to 2 significant digits (a budget that surely works)."""
    if x <= 0:
        return 0.0
    exp = math.floor(math.log10(x)) - 1
    step = 10.0 ** exp
    return round(math.ceil(x / step - 1e-9) * step, max(0, -exp))
