"""zoo-bench learn --check: the factory's pick against the best candidate and the linear baseline."""
from __future__ import annotations

import json

import zoo
from zoo.benchmarks import learn_check


N = 35  # iris rows below the fitted MLP threshold (policy.TABULAR_MLP_MIN_SAMPLES): the pick is linear


def _json(tmp_path, linear: float, mlp: float):
    runs = []
    for seed in (0, 1):
        runs.append({"dataset": "iris", "n": N, "candidate": "linear-x1", "model": "linear",
                     "params": 15, "stem": None, "view": "native", "seed": seed,
                     "test_score": linear})
        runs.append({"dataset": "iris", "n": N, "candidate": "mlp-x0.5", "model": "mlp",
                     "params": 17_539, "stem": None, "view": "native", "seed": seed,
                     "test_score": mlp})
    path = tmp_path / "learn.json"
    path.write_text(json.dumps({"runtime": {}, "results": {
        "budgets": {"epochs": None, "time_budget_s": 5.0}, "seeds": [0, 1], "runs": runs}}))
    return path


def _pick_is_linear():
    spec = zoo.build("tabular-classification", N, None, None, input_shape=(4,),
                     num_classes=3).spec
    return spec.registry_name == "linear" and spec.params == 15


def test_a_pick_within_two_points_passes_and_reuses_the_row(tmp_path, capsys):
    assert _pick_is_linear()  # the policy's pick for iris at N rows (fitted constants)
    path = _json(tmp_path, linear=0.98, mlp=0.99)
    assert learn_check.check(path) == 0
    out = json.loads((tmp_path / "learn_check.json").read_text())["results"]
    row = out["rows"][0]
    assert out["passed"] and row["within_best"] and row["pick_source"] == "row linear-x1"
    assert row["gap_to_best"] == 1.0 and not row["trained"]
    assert "PASS" in capsys.readouterr().out


def test_a_pick_more_than_two_points_below_the_best_fails(tmp_path, capsys):
    assert _pick_is_linear()
    path = _json(tmp_path, linear=0.90, mlp=0.99)
    assert learn_check.check(path) == 1
    row = json.loads((tmp_path / "learn_check.json").read_text())["results"]["rows"][0]
    assert not row["within_best"] and row["not_below_linear"]
    assert "FAIL" in capsys.readouterr().out


def test_means_use_the_seeds_every_candidate_has(tmp_path):
    path = _json(tmp_path, linear=0.98, mlp=0.99)
    payload = json.loads(path.read_text())
    # a third seed of the MLP alone (an unfinished run) scoring 0 must not drag its mean down
    payload["results"]["runs"].append(dict(payload["results"]["runs"][1], seed=2, test_score=0.0))
    path.write_text(json.dumps(payload))
    assert learn_check.check(path) == 0
    row = json.loads((tmp_path / "learn_check.json").read_text())["results"]["rows"][0]
    assert row["seeds"] == [0, 1] and row["best"] == "mlp-x0.5" and row["best_score"] == 99.0


def test_a_json_with_no_common_seed_is_refused_and_threads_are_restored(tmp_path):
    import pytest
    import torch

    path = _json(tmp_path, linear=0.98, mlp=0.99)
    payload = json.loads(path.read_text())
    payload["runtime"] = {"bench_threads": 1}
    for r in payload["results"]["runs"]:
        if r["candidate"] == "mlp-x0.5":
            r["seed"] += 10   # the MLP's seeds 10, 11; the linear model's 0, 1
    path.write_text(json.dumps(payload))
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match=r"at n=35 of iris no seed has a run of every candidate "
                                         r"\(linear-x1, mlp-x0.5\)"):
        learn_check.check(path)
    assert torch.get_num_threads() == before and not (tmp_path / "learn_check.json").exists()


def test_the_gap_has_its_standard_error_over_the_seeds_paired(tmp_path):
    path = _json(tmp_path, linear=0.90, mlp=0.99)
    payload = json.loads(path.read_text())
    runs = payload["results"]["runs"]
    runs[3]["test_score"] = 0.97  # the MLP's seed 1: the gaps per seed are 9 and 7 points
    path.write_text(json.dumps(payload))
    learn_check.check(path)
    row = json.loads((tmp_path / "learn_check.json").read_text())["results"]["rows"][0]
    assert row["gap_to_best"] == 8.0
    assert row["gap_se"] == 1.0  # stdev(9, 7) / sqrt(2) = 1.414 / 1.414
