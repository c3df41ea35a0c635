"""Loosening a budget or adding data never gives a smaller model (by construction: see
factory.search). Each chain runs in one process, as the construction's latency cache assumes."""
from __future__ import annotations

import zoo


def params_along(values, build):
    out = []
    for v in values:
        try:
            out.append(build(v).spec.params)
        except zoo.BudgetError:
            out.append(0)  # nothing fits: the smallest possible answer
    return out


def assert_non_decreasing(seq):
    assert all(a <= b for a, b in zip(seq, seq[1:])), seq


def test_more_samples_never_give_fewer_params_tabular():
    seq = params_along([200, 900, 1_000, 5_000, 60_000, 1_000_000],
                       lambda n: zoo.build("tabular-classification", n, 0.5, None,
                                           input_shape=(30,), num_classes=4))
    assert_non_decreasing(seq)
    assert seq[0] < seq[-1]


def test_more_samples_never_give_fewer_params_images():
    # Crosses the family switch (MobileNetV2 below ResNet-18's size, ResNet above).
    seq = params_along([2_000, 20_000, 50_000, 200_000],
                       lambda n: zoo.build("image-classification", n, None, None,
                                           input_shape=(3, 32, 32), num_classes=10))
    assert_non_decreasing(seq)
    assert seq[0] < seq[-1]


def test_more_memory_never_gives_fewer_params():
    seq = params_along([0.022, 0.03, 0.05, 0.1, 0.3, None],
                       lambda v: zoo.build("tabular-classification", 1_000_000, v, None,
                                           input_shape=(500,), num_classes=10, batch_size=1024))
    assert_non_decreasing(seq)
    assert seq[0] < seq[-1]


def test_more_latency_never_gives_fewer_params():
    seq = params_along([0.05, 0.5, 3.0, None],
                       lambda ms: zoo.build("sequence-classification", 50_000, None, ms,
                                            input_shape=(20, 8), num_classes=3))
    assert_non_decreasing(seq)
    assert seq[1] < seq[-1]
