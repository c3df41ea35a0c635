"""build(train_budget_s=..., epochs=...): the training-time estimate, the filter and its errors."""
from __future__ import annotations

import math

import pytest

import zoo
from zoo.factory import count_cache, policy, search, train_time
from zoo.factory.problem import Problem


def test_seconds_per_epoch_is_steps_times_the_step_time_read_off_two_timed_points():
    # t(F) = t_s + (F - F_s) / R: 10 ms at 1 GFLOP a step, 1 TFLOP/s beyond it
    step = train_time.StepTime(flops_small=1e9, seconds_small=0.010, rate=1e12)
    assert step.seconds(1e9) == pytest.approx(0.010)
    assert step.seconds(3e9) == pytest.approx(0.012)
    n, f = 1000, 100_000
    batch = train_time.default_batch(n, graph=False)
    want = math.ceil(n / batch) * step.seconds(3 * f * batch)
    assert train_time.seconds_per_epoch(f, n, step) == pytest.approx(want)
    # a graph is one full-graph step an epoch
    assert train_time.seconds_per_epoch(f, 500, step, graph=True) == pytest.approx(step.seconds(3 * f))
    # one timed point: a step is FLOP-bound from it
    alone = train_time.StepTime(flops_small=1e9, seconds_small=0.010)
    assert alone.seconds(4e9) == pytest.approx(0.040)


def test_the_estimate_counts_the_timed_point_once():
    """The path's smallest point's estimate is its own timed step times the steps of an epoch (an
    earlier estimate added its FLOPs on top of the step time it had measured: twice the cost)."""
    problem = Problem.from_arguments("tabular-classification", 2_000, None, None,
                                     input_shape=(20,), num_classes=3, train_budget_s=60)
    path = [p.config for p in search.candidate_path(problem, policy.CANDIDATES["mlp"])]
    flops = count_cache.flops(path[0], None)
    step = train_time.step_time(problem, path)
    batch = train_time.default_batch(2_000, graph=False)
    assert train_time.estimate(problem, path[0], flops, path=path) == pytest.approx(
        math.ceil(2_000 / batch) * step.seconds_small)


def test_the_chosen_model_gets_the_epochs_it_needs_within_the_budget():
    model = zoo.build("tabular-classification", 5_000, None, None, input_shape=(20,),
                      num_classes=3, train_budget_s=600)
    b = model.spec.budgets
    assert b["train_budget_s"] == 600 and b["epochs_needed"] == policy.epochs_needed("tabular")
    assert b["seconds_per_epoch"] * b["epochs_needed"] <= 600
    assert b["epochs_allowed"] >= b["epochs_needed"]
    assert any("training budget 600 s" in r for r in model.spec.reasons)


def test_a_looser_training_budget_never_gives_a_smaller_model():
    sizes = []
    for budget in (5.0, 30.0, 300.0, None):
        try:
            m = zoo.build("image-classification", 3_000, None, None, input_shape=(1, 28, 28),
                          num_classes=10, train_budget_s=budget, epochs=20)
            sizes.append(m.spec.params)
        except zoo.BudgetError:
            sizes.append(0)
    assert sizes == sorted(sizes)


def test_a_budget_too_small_for_anything_names_train_budget_s_and_one_that_works():
    with pytest.raises(zoo.BudgetError) as info:
        zoo.build("tabular-classification", 1_000_000, None, None, input_shape=(50,),
                  num_classes=3, train_budget_s=1e-4, epochs=100)
    err = info.value
    assert err.budget == "train_budget_s" and "train_budget_s=0.0001" in str(err)
    assert err.would_work > 1e-4


@pytest.mark.parametrize("kw,name", [({"train_budget_s": -1}, "train_budget_s"),
                                     ({"train_budget_s": "soon"}, "train_budget_s"),
                                     ({"epochs": 0}, "epochs")])
def test_bad_training_budget_arguments_name_themselves(kw, name):
    with pytest.raises(ValueError, match=f"{name}="):
        zoo.build("tabular-classification", 100, None, None, input_shape=(4,), num_classes=3, **kw)


def test_the_flat_mlp_stands_in_for_a_temporal_cnn_the_budget_cannot_train():
    """On 537 series of 1,344 steps the CNN replaced the flat MLP; 3 s buys even its smallest
    point (~1-3 s an epoch on 1-2 CPU threads) far fewer epochs than it needs, and the flat MLP
    (~0.03 s an epoch) all of them, so the flat MLP stands in. Without a budget the CNN is chosen
    and the stand-in not searched."""
    kw = dict(input_shape=(1344, 1), num_classes=11)
    assert "tcn" in policy.allowed_candidates("sequence", n_samples=537, seq_len=1344)[0]
    free = zoo.build("sequence-classification", 537, None, None, **kw)
    assert free.spec.candidate == "tcn"
    assert any("mlp-flat: stands in for tcn" in r for r in free.spec.reasons)
    tight = zoo.build("sequence-classification", 537, None, None, train_budget_s=3, **kw)
    assert tight.spec.candidate == "mlp-flat"
    assert any("tcn: smallest candidate" in r and "too slow to train" in r for r in tight.spec.reasons)
    # asked for by name, the flat MLP is a plain candidate
    named = zoo.build("sequence-classification", 537, None, None, families=["tcn", "mlp-flat"], **kw)
    assert named.spec.candidate == "mlp-flat"  # the larger model wins, as between any two


@pytest.mark.serial  # it times real training, which a neighbouring xdist worker would slow
def test_the_estimated_epoch_is_within_2x_of_a_real_zoo_fit_epoch():
    """The spec's seconds per epoch against ``zoo.fit`` training the chosen model on n samples
    (no validation split: the steps the estimate counts). Loose bounds: the machine is shared.
    The estimate before the two timed points of the candidate's own path (a family rate measured
    once per process, the timed step counted twice) fails it."""
    import numpy as np
    import time

    n = 3_000  # within learn.json's image sizes: the narrow ResNet-18 (x0.25)
    model = zoo.build("image-classification", n, None, None, input_shape=(1, 28, 28),
                      num_classes=10, train_budget_s=600)
    estimated = model.spec.budgets["seconds_per_epoch"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, n)
    start = time.perf_counter()
    history = zoo.fit(model, (X, y), epochs=2, progress=False, seed=0)
    measured = (time.perf_counter() - start) / len(history.epochs)
    assert model.spec.candidate == "resnet18-narrow"
    assert 1 / 2 <= estimated / measured <= 2, (estimated, measured)
