"""Search mechanics: configs without building, the latency envelope, budgets that would work."""
from __future__ import annotations

import pytest

import zoo
from zoo.factory import policy, search
from zoo.factory.budget_errors import round_up
from zoo.factory.latency import LatencyResult


@pytest.mark.parametrize("name,kw", [
    ("resnet18", dict(num_classes=10, img_size=32, width_mult=1.2, depth_mult=1.5)),
    ("mobilenetv2", dict(se=True, width_mult=0.35)),
    ("gcn", dict(num_nodes=5, in_features=3)),
])
def test_config_for_is_what_create_records(name, kw):
    assert search.config_for(name, **kw) == zoo.create(name, device="meta", **kw).config


def test_path_params_never_decrease():
    problem = search.Problem(task=policy.TASKS["image-classification"], n_samples=50_000,
                             input_shape=(3, 32, 32), num_classes=10, batch_size=8,
                             optimizer="adam", dtype="float32", device="cpu", vram_gb=None,
                             latency_ms=None)
    for key in ("resnet18", "mobilenetv2"):
        path = search.candidate_path(problem, policy.CANDIDATES[key])
        params = [p.params for p in path]
        assert params == sorted(params) and params[0] < params[-1]


def test_latency_envelope_only_falls_as_measurements_arrive():
    """A point is as fast as the fastest measurement at it or any larger point of its path, so a
    new (noisy) measurement can make points feasible but never infeasible."""
    problem = search.Problem(task=policy.TASKS["tabular-regression"], n_samples=10_000,
                             input_shape=(7,), num_classes=1, batch_size=8, optimizer="adam",
                             dtype="float32", device="cpu", vram_gb=None, latency_ms=1.0)
    fs = search.CandidateSearch(problem, policy.CANDIDATES["mlp"], [], lambda m: None)
    n = len(fs.path)

    def seed(i, ms):  # as if measured: the cache holds LatencyResults per architecture
        key = fs.arch_key(fs.path[i])
        search._LATENCY_CACHE[key] = LatencyResult(ms, ms, ms, ms, ms, 1, 1, "cpu")

    seed(n - 1, 5.0)
    before = [fs.envelope(i) for i in range(n)]
    assert before == [5.0] * n
    seed(n // 2, 0.4)
    after = [fs.envelope(i) for i in range(n)]
    assert all(a <= b for a, b in zip(after, before))
    assert after[: n // 2 + 1] == [0.4] * (n // 2 + 1) and after[-1] == 5.0


@pytest.mark.parametrize("x,want", [(0.0021, 0.0021), (0.00213, 0.0022), (7.2, 7.2), (7.21, 7.3),
                                    (123.4, 130.0), (0.0, 0.0)])
def test_would_work_is_rounded_up_to_two_significant_digits(x, want):
    assert round_up(x) == pytest.approx(want)
    assert round_up(x) >= x
