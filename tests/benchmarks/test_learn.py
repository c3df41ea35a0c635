"""zoo-bench learn: a tiny real run writes valid JSON and a PNG; the issue-8 tables aggregate
seeds and choose each family's multiplier on validation; bad input exits 2 with a message."""
from __future__ import annotations

import json
import math

import pytest

from zoo.benchmarks import learn_report as R
from zoo.benchmarks import suite_learn as S
from zoo.benchmarks.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _run(tmp_path, *extra):
    out = tmp_path / "learn.json"
    code = main(["learn", "--json", str(out), "--sizes", "largest", "--epochs", "2", *extra])
    return code, out


def test_tiny_run_writes_json_plot_and_tables(tmp_path, capsys):
    code, out = _run(tmp_path, "--datasets", "iris", "--candidates", "linear-x1,mlp-x0.125", "--seeds", "2")
    assert code == 0
    text = capsys.readouterr().out
    assert "iris: tabular classification" in text and "issue 8, stems" in text
    payload = json.loads(out.read_text())
    assert payload["suite"] == "learn"
    assert payload["runtime"]["device"] and payload["runtime"]["bench_threads"] >= 1
    assert payload["runtime"]["versions"]["torch"]
    res = payload["results"]
    assert res["seeds"] == [0, 1] and res["budgets"]["epochs"] == 2 and res["budgets"]["time_budget_s"] > 0
    iris = res["datasets"]["iris"]
    assert iris["source"] == "scikit-learn: sklearn.datasets.load_iris" and iris["sizes"] == [105]
    runs = res["runs"]
    # iris's test split has 45 samples and 105 is its largest n: it trains 23 seeds, not 2
    assert sorted((r["candidate"], r["seed"]) for r in runs) == [
        (c, s) for c in ("linear-x1", "mlp-x0.125") for s in range(23)]
    for r in runs:
        assert "error" not in r, r
        assert r["n"] == 105 and r["metric"] == "accuracy" and 0.0 <= r["test_score"] <= 1.0
        assert r["params"] == 15 if r["model"] == "linear" else r["params"] > 15  # 4 features x 3 + 3
        assert 1 <= r["epochs_run"] <= 2 and r["seconds_per_epoch"] > 0
        assert r["best_epoch"] is None or 1 <= r["best_epoch"] <= r["epochs_run"]
    png = out.with_name("learn_plots") / "iris.png"
    assert png.read_bytes()[:8] == PNG
    # --tables re-reads the JSON without training
    assert main(["learn", "--json", str(out), "--tables"]) == 0
    assert "linear-x1" in capsys.readouterr().out


def test_small_test_splits_and_the_judged_size_train_more_seeds():
    from zoo.benchmarks import datasets as D

    small, large = D.DATASETS["iris"], D.DATASETS["digits"]  # 45 and 539 test samples
    assert small.n_test < S.SMALL_TEST <= large.n_test
    few, full = D.train_sizes(small)[0], D.train_sizes(small)[-1]
    assert S.seeds_for(small, [0, 1], few) == list(range(S.SMALL_TEST_SEEDS))
    assert S.seeds_for(small, list(range(7)), few) == list(range(7))  # never fewer than asked for
    assert S.seeds_for(large, [0, 1], D.train_sizes(large)[0]) == [0, 1]
    # the largest n, which the check judges: ceil(1000 / m) seeds within 10..100
    assert S.seeds_for(small, [0, 1], full) == list(range(23))  # ceil(1000 / 45) = 23
    art = D.DATASETS["art_philo_science"]  # 15 test nodes: ceil(1000 / 15) = 67
    assert S.seeds_for(art, [0, 1], D.train_sizes(art)[-1]) == list(range(67))
    assert S.seeds_for(large, [0, 1], D.train_sizes(large)[-1]) == list(range(10))  # ceil(1000 / 539) = 2 -> 10
    star = D.DATASETS["star98"]  # 91 test samples: ceil(1000 / 91) = 11
    assert S.seeds_for(star, [0, 1], D.train_sizes(star)[-1]) == list(range(11))


