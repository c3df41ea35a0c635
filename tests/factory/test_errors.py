"""Bad input raises ValueError naming the argument, the value and what is accepted; a budget
nothing meets raises zoo.BudgetError saying which, what the cheapest costs, and what would work."""
from __future__ import annotations

import pytest

import zoo

OK = dict(input_shape=(12,), num_classes=2)


@pytest.mark.parametrize("args,kw,pattern", [
    (("tabular-clasification", 100, 1, None), OK,
     r"task='tabular-clasification' is not accepted: expected one of \('tabular-classification'"),
    (("tabular-classification", 0, 1, None), OK, r"n_samples=0 is not accepted: expected an integer >= 1"),
    (("tabular-classification", -5, 1, None), OK, r"n_samples=-5 is not accepted"),
    (("tabular-classification", 2.5, 1, None), OK, r"n_samples=2.5 is not accepted"),
    (("tabular-classification", 100, 0, None), OK, r"vram_gb=0(\.0)? is not accepted: expected a finite number > 0"),
    (("tabular-classification", 100, -1.0, None), OK, r"vram_gb=-1.0 is not accepted"),
    (("tabular-classification", 100, 1, 0), OK, r"latency_ms=0(\.0)? is not accepted: expected a finite number > 0"),
    (("tabular-classification", 100, 1, float("nan")), OK, r"latency_ms=nan is not accepted"),
    (("tabular-classification", 100, 1, None), dict(input_shape=(3, 32), num_classes=2),
     r"input_shape=\(3, 32\) is not accepted: expected \(n_features,\)"),
    (("tabular-classification", 100, 1, None), dict(num_classes=2),
     r"input_shape=None is not accepted: expected \(n_features,\)"),
    (("image-classification", 100, 1, None), dict(input_shape=(3, 0, 32), num_classes=2),
     r"input_shape=\(3, 0, 32\) is not accepted: expected \(C, H, W\)"),
    (("sequence-classification", 100, 1, None), dict(input_shape=(30,), num_classes=2),
     r"input_shape=\(30,\) is not accepted: expected \(seq_len, n_features\)"),
    (("tabular-classification", 100, 1, None), dict(input_shape=(12,)),
     r"num_classes=None is not accepted: expected an integer >= 2"),
    (("tabular-regression", 100, 1, None), dict(input_shape=(12,), num_classes=3),
     r"num_classes=3 is not accepted: expected one of \(None, 1\)"),
    (("tabular-classification", 100, 1, None), dict(OK, optimizer="adagrad"),
     r"optimizer='adagrad' is not accepted: expected one of \('adam', 'adamw', 'sgd', 'sgd-momentum'\)"),
    (("tabular-classification", 100, 1, None), dict(OK, dtype="int8"), r"dtype='int8' is not accepted"),
    (("tabular-classification", 100, 1, None), dict(OK, device="tpu"), r"device='tpu' is not accepted"),
    (("tabular-classification", 100, 1, None), dict(OK, batch_size=0), r"batch_size=0 is not accepted"),
    (("tabular-classification", 100, 1, None), dict(OK, families=["resnet18"]),
     r"families=\['resnet18'\] is not accepted: expected names of tabular models .*linear.*mlp"),
    (("sequence-classification", 5_000, 1, None), dict(input_shape=(500, 4), num_classes=2,
                                                        families=["transformer"]),
     r"families=\['transformer'\] is not accepted: expected no transformer on 5,000 samples"),
    (("node-classification", 100, 1, None), dict(input_shape=(100, 8), num_classes=2, batch_size=4),
     r"batch_size=4 is not accepted: expected one of \(1,\)"),
    (("tabular-classification", 100, 1, None), dict(OK, n_edges=10), r"n_edges=10 is not accepted"),
])
def test_bad_input_is_named(args, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        zoo.build(*args, **kw)


def test_budget_error_for_latency_names_the_cheapest_and_what_would_work():
    with pytest.raises(zoo.BudgetError) as info:
        # 60 rows: below the fitted MLP threshold, the linear model is the only candidate
        zoo.build("tabular-classification", 60, 1, 0.0001, input_shape=(12,), num_classes=2)
    err = info.value
    msg = str(err)
    assert msg.startswith("latency_ms=0.0001: the cheapest candidate that fits memory (linear")
    assert "ms at batch 1 in ONNX Runtime" in msg
    assert err.budget == "latency_ms" and err.would_work > 0.001
    assert f"latency_ms >= {err.would_work:g} would work" in msg
