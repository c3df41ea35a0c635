"""build(train_budget_s=..., epochs=...): the training-time estimate, the filter and its errors."""
from __future__ import annotations

import math

import pytest

import zoo
from zoo.factory import policy, train_time


def test_seconds_per_epoch_is_steps_times_flops_over_rate_plus_overhead():
    rate = (1e9, 0.002)
    n, f = 1000, 10_000
    batch = train_time.default_batch(n, graph=False)
    steps = math.ceil(n / batch)
    want = steps * (3 * f * batch / rate[0] + rate[1])
    assert train_time.seconds_per_epoch(f, n, rate) == pytest.approx(want)
    # a graph is one full-graph step an epoch
    assert train_time.seconds_per_epoch(f, 500, rate, graph=True) == pytest.approx(3 * f / 1e9 + 0.002)


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