def test_graph_run_scores_test_nodes(tmp_path):
    code, out = _run(tmp_path, "--datasets", "karate_club", "--candidates", "gcn-x0.5,linear-x1",
                     "--seeds", "1")
    assert code == 0
    runs = json.loads(out.read_text())["results"]["runs"]
    assert {r["candidate"] for r in runs} == {"gcn-x0.5", "linear-x1"}
    for r in runs:
        assert "error" not in r, r
        # 18 test nodes: every accuracy is a multiple of 1/18
        assert math.isclose(r["test_score"] * 18, round(r["test_score"] * 18), abs_tol=1e-6)


def test_resume_keeps_finished_runs(tmp_path):
    code, out = _run(tmp_path, "--datasets", "iris", "--candidates", "linear-x1", "--seeds", "1")
    assert code == 0
    first = json.loads(out.read_text())["results"]["runs"]
    code, _ = _run(tmp_path, "--datasets", "iris", "--candidates", "linear-x1", "--seeds", "1", "--resume")
    assert code == 0 and json.loads(out.read_text())["results"]["runs"] == first


@pytest.mark.parametrize("argv, message", [
    (["--candidates", "nothing-*", "--datasets", "iris"], "matches no candidate"),
    (["--datasets", "iris,nope"], "--datasets='nope' is not accepted"),
    (["--epochs", "0", "--datasets", "iris"], "--epochs=0 is not accepted"),
    (["--tables"], "no such file"),
])
def test_bad_input_exits_2(tmp_path, capsys, argv, message):
    assert main(["learn", "--json", str(tmp_path / "missing.json"), *argv]) == 2
    assert message in capsys.readouterr().err


def _runs(dataset, candidate, model, scores, *, val=None, stem=None, view="native", n=100):
    return [{"dataset": dataset, "n": n, "candidate": candidate, "model": model, "family": model,
             "width_mult": 1.0, "stem": stem, "view": view, "seed": i, "metric": "accuracy",
             "test_score": s, "val_score": val if val is not None else s, "params": 1000,
             "seconds_per_epoch": 0.1, "best_epoch": 3, "epochs_run": 5} for i, s in enumerate(scores)]


def test_stem_table_compares_twins_at_the_largest_n():
    runs = (_runs("digits", "resnet18-x0.25-small", "resnet18", [0.90, 0.94], stem="small")
            + _runs("digits", "resnet18-x0.25-imagenet", "resnet18", [0.50, 0.60], stem="imagenet")
            + _runs("digits", "resnet18-x0.25-imagenet", "resnet18", [0.99], stem="imagenet", n=10))
    datasets = {"digits": {"kind": "image", "input_shape": [1, 8, 8]}}
    (row,) = R.stem_table(R.summarize(runs), datasets)
    assert row["n"] == 100 and row["input"] == "8x8"
    assert row["gap_points"] == pytest.approx(100 * (0.92 - 0.55))
    assert row["small"] == "92.0 [90.0-94.0]" and row["small_wins"] is True
    assert row["epochs"] == "5 / 5"  # epochs reached by each twin (the fixture's runs: 5)


def test_series_table_chooses_multiplier_on_validation():
    runs = (_runs("gunpoint", "tcn-x0.5", "tcn", [0.80], val=0.9)
            + _runs("gunpoint", "tcn-x1", "tcn", [0.95], val=0.7)
            + _runs("gunpoint", "lstm-x1", "lstm", [0.50])
            + _runs("gunpoint", "mlp-x1", "mlp", [0.81], view="flat"))
    datasets = {"gunpoint": {"kind": "sequence", "length": "long", "task": "classification",
                             "input_shape": [150, 1]}}
    (row,) = R.series_table(R.summarize(runs), datasets)
    assert "(tcn-x0.5)" in row["tcn"]
    assert row["tcn_minus_lstm"] == pytest.approx(30.0) and row["tcn_minus_mlp"] == pytest.approx(-1.0)
    assert row["tcn_beats_lstm"] is True and row["tcn_within_2_of_mlp"] is True
    assert row["tcn_epochs"] == "5"
    # a tie on validation goes to the smaller model, not to the better test score
    tie = (_runs("gunpoint", "tcn-x0.5", "tcn", [0.80], val=0.9)
           + [dict(r, params=4000) for r in _runs("gunpoint", "tcn-x1", "tcn", [0.95], val=0.9)])
    (row,) = R.series_table(R.summarize(tie), datasets)
    assert "(tcn-x0.5)" in row["tcn"]


