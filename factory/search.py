"""The multiplier search: the largest model that meets every budget and the data cap.

For each candidate (in the policy's preference order) the search walks its
compound-scaling path (:func:`zoo.factory.policy.scaling_path`: width and depth grow together) and
finds the largest point that fits:

1. **data cap and memory, by bisection** -- parameters are counted and training memory traced on
   fake tensors (cheap), both monotone along the path;
2. **latency, by prediction and few measurements** -- only finalists are exported to ONNX and
   timed in a fresh process: the largest point predicted to meet the budget (see below). A
   candidate whose largest point cannot beat the best model found so far is not measured.

Across candidates the largest model wins; equal sizes go to the preferred one. So an earlier
candidate is passed over only when it fails a budget or a later one fits a larger model.

Monotone by construction -- loosening a budget or adding data never gives a smaller model:

* the policy only adds candidates as data grows or a budget loosens, and the winner is a maximum
  over candidates, each of whose best point is monotone;
* the data cap is monotone along the path; memory estimates are deterministic and rise along it
  up to the glibc model's noise (1-4 %), so a point counts as fitting when it or any larger
  point of the path estimated in this process (cached) fits -- the set of fitting points only
  grows as ``vram_gb`` loosens;
* latency is noisy, so every measurement is cached per architecture for the process, and a point
  counts as fast enough when its *envelope* -- the smallest latency measured at it or any larger
  point of the path -- meets the budget (a model is never slower than a larger one of its path).
  New measurements only lower the envelope, so a point once feasible stays feasible.
* a latency margin keeps the chosen model's median under the budget when it is measured again
  in another process: it is the spread between process medians measured on this machine
  (:mod:`zoo.factory.latency_model`; :data:`LATENCY_MARGIN` before any was measured), frozen
  per process.

Exports are few (at most :data:`MAX_EXPORTS` per search): each measurement is stored per machine
and ORT version (:mod:`zoo.factory.latency_model`), a later process reuses it, and the point to
measure is the largest one the candidate's log-log FLOPs-latency fit predicts within budget
(the largest point first when nothing was measured). A candidate whose cheapest point is
predicted over budget is not exported (rejected by prediction); with fewer than two of its own
measurements, and less than :data:`POOLED_DOUBT` times over, it is checked again with the exports
the other candidates left, when its cheapest point would beat their best. While nothing is proven within
the budget, the last export is kept for a proof: it goes to the largest point predicted within
:data:`PROOF_AIM` of the budget (a candidate with none passes it on). Only when that proof also
measures too slow may the last candidate export its cheapest point, if predicted within budget:
one export past the limit rather than a ``BudgetError`` for a budget it meets. A problem searched
on this machine before makes no export (what its first search measured decides it again), so a
second build of it costs none. The reference
architectures (:data:`REFERENCES`, and every family's default at width = depth = 1) are on every
path whose bounds contain them (:mod:`zoo.factory.search_path`), so a budget they meet is never
answered with a smaller model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import zoo
from zoo.errors import BudgetError

from . import count_cache, latency_model, policy, train_time
from .budget_errors import at_least, budget_error
from .counts import input_bytes
from .problem import Problem
from .device_budget import cached_memory_for, memory_for
from .search_path import REFERENCES, Point, _key, candidate_path, config_for  # noqa: F401

MAX_EXPORTS = 3           # ONNX exports (latency measurements) per search, at most
LATENCY_MARGIN = latency_model.DEFAULT_MARGIN  # before a spread is measured on this machine
NEAR = 0.85               # a proven point this close to the aimed latency ends the search
GUESS_AIM = 0.95          # an export aims at the largest point predicted within this of it
PROOF_AIM = 0.85          # the last export, while nothing is proven, aims this far inside it
# A candidate with fewer than two measurements on this machine (its fit borrows the others'
# slope, or all of the others' fit) rejected by prediction less than this many times over budget
# is checked again after the others, with the exports they left: families differ that much per
# FLOP here (ResNet-18 2.3 ms per GFLOP at 224 px, MobileNetV2 4.8), and such a fit once put
# ResNet-18, 8.4 ms measured, at 11.6-12.7 ms.
POOLED_DOUBT = 2.0
SPREAD_PROCESSES = 2      # fresh processes that time the chosen file again (the spread)
# A point this small is not exported: its latency is at most BOUND_OVERHEAD_MS plus its FLOPs at
# BOUND_FLOPS_PER_S -- deliberately pessimistic (a core sustains several GFLOP/s in BLAS-backed ops;
# ORT's per-call overhead is tens of microseconds). CPU only.
BOUND_OVERHEAD_MS = 1.0
BOUND_FLOPS_PER_S = 1e9
MAX_TIMED_INPUT_BYTES = 1024 ** 3  # one example input: the export and the timer allocate it
LATENCY_WARMUP = 10
LATENCY_RUNS = 30
LATENCY_MAX_S = 2.0   # a slow model's timing stops after ~2 s of runs (10 at least) and 1 s of warm-up

_LATENCY_CACHE: dict[str, object] = {}   # config + provider -> factory.latency.LatencyResult


@dataclass
class CandidateOutcome:
    """How one candidate fared: its best point (or None) and why."""
    candidate: str
    best: Point | None
    status: str            # chosen | feasible | rejected | skipped
    reason: str
    cheapest: Point | None = None
    failed: str | None = None   # which budget stopped it: data_cap | train_budget_s | vram_gb |
                                # latency_ms
    bound_by: str | None = None  # what kept the best point from a larger one (the same names, or
                                 # "path end": the family's largest point fits every budget)
    doubtful: bool = False       # rejected by a prediction that may be off (see POOLED_DOUBT)


@dataclass
class SearchResult:
    chosen: Point
    outcomes: list[CandidateOutcome]
    tried: list[Point]
    reasons: list[str]
    measured: int
    exported: int
    data_cap: int
    margin: float = LATENCY_MARGIN
    spread: dict | None = None


class CandidateSearch:
    """Search one candidate's path against the problem's budgets (see the module docstring)."""

    def __init__(self, problem: Problem, cand: policy.Candidate, tried: list[Point],
                 progress: Callable[[str], None], shared: "latency_model.Exports | None" = None):
        self.problem, self.cand, self.tried, self.progress = problem, cand, tried, progress
        self.path = candidate_path(problem, cand)
        self.measured = self.exported = 0
        self.shared = shared if shared is not None else latency_model.Exports(MAX_EXPORTS)
        self.lm = self.shared.model(problem.provider)
        self.warmup, self.runs, self.max_time_s = LATENCY_WARMUP, LATENCY_RUNS, LATENCY_MAX_S
        self.last = True   # the last candidate of the search (search() says otherwise)
        self.recheck = False  # a second run of a doubtful rejection: no rejection by prediction

    # -- costs ---------------------------------------------------------------------------------
    def memory(self, p: Point, *, full: bool = False) -> int:
        """Training memory of ``p`` (bytes). Without ``full``, a point whose floor already exceeds
        ``vram_gb`` keeps the floor (``trace="lower-bound"``): nothing is traced for it."""
        if p.memory is None or (full and p.memory.trace == "lower-bound"):
            self.progress(f"memory {p.label()}")
            limit = None if self.problem.vram_gb is None or full else self.problem.vram_gb * 1e9
            p.memory = memory_for(self.problem, p.config, limit)  # per device when devices > 1
            self._note(p)
        return p.memory.total

    def known_memory(self, p: Point):
        if p.memory is None:
            p.memory = cached_memory_for(self.problem, p.config)
        return p.memory

    def flops(self, p: Point) -> int:
        if p.flops is None:
            p.flops = max(1, count_cache.flops(p.config, self.problem.input_kwargs))
        return p.flops

    def arch_key(self, p: Point) -> str:
        return _key(p.config, self.problem.provider, self.problem.input_kwargs)

    def latency(self, p: Point) -> float:
        """Median latency (ms) of ``p``'s ONNX export: measured in this process, or on this machine
        before (the :mod:`~zoo.factory.latency_model` cache), else exported and timed now."""
        if p.latency is None:
            key = self.arch_key(p)
            if key not in _LATENCY_CACHE and self.lm.known(key) is not None:
                from .latency import LatencyResult

                _LATENCY_CACHE[key] = LatencyResult(**self.lm.known(key))
            if key not in _LATENCY_CACHE:
                from .latency import _time_file

                self._check_timeable(p)
                self.progress(f"export + time {p.label()}")
                path = self.shared.file_for(key)
                zoo.export_onnx(zoo.from_config(p.config).eval(), path)
                _LATENCY_CACHE[key] = _time_file(path, 1, self.problem.provider,
                                                 self.shared.threads, LATENCY_WARMUP,
                                                 LATENCY_RUNS, True, LATENCY_MAX_S)
                self.lm.record(self.cand.key, key, self.flops(p), _LATENCY_CACHE[key].to_dict())
                self.lm.save()
                self.measured += 1
                self.exported += 1
                self.shared.left -= 1
            p.latency = _LATENCY_CACHE[key]
            self._note(p)
        return p.latency.median_ms

    def reserve(self, best_params: int) -> bool:
        """Whether the search's last export is kept for a proof: nothing is proven within the
        budget yet and candidates come after this one. It is then spent only on a point predicted
        within :data:`PROOF_AIM` of the budget."""
        return self.shared.left == 1 and best_params < 0 and not self.last

    def doubt(self) -> float:
        """How far this candidate's latency predictions may be off: 1 with a fit of its own (two
        of its points measured here), else :data:`POOLED_DOUBT` (a slope, or the whole fit,
        borrowed from the other families)."""
        return 1.0 if len(self.lm.points.get(self.cand.key, {})) >= 2 else POOLED_DOUBT

    def references_within(self, pred: dict, budget: float) -> list[int]:
        """The reference points (:data:`REFERENCES`, each family's default) predicted within
        ``budget``: an export aimed more cautiously still goes to one of them when the fit says
        it fits, so a budget a reference meets is not answered with a smaller model."""
        return [i for i, ms in pred.items()
                if ms is not None and ms <= budget and self.path[i].reference]

    def predicted(self, i: int) -> float | None:
        """Predicted latency (ms) of point ``i`` from this machine's fits (None: no data)."""
        return self.lm.predict(self.cand.key, self.flops(self.path[i]))

    def _check_timeable(self, p: Point) -> None:
        """Refuse to export a model whose one example input exceeds :data:`MAX_TIMED_INPUT_BYTES`
        (the export and the timer allocate it for real)."""
        nbytes = input_bytes(p.config, batch_size=1, input_kwargs=self.problem.input_kwargs)
        if nbytes > MAX_TIMED_INPUT_BYTES:
            raise BudgetError(
                f"latency_ms={self.problem.latency_ms:g}: one input of {p.label()} is "
                f"{nbytes / 1e9:.3g} GB, more than the {MAX_TIMED_INPUT_BYTES / 1e9:.3g} GB this "
                f"factory exports and times (the export allocates it); latency_ms=None builds "
                f"without timing", budget="latency_ms", cheapest=p.to_dict(), would_work=None)

    def _note(self, p: Point) -> None:
        if p not in self.tried:
            self.tried.append(p)

    def bound(self, i: int) -> float:
        """A pessimistic latency bound (ms) from FLOPs, for tiny models (see BOUND_*); CPU only."""
        if self.problem.provider != "cpu":
            return math.inf
        return BOUND_OVERHEAD_MS + 1e3 * self.flops(self.path[i]) / BOUND_FLOPS_PER_S

    def _ms(self, i: int) -> float | None:
        key = self.arch_key(self.path[i])
        if key in _LATENCY_CACHE:
            return _LATENCY_CACHE[key].median_ms
        known = self.lm.known(key)
        return None if known is None else known["median_ms"]

    def is_measured(self, i: int) -> bool:
        return self._ms(i) is not None

    def envelope(self, i: int) -> float | None:
        """Smallest latency measured (this process, or this machine before) at point ``i`` or any
        larger path point."""
        best = None
        for j in range(i, len(self.path)):
            ms = self._ms(j)
            if ms is not None:
                best = ms if best is None else min(best, ms)
        return best

    # -- search --------------------------------------------------------------------------------
    def largest(self, hi: int, fits: Callable[[Point], bool]) -> int:
        """Largest index in [0, hi] whose point fits (fits is monotone); -1 if none. The top is
        tried first: when another limit binds before this one, one evaluation settles it."""
        if hi < 0:
            return -1
        if fits(self.path[hi]):
            return hi
        if hi == 0 or not fits(self.path[0]):
            return -1
        hi -= 1
        lo = 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(self.path[mid]):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def run(self, best_params: int, data_cap: int, cap_floor: bool) -> CandidateOutcome:
        """Best point of this candidate; ``best_params`` is what another one already offers."""
        cand, path, prob = self.cand, self.path, self.problem
        cheapest = path[0]
        # 1. the data cap (parameters), by bisection
        top = self.largest(len(path) - 1, lambda p: p.params <= data_cap and train_time.fits(
            prob, p.config, self.flops(p), path=[q.config for q in path]))
        if top < 0:
            if not cap_floor:
                over_cap = cheapest.params > data_cap
                why = (f"parameters > the data cap {data_cap:,}" if over_cap
                       else f"parameters, too slow to train {prob.epochs_needed} epochs in "
                            f"train_budget_s={prob.train_budget_s:g}")
                return CandidateOutcome(cand.key, None, "rejected",
                                     f"{cand.key}: smallest candidate has {cheapest.params:,} {why}",
                                     cheapest, "data_cap" if over_cap else "train_budget_s")
            top = 0  # no candidate fits the cap: the smallest model of each is allowed
        bound = "data_cap" if top < len(path) - 1 else "path end"
        if path[top].params <= best_params:  # memory and latency can only make it smaller
            return CandidateOutcome(cand.key, path[top], "skipped",
                                 f"{cand.key}: at most {path[top].params:,} parameters under the "
                                 f"data cap, not more than the best so far ({best_params:,}); "
                                 f"not costed further")
        # 2. training memory, by bisection, then the largest point known to fit: memory estimates
        # along a path rise with the architecture only up to glibc-model noise (1-4 %), so a point
        # found by an earlier search of this process still counts (monotone in vram_gb).
        if prob.vram_gb is not None:
            limit = prob.vram_gb * 1e9
            cap_top = top
            top = self.largest(top, lambda p: self.memory(p) <= limit)
            known = [i for i in range(cap_top + 1) if (m := self.known_memory(path[i])) is not None
                     and m.total <= limit]
            top = max([top] + known)
            bound = "vram_gb" if top < cap_top else bound
            if top < 0:
                return CandidateOutcome(cand.key, None, "rejected",
                                     f"{cand.key}: cheapest candidate needs "
                                     f"{at_least(cheapest.memory)}"
                                     f"{cheapest.memory.total / 1e9:.3g} GB to train > "
                                     f"vram_gb={prob.vram_gb:g}", cheapest, "vram_gb")
        if path[top].params <= best_params:
            return CandidateOutcome(cand.key, path[top], "skipped",
                                 f"{cand.key}: at most {path[top].params:,} parameters under the "
                                 f"data cap and memory, not more than the best so far "
                                 f"({best_params:,}); not measured")
        # 3. latency: measure finalists only
        if prob.latency_ms is None:
            return CandidateOutcome(cand.key, path[top], "feasible",
                                 f"{cand.key}: {path[top].label()} fits (no latency budget)",
                                 bound_by=bound)
        margin = self.lm.margin
        budget = prob.latency_ms * (1.0 - margin)
        why = f"{budget:.3g} ms (latency_ms={prob.latency_ms:g} less a {margin:.0%} margin)"

        def ok(i: int) -> bool:  # monotone: true up to some index (bound and envelope rise)
            if self.bound(i) <= budget:
                return True
            env = self.envelope(i)
            return env is not None and env <= budget

        while not ok(top) and self.shared.left > 0:
            best_ok = self.largest(top, lambda p: ok(p.index))
            if best_ok >= 0 and (self.envelope(best_ok) or 0.0) >= NEAR * budget:
                break                      # near enough: no export for a few per cent
            slow = [i for i in range(best_ok + 1, top + 1) if self.is_measured(i)]
            limit = min(slow) - 1 if slow else top   # measured too slow: guess below it
            if limit <= best_ok:
                break
            pred = {i: self.predicted(i) for i in range(best_ok + 1, limit + 1)}
            if self.shared.left == 1 and best_params < 0 and best_ok < 0:
                # the last export must prove a point: aim well inside the budget, or (a candidate
                # that is not the last) keep it for the next
                fits = [i for i, ms in pred.items() if ms is not None and ms <= PROOF_AIM * budget]
                fits += self.references_within(pred, budget)
                if not fits and not self.last:
                    break
                guess = max(fits, default=best_ok + 1)
            elif pred[limit] is None:
                guess = limit              # nothing measured on this machine: the largest first
            else:
                # a little inside the budget: a fit's error is a few per cent either way
                fits = ([i for i, ms in pred.items() if ms <= GUESS_AIM * budget] or
                        [i for i, ms in pred.items() if ms <= budget]) + \
                    self.references_within(pred, budget)
                if fits:
                    guess = max(fits)
                else:
                    break                  # predicted too slow: keep what is proven
            if self.path[guess].params <= best_params:
                break                      # cannot beat the best model found so far
            self.latency(self.path[guess])
        best = self.largest(top, lambda p: ok(p.index))
        if best < 0 and self._ms(0) is None:
            pred0 = path[0].latency_predicted = self.predicted(0)
            aim = budget * (PROOF_AIM if self.reserve(best_params) else 1.0)
            doubt = math.inf if self.recheck else 1.0
            # Past MAX_EXPORTS only as a last resort: the last candidate, nothing proven, and its
            # cheapest point predicted within budget (a BudgetError would refuse a budget it meets)
            last_resort = self.last and best_params < 0 and pred0 is not None and pred0 <= budget
            if (self.shared.left <= 0 and not last_resort) or \
                    (pred0 is not None and pred0 > aim * doubt):
                fit = f"is predicted to take {pred0:.3g} ms (this machine's FLOPs-latency fit)" \
                    if pred0 is not None else ""
                what = (f"{fit} > {why}" if pred0 is not None and pred0 > budget else
                        f"was not timed: this search's {MAX_EXPORTS} exports are spent"
                        if self.shared.left <= 0 else
                        f"{fit} > {aim:.3g} ms, {PROOF_AIM:.0%} of {why}: too near it to spend "
                        f"the search's last export, kept for a proof")
                return CandidateOutcome(cand.key, None, "rejected", f"{cand.key}: cheapest "
                                        f"candidate {what}; not exported", path[0], "latency_ms",
                                        doubtful=self.doubt() > 1 and pred0 is not None
                                        and pred0 <= budget * POOLED_DOUBT)
            self.latency(path[0])  # the proof (a search's only export past MAX_EXPORTS)
            best = self.largest(top, lambda p: ok(p.index))
        if best < 0:
            self.latency(path[0])  # from the caches: no export
            return CandidateOutcome(cand.key, None, "rejected",
                                 f"{cand.key}: cheapest candidate takes "
                                 f"{path[0].latency.median_ms:.3g} ms > {why}", path[0],
                                 "latency_ms")
        p = path[best]
        limit = "the latency budget" if best < top else "the data cap and memory"
        bound = "latency_ms" if best < top else bound
        if self.bound(best) <= budget:
            p.latency_bound = self.bound(best)
            return CandidateOutcome(cand.key, p, "feasible",
                                 f"{cand.key}: {p.label()} is the largest within {limit} (at most "
                                 f"{p.latency_bound:.3g} ms from its {p.flops:,} FLOPs: not "
                                 f"exported)", bound_by=bound)
        if self._ms(best) is not None:
            self.latency(p)                # known: no export
        else:  # feasible through the envelope only: the record takes the larger point's figure
            env = min(j for j in range(best, len(path)) if self._ms(j) is not None
                      and self._ms(j) <= budget)
            p.latency = path[env].latency if self.latency(path[env]) else None
        return CandidateOutcome(cand.key, p, "feasible",
                             f"{cand.key}: {p.label()} is the largest within {limit} "
                             f"({p.latency.median_ms:.3g} ms measured)", bound_by=bound)

def search(problem: Problem, candidates: list[str], *, progress: Callable[[str], None] | None = None
           ) -> SearchResult:
    """Run the search over ``candidates`` (keys of :data:`zoo.factory.policy.CANDIDATES`, preferred
    first). Raises :class:`zoo.BudgetError` when no candidate meets every budget.
    """
    progress = progress or (lambda msg: None)
    data_cap = policy.capacity_cap(problem.task.input_kind, problem.n_samples)
    tried: list[Point] = []
    outcomes: list[CandidateOutcome] = []
    shared = latency_model.Exports(MAX_EXPORTS)
    lm = shared.model(problem.provider)
    if problem.latency_ms is not None and lm.mark_searched(problem.key):
        shared.left = 0   # searched on this machine before: its measurements decide again
    elif problem.latency_ms is not None:
        lm.save()
    try:
        searches = {k: CandidateSearch(problem, policy.CANDIDATES[k], tried, progress, shared)
                    for k in candidates}
        for key in candidates[:-1]:
            searches[key].last = False
        # If no candidate has a point under the cap, each one's smallest point is allowed.
        cap_floor = all(s.path[0].params > data_cap for s in searches.values())
        best: CandidateOutcome | None = None
        # a fallback the policy added is tried only when what it stands in for cannot train in time
        stands_in = policy.fallbacks(problem.rules, candidates) if problem.families is None else {}
        for key in candidates:
            primary = stands_in.get(key)
            if primary is not None and not any(o.candidate == primary and o.failed == "train_budget_s"
                                               for o in outcomes):
                outcomes.append(CandidateOutcome(
                    key, None, "skipped", f"{key}: stands in for {primary} only where "
                    f"{primary} cannot train the epochs it needs in train_budget_s; not needed"))
                continue
            outcome = searches[key].run(best.best.params if best else -1, data_cap, cap_floor)
            outcomes.append(outcome)
            if outcome.status == "feasible" and (best is None or
                                                 outcome.best.params > best.best.params):
                best = outcome
        for i, o in enumerate(outcomes):  # doubtful rejections, with the exports left over
            s = searches[o.candidate]
            if o.doubtful and shared.left > 0 and (best is None or
                                                   s.path[0].params > best.best.params):
                s.recheck = True
                o = outcomes[i] = s.run(best.best.params if best else -1, data_cap, cap_floor)
                if o.status == "feasible" and (best is None or o.best.params > best.best.params):
                    best = o
        measured = sum(s.measured for s in searches.values())
        exported = sum(s.exported for s in searches.values())
        if best is None:
            raise budget_error(problem, outcomes, searches)
        spread = latency_model.measure_spread(problem, best.best, searches[best.candidate], shared,
                                              progress, SPREAD_PROCESSES)
    finally:
        shared.close()
    best.status = "chosen"
    reasons = []
    if cap_floor:
        reasons.append(f"data cap {data_cap:,} parameters for {problem.n_samples:,} samples is "
                       f"below every candidate's smallest model: the smallest are allowed")
    for o in outcomes:
        if o is best:
            continue
        if o.status == "feasible":
            o.status = "passed over"
            o.reason += (f"; passed over: {best.candidate} fits a larger model "
                         f"({best.best.params:,} > {o.best.params:,} parameters)")
        reasons.append(o.reason)
    reasons.append(best.reason + " -- chosen")
    margin = shared.model(problem.provider).margin
    return SearchResult(best.best, outcomes, tried, reasons, measured, exported, data_cap,
                        margin, spread)
