"""``check_model`` / ``zoo check``: each design rule on real zoo models, the CLI, bad input."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.factory.check import CheckReport, check_model, main
from zoo.factory.policy import TASKS, capacity_cap
from zoo.cli import main as zoo_main

IMG = {"img_size": 64}


def statuses(report: CheckReport) -> dict[str, str]:
    return {f.rule: f.status for f in report.findings}


def test_resnet18_passes_skip_and_gradient_rules():
    model = zoo.create("resnet18", num_classes=10, **IMG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    report = check_model(model, task="image-classification", n_samples=50_000)
    s = statuses(report)
    assert s == {"inductive-bias": "pass", "capacity": "pass", "skip-connections": "pass",
                 "depth-width": "pass", "gradient-flow": "pass"}, report.report()
    assert report.ok
    skip = report.finding("skip-connections").data
    # conv1 + 8 basic blocks x 2 convs + fc; through the shortcuts: conv1 + 3 projections + fc.
    assert skip["weight_layers_longest_path"] == 18
    assert skip["weight_layers_shortest_path"] == 5
    assert skip["residual_adds"] == 8
    grad = report.finding("gradient-flow").data
    assert grad["first_layer"] == "conv1.weight" and grad["last_layer"] == "fc.weight"
    assert 1e-4 < grad["ratio"] < 1e4
    # The caller's model is untouched: same weights, still in eval mode, no gradients.
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_deep_mlp_warns_on_skip_connections():
    report = check_model(zoo.create("mlp", depth=12), task="tabular-regression")
    finding = report.finding("skip-connections")
    assert finding.status == "warn", report.report()
    assert finding.data["weight_layers_longest_path"] == 13  # 12 hidden + head
    assert finding.data["residual_adds"] == 0
    assert "skip connections" in finding.principle
    assert statuses(report)["inductive-bias"] == "pass"
    assert report.ok  # warnings do not fail


def test_shallow_mlp_needs_no_skips():
    report = check_model(zoo.create("mlp", depth=2))
    assert report.finding("skip-connections").status == "pass"


def test_mlp_on_images_fails_inductive_bias():
    report = check_model(zoo.create("mlp"), task="image-classification")
    finding = report.finding("inductive-bias")
    assert finding.status == "fail"
    assert "tabular" in finding.message and "image" in finding.message
    assert "resnet18" in finding.data["policy_families"]
    assert not report.ok


def test_resnet50_on_300_samples_warns_on_capacity():
    # On the meta device: parameters and the traced depth need no data; the gradient rule skips.
    model = zoo.create("resnet50", device="meta")
    report = check_model(model, n_samples=300)
    finding = report.finding("capacity")
    assert finding.status == "warn", report.report()
    cap = capacity_cap("image", 300)
    assert finding.data["cap"] == cap
    assert finding.data["ratio_to_cap"] == pytest.approx(report.params / cap)
    assert finding.data["params_per_sample"] == pytest.approx(report.params / 300)
    assert report.finding("skip-connections").data["weight_layers_longest_path"] == 50
    assert statuses(report)["gradient-flow"] == "skip"
    assert statuses(report)["inductive-bias"] == "skip"  # no task given


def test_inception_warns_without_skips_and_says_why():
    report = check_model(zoo.create("inception", width_mult=0.5, num_classes=5, **IMG))
    finding = report.finding("skip-connections")
    assert finding.status == "warn"
    assert "BatchNorm" in finding.message
    assert finding.data["weight_layers_longest_path"] == 22


def test_se_gates_are_not_layers_and_lstm_layers_are():
    se = check_model(zoo.create("seresnet18", width_mult=0.5, num_classes=5, **IMG))
    assert se.finding("skip-connections").data["weight_layers_longest_path"] == 18
    assert se.finding("depth-width").data["min_width"] == 32  # the 8-channel SE squeezes skipped
    lstm = check_model(zoo.create("lstm", layers=3, seq_len=8), task="sequence-regression")
    assert lstm.finding("skip-connections").data["weight_layers_longest_path"] == 4
    assert lstm.finding("gradient-flow").data["first_layer"] == "lstm.weight_ih_l0"
    assert lstm.ok


def test_shallow_and_wide_warns_on_depth_width():
    report = check_model(zoo.create("mlp", hidden=8192, depth=1, in_features=4))
    finding = report.finding("depth-width")
    assert finding.status == "warn" and finding.data["max_width"] == 8192


def test_parameter_without_gradient_fails():
    model = zoo.create("mlp", depth=2)
    model.unused = torch.nn.Linear(3, 3)  # never called by forward
    report = check_model(model)
    finding = report.finding("gradient-flow")
    assert finding.status == "fail"
    assert "unused.weight" in finding.data["no_gradient"]


def test_bad_arguments_raise_value_error():
    model = zoo.create("linear")
    with pytest.raises(ValueError, match="task='images'") as info:
        check_model(model, task="images")
    assert all(t in str(info.value) for t in TASKS)
    with pytest.raises(ValueError, match="n_samples=0"):
        check_model(model, n_samples=0)
    with pytest.raises(ValueError, match="batch_size"):
        check_model(model, batch_size=0)
    with pytest.raises(ValueError, match="model="):
        check_model(torch.nn.Linear(2, 2))


def test_cli_file_round_trip_and_json(tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    zoo.save(zoo.create("mlp", depth=12, num_classes=3), path)
    assert zoo_main(["check", str(path), "--task", "tabular-classification"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zoo check mlp")
    assert "WARN  skip-connections" in out
    assert zoo_main(["check", str(path), "--n-samples", "500", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "mlp" and data["ok"] is True
    assert {f["rule"] for f in data["findings"]} == {
        "inductive-bias", "capacity", "skip-connections", "depth-width", "gradient-flow"}
    assert next(f for f in data["findings"] if f["rule"] == "capacity")["status"] == "warn"


def test_cli_exit_codes(capsys):
    assert main(["mlp", "--task", "image-classification"]) == 1  # a failing rule
    assert "FAIL  inductive-bias" in capsys.readouterr().out
    assert main(["resnet18", "--arg", "img_size=64", "--arg", "width_mult=0.25",
                 "--task", "image-classification", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["img_size"] == 64
    assert zoo_main(["check", "mlp", "--task", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo check: error: task='bogus'") and "tabular-regression" in err
    assert main(["no-such-model"]) == 2
    assert "zoo check: error:" in capsys.readouterr().err
    assert main(["mlp", "--arg", "nonsense"]) == 2