def test_summarize_counts_failures_apart():
    runs = _runs("iris", "mlp-x1", "mlp", [0.9, 0.7])
    runs.append(dict(runs[0], seed=2, error="RuntimeError: boom"))
    (s,) = R.summarize(runs)
    assert s["seeds"] == 2 and s["errors"] == 1 and s["score"] == pytest.approx(0.8)


def test_candidates_cover_each_kind_and_filter_by_pattern():
    image = {c.label for c in S.candidates("image")}
    assert {"resnet18-x0.25-small", "resnet18-x0.25-imagenet", "mobilenetv2-x0.35-small",
            "mobilenetv2-x0.35-imagenet"} <= image
    assert {c.name for c in S.candidates("sequence")} >= {
        "tcn", "lstm", "transformer", "mlp"}
    assert [c.label for c in S.candidates("graph", pattern="gcn-*")] == ["gcn-x0.5", "gcn-x1", "gcn-x2"]
    assert "transformer" in {c.name for c in S.candidates("sequence", seq_len=S.MAX_ATTENTION_LEN)}
    assert "transformer" not in {c.name for c in S.candidates("sequence", seq_len=S.MAX_ATTENTION_LEN + 1)}


def test_weights_last_fits_the_same_split_without_validation(tmp_path, capsys):
    out = tmp_path / "last.json"
    assert S.selection("val", {"weights": "best"}) == "val" and S.selection("val", {}) == "val"
    assert S.selection("val", {"weights": "last"}) is None
    main(["learn", "--datasets", "iris", "--candidates", "linear*", "--sizes", "largest",
          "--seeds", "1", "--epochs", "3", "--weights", "last", "--json", str(out)])
    res = json.loads(out.read_text())["results"]
    assert res["budgets"]["weights"] == "last"
    # no validation split: zoo.fit ran every epoch and kept the last (no best epoch was chosen)
    assert all(r["epochs_run"] == 3 and r["best_epoch"] is None for r in res["runs"])
    capsys.readouterr()
    # resuming those runs under the default (best) weights would mix the two rules: refused
    assert main(["learn", "--datasets", "iris", "--candidates", "linear*", "--sizes", "largest",
                 "--seeds", "1", "--epochs", "3", "--resume", "--json", str(out)]) == 2
    assert "--resume is not accepted with --weights='best'" in capsys.readouterr().err


def test_seed_noise_is_the_median_spread_of_the_candidates_near_the_best(capsys):
    def run(cand, seed, score, n=30):
        return {"dataset": "d", "n": n, "candidate": cand, "seed": seed, "test_score": score}

    runs = [run("a", 0, 0.90), run("a", 1, 0.94),            # mean 92, s = 2.83
            run("b", 0, 0.89), run("b", 1, 0.91),            # mean 90, s = 1.41
            run("c", 0, 0.50), run("c", 1, 0.70),            # 32 points below the best: left out
            run("a", 0, 0.10, n=10), run("a", 1, 0.90, n=10)]  # not the largest n: left out
    s = R.seed_noise(runs)
    assert s["d"] == pytest.approx((2.828427 + 1.414214) / 2, rel=1e-5)
    R.print_seed_noise(runs)  # sqrt(2/5) * 2.12 = 1.34 > 1; sqrt(2/10) * 2.12 = 0.95 <= 1
    assert "<= 1 point on 0 at k = 5, 1 at k = 10 of 1 sets" in capsys.readouterr().out
