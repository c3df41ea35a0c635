"""The per-machine latency cache, its fits and margin, and the search that uses them: at most 3
exports, reference points on the path, a finish near the budget -- with fake timings, so nothing
here depends on how loaded the machine is."""
from __future__ import annotations

import json

import pytest

import zoo
from zoo.factory import latency_model, policy, search
from zoo.factory.latency import LatencyResult

MS_PER_PARAM = 1e-6   # the fake machine: a model of P parameters takes P * 1e-6 ms


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A fresh cache folder and fresh in-process caches, as in a new process on a new machine."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(latency_model, "_MODELS", {})
    monkeypatch.setattr(search, "_LATENCY_CACHE", {})
    return tmp_path / "cache"


@pytest.fixture()
def fake_timer(cache, monkeypatch):
    """Exports write the model's parameter count; timing reads it back as the latency."""
    calls = {"export": 0, "time": 0}

    def export(model, path, *a, **k):
        calls["export"] += 1
        with open(path, "w") as fh:
            json.dump(sum(p.numel() for p in model.parameters()), fh)
        return path

    def time_file(path, batch_size, provider, threads, warmup, runs, isolate, max_time_s=None):
        calls["time"] += 1
        with open(path) as fh:
            ms = json.load(fh) * MS_PER_PARAM
        return LatencyResult(ms, ms, ms, ms, ms, runs, threads, provider)

    monkeypatch.setattr(zoo, "export_onnx", export)
    monkeypatch.setattr("zoo.factory.latency._time_file", time_file)
    return calls


def test_measurements_survive_a_new_process_and_a_version_change_invalidates_them(
        cache, monkeypatch):
    lm = latency_model.LatencyModel("cpu", 2)
    lm.record("mlp", "arch-a", 1_000_000, {"median_ms": 0.5})
    lm.record_spread([1.0, 1.2])
    lm.save()
    again = latency_model.LatencyModel("cpu", 2)
    assert again.known("arch-a") == {"median_ms": 0.5}
    assert again.margin == pytest.approx(0.2)
    assert latency_model.LatencyModel("cpu", 1).known("arch-a") is None  # other threads
    monkeypatch.setattr(latency_model, "_ort_version", lambda: "0.0.0-other")
    other = latency_model.LatencyModel("cpu", 2)
    assert other.known("arch-a") is None and other.margin == latency_model.DEFAULT_MARGIN


def test_searched_problems_survive_a_new_process_and_a_bad_list_is_dropped(cache):
    lm = latency_model.LatencyModel("cpu", 2)
    assert lm.mark_searched('{"p": 1}') is False and lm.mark_searched('{"p": 1}') is True
    lm.save()
    assert latency_model.LatencyModel("cpu", 2).mark_searched('{"p": 1}') is True
    data = json.loads(lm.path.read_text())
    for bad in (5, "x", None, [1, {"a": 2}]):
        data["searched"] = bad
        lm.path.write_text(json.dumps(data))
        assert latency_model.LatencyModel("cpu", 2).searched == []


def test_fit_recovers_a_power_law_and_margin_is_clipped(cache):
    lm = latency_model.LatencyModel("cpu", 2)
    for i, f in enumerate((1e6, 4e6, 1.6e7)):
        lm.record("c", f"k{i}", int(f), {"median_ms": 0.002 * f ** 0.7})
    assert lm.predict("c", 1e8) == pytest.approx(0.002 * 1e8 ** 0.7, rel=1e-6)
    assert lm.predict("other", 1e8) == pytest.approx(0.002 * 1e8 ** 0.7, rel=1e-6)  # pooled
    lm.record_spread([1.0, 3.0])
    lm.save()
    assert latency_model.LatencyModel("cpu", 2).margin == latency_model.MAX_MARGIN
    assert latency_model.LatencyModel("cpu", 3).predict("c", 1e8) is None


def _problem(latency_ms, n=1_000_000):
    return search.Problem.from_arguments("image-classification", n, None, latency_ms,
                                         input_shape=(3, 224, 224), num_classes=1000)


def test_reference_architectures_are_on_the_path(cache):
    problem = _problem(6)
    path = search.candidate_path(problem, policy.CANDIDATES["mobilenetv2"])
    points = {(p.width_mult, p.depth_mult) for p in path}
    assert {(w, 1.0) for w in (0.35, 0.5, 0.75, 1.0, 1.4)} <= points
    params = [p.params for p in path]
    assert params == sorted(params)
    assert [p.index for p in path] == list(range(len(path)))


@pytest.mark.parametrize("budget", [4.0, 6.0, 9.0])
def test_a_search_exports_at_most_3_and_finishes_near_the_budget(fake_timer, budget):
    mbv2 = zoo.create("mobilenetv2", device="meta", num_classes=1000)
    ref = sum(p.numel() for p in mbv2.parameters()) * MS_PER_PARAM   # MobileNetV2 1.0
    model = zoo.build("image-classification", 1_000_000, None, budget,
                      input_shape=(3, 224, 224), num_classes=1000)
    spec = model.spec
    aim = budget * (1 - spec.budgets["latency_margin"])
    assert spec.search["exported"] <= search.MAX_EXPORTS
    assert fake_timer["export"] <= search.MAX_EXPORTS
    assert spec.latency["median_ms"] <= aim
    if ref <= aim:   # the reference meets the budget: nothing smaller is returned
        assert spec.params * MS_PER_PARAM >= ref
    # near the budget: 75 % of the aim used, or the next point of the path (nearly) over it
    path = search.candidate_path(search.Problem.from_arguments(
        "image-classification", 1_000_000, None, budget, input_shape=(3, 224, 224),
        num_classes=1000), policy.CANDIDATES[spec.candidate])
    i = next(k for k, p in enumerate(path) if p.config == spec.config)
    assert i == len(path) - 1 or path[i + 1].params * MS_PER_PARAM > 0.95 * aim \
        or spec.latency["median_ms"] >= 0.75 * aim
    assert spec.latency_spread is not None


def test_later_builds_reuse_this_machines_measurements(fake_timer, monkeypatch):
    """A new process reuses the cached measurements: a second build of the same problem exports
    nothing and picks the same model; another problem on this machine starts from its fits."""
    args = ("image-classification", 1_000_000, None, 6.0)
    kw = dict(input_shape=(3, 224, 224), num_classes=1000)
    specs = [zoo.build(*args, **kw).spec]
    exports = fake_timer["export"]
    for _ in range(2):   # each a new process: in-process caches empty, the cache folder kept
        monkeypatch.setattr(latency_model, "_MODELS", {})
        monkeypatch.setattr(search, "_LATENCY_CACHE", {})
        specs.append(zoo.build(*args, **kw).spec)
    assert [s.search["exported"] for s in specs[1:]] == [0, 0]
    assert fake_timer["export"] == exports
    assert {s.params for s in specs} == {specs[0].params}
    monkeypatch.setattr(latency_model, "_MODELS", {})
    other = zoo.build(*args[:3], 7.0, **kw).spec     # another problem: may refine, never smaller
    assert other.params >= specs[0].params and other.search["exported"] <= search.MAX_EXPORTS


def test_looser_latency_never_gives_fewer_params_with_fake_timings(fake_timer):
    seq = []
    for ms in (2.0, 3.0, 4.5, 6.0, 9.0, 14.0):
        seq.append(zoo.build("image-classification", 1_000_000, None, ms,
                             input_shape=(3, 224, 224), num_classes=1000).spec.params)
    assert all(a <= b for a, b in zip(seq, seq[1:])), seq
    assert seq[0] < seq[-1]
