"""The examples the policy must give, through ``zoo.build`` end to end (real models, real ONNX
Runtime timings where a latency budget is given)."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.factory import search
from zoo.factory.spec import ModelSpec


def test_300_rows_of_12_features_binary_gives_a_small_mlp():
    # learn.json: from ~100 rows a 2-hidden-layer MLP of ~20k parameters scored within 2 points of
    # the best on every fitted table at n >= 105 (the linear model was 8 points below on star98), so
    # the fitted policy picks it at 300 rows; below 105 rows the linear model stays.
    model = zoo.build("tabular-classification", 300, 1, None, input_shape=(12,), num_classes=2)
    assert model.spec.candidate == "mlp" and model.spec.params <= model.spec.data_cap <= 50_000
    assert model.training and model(torch.randn(4, 12)).shape == (4, 2)
    small = zoo.build("tabular-classification", 60, 1, None, input_shape=(12,), num_classes=2)
    assert small.spec.candidate == "linear" and small.spec.registry_name == "linear"


def test_60000_rows_of_40_features_gives_an_mlp():
    model = zoo.build("tabular-classification", 60_000, 1, None, input_shape=(40,), num_classes=5)
    spec = model.spec
    assert spec.candidate == "mlp"
    assert spec.params <= spec.data_cap
    assert 1 <= model.config["depth"] * 1 and len(model.body) // 2 <= 4  # <= 4 hidden layers
    assert model(torch.randn(3, 40)).shape == (3, 5)


def test_cifar_sized_images_give_a_basic_block_resnet():
    model = zoo.build("image-classification", 50_000, 8, 30, input_shape=(3, 32, 32),
                      num_classes=10)
    spec = model.spec
    assert spec.registry_name in ("resnet18", "resnet34", "seresnet18", "seresnet34"), spec.report()
    assert type(model.layer1[0]).__name__.lower().startswith("basic"), type(model.layer1[0])
    assert spec.memory["total"] <= 8e9 and spec.latency["median_ms"] <= 30
    assert spec.search["measured"] <= 2  # only finalists are exported


# Serial: it times models, which a neighbouring xdist worker's load would distort (the README's
# command runs `-m serial` tests alone, after the parallel ones). The strict check -- the chosen
# model re-measured in a fresh process within its budget -- is `zoo-bench build`'s (timing luck
# must not decide a CI test); here only what the search guarantees by construction.
@pytest.mark.serial
def test_imagenet_sized_data_at_8ms_gives_mobilenetv2_within_its_margin():
    model = zoo.build("image-classification", 1_000_000, 40, 8, input_shape=(3, 224, 224),
                      num_classes=1000)
    spec = model.spec
    assert spec.candidate == "mobilenetv2", spec.report()
    verdicts = {f["candidate"]: f for f in spec.search["candidates"]}
    for resnet in ("resnet50", "resnet18"):
        assert verdicts[resnet]["status"] == "rejected", verdicts[resnet]
    assert " ms" in verdicts["resnet18"]["reason"] and ">" in verdicts["resnet18"]["reason"]
    # At most 3 exports; a 4th only as the search's last resort: the last candidate's cheapest
    # point, when the 3 (the last kept for a proof) all measured too slow (search.py). Which
    # happens on a fresh cache depends on timing, so that case is allowed here.
    assert spec.search["exported"] <= search.MAX_EXPORTS + 1, spec.report()
    margin = spec.budgets["latency_margin"]
    assert 0 < margin < 1
    # the search's own measurement (a fresh process) meets the budget less the measured margin
    assert spec.latency["median_ms"] <= 8 * (1 - margin), spec.report()
    assert spec.latency_spread is not None and "margin" in spec.latency_spread


def test_short_sequences_give_an_lstm():
    model = zoo.build("sequence-classification", 20_000, 4, None, input_shape=(30, 8),
                      num_classes=3)
    # learn.json (issue 10): on short series (ItalyPowerDemand) the temporal CNN and the LSTM at
    # the widths measured were both within 2 points; the larger of the two is built
    assert model.spec.candidate in ("tcn", "lstm")
    assert model(torch.randn(2, 30, 8)).shape == (2, 3)


def test_long_sequences_with_much_data_give_a_transformer():
    model = zoo.build("sequence-classification", 500_000, 16, None, input_shape=(2000, 8),
                      num_classes=3, batch_size=8)
    assert model.spec.candidate == "transformer", model.spec.report()
    assert model.spec.params <= model.spec.data_cap


def test_long_sequences_on_small_data_never_give_a_transformer():
    model = zoo.build("sequence-classification", 5_000, 4, None, input_shape=(500, 8),
                      num_classes=3, batch_size=8)
    # learn.json (issue 10): on long series the LSTM stayed near chance; the flat MLP or the
    # temporal CNN is the evidence's pick (policy.TCN_MAX_LEN decides which)
    assert model.spec.candidate in ("mlp-flat", "tcn")


def test_a_graph_of_20000_nodes_gives_a_gcn():
    model = zoo.build("node-classification", 20_000, 4, None, input_shape=(20_000, 128),
                      num_classes=7)
    spec = model.spec
    assert spec.candidate == "gcn"
    assert len(model.layers) in (2, 3)
    x, edge_index = model.example_inputs(1, num_nodes=50, num_edges=200)
    assert model(x, edge_index).shape == (50, 7)


@pytest.mark.parametrize("task,kw", [
    ("tabular-classification", dict(input_shape=(12,), num_classes=2)),
    ("tabular-regression", dict(input_shape=(12,))),
    ("image-classification", dict(input_shape=(3, 32, 32), num_classes=10)),
    ("sequence-regression", dict(input_shape=(30, 8))),
    ("node-classification", dict(input_shape=(500, 16), num_classes=3)),
])
def test_any_task_with_a_tiny_memory_budget_raises_budget_error(task, kw):
    with pytest.raises(zoo.BudgetError, match=r"vram_gb=0\.0001: the cheapest candidate .* needs "
                                              r"[0-9.]+ GB to train at batch \d+ with adam; "
                                              r"vram_gb >= [0-9.]+ would work") as info:
        zoo.build(task, 2_000, 0.0001, None, **kw)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.budget == "vram_gb" and err.would_work > 0.0001 and err.cheapest["params"] > 0


def test_the_spec_rebuilds_the_model_and_survives_json_and_saving(tmp_path):
    model = zoo.build("tabular-regression", 5_000, 1, None, input_shape=(20,), seed=3)
    spec = model.spec
    again = ModelSpec.from_dict(spec.to_json())
    assert again == spec
    rebuilt = zoo.from_config(spec.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    path = zoo.save(model, tmp_path / "m.safetensors")
    loaded = zoo.load(path)
    assert ModelSpec.from_dict(loaded.spec) == spec
    text = spec.report()
    for piece in ("mlp", "parameters", "training", "Rules that fired", "Decision", "chosen"):
        assert piece in text


def test_the_returned_model_is_seeded_and_in_train_mode():
    kw = dict(input_shape=(12,), num_classes=3)
    a = zoo.build("tabular-classification", 5_000, 1, None, seed=1, **kw)
    b = zoo.build("tabular-classification", 5_000, 1, None, seed=1, **kw)
    c = zoo.build("tabular-classification", 5_000, 1, None, seed=2, **kw)
    assert a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_families_restricts_the_candidates():
    model = zoo.build("image-classification", 50_000, None, None, input_shape=(3, 32, 32),
                      num_classes=10, families=["mobilenetv2"])
    assert model.spec.registry_name == "mobilenetv2"
    assert {c["candidate"] for c in model.spec.candidates} <= {"mobilenetv2", "mobilenetv2-se"}
