"""``zoo check`` from the shell: the user's MODULE:ATTR, registry names, saved files, curves, JSON,
exit codes; directly (check_cli.main) and through the assembled ``zoo`` parser."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

import zoo
from zoo.factory.check_cli import main

USER_CODE = textwrap.dedent('''
    import torch.nn as nn


    class PlainCNN(nn.Module):
        """30 conv layers in a row, no skip connections."""

        def __init__(self, depth=30, channels=16, num_classes=10):
            super().__init__()
            layers = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
            for _ in range(depth - 1):
                layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(channels, num_classes)

        def forward(self, x):
            return self.fc(self.features(x).mean((2, 3)))


    def small_cnn():
        return PlainCNN(depth=4)


    class Holder:
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))


    not_a_model = 3
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``mynet_<test>.py`` in a temporary working directory, importable only from there."""
    name = f"mynet_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield name
    sys.modules.pop(name, None)


def test_module_attr_class_fails_and_json(user_module, capsys):
    args = [f"{user_module}:PlainCNN", "--input-shape", "3,8,8", "--task", "image-classification",
            "--n-samples", "1000"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert out.startswith("zoo check PlainCNN (")
    assert "FAIL  skip-connections  31 weight layers on the longest path" in out
    assert "1. add skip connections" in out
    assert main(args + ["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "PlainCNN" and data["ok"] is False
    assert data["structure"]["longest"] == 31 and data["structure"]["architecture"] == "cnn"
    skip = next(f for f in data["findings"] if f["rule"] == "skip-connections")
    assert skip["status"] == "fail" and "> 10 layers" in skip["seed"] and "ours" in skip


def test_module_attr_function_and_dotted_attribute(user_module, capsys):
    assert main([f"{user_module}:small_cnn", "--input-shape", "3,8,8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["structure"]["longest"] == 5
    assert main([f"{user_module}:Holder.model", "--input-shape", "16",
                 "--task", "tabular-classification", "--overfit-batch"]) == 0
    out = capsys.readouterr().out
    assert "PASS  overfit-batch" in out and out.startswith("zoo check Sequential")


def test_module_attr_errors_exit_2(user_module, capsys):
    for args, expect in [([f"{user_module}:PlainCNN"], "input_shape=None"),
                         ([f"{user_module}:missing", "--input-shape", "3,8,8"], "no attribute"),
                         ([f"{user_module}:not_a_model"], "got int"),
                         (["no_such_module_xyz:Net"], "cannot import"),
                         ([f"{user_module}:PlainCNN", "--input-shape", "3,8,8", "--arg", "a=1"],
                          "--arg"),
                         ([f"{user_module}:small_cnn", "--input-shape", "3,8,8", "--task", "bogus"],
                          "task='bogus'")]:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("zoo check: error:") and expect in err, err


def test_registry_name_and_saved_file(tmp_path, capsys):
    assert main(["resnet18", "--arg", "img_size=32", "--arg", "width_mult=0.5", "--arg",
                 "num_classes=10", "--task", "image-classification", "--n-samples", "50000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zoo check resnet18") and "FAIL" not in out and "WARN" not in out
    path = tmp_path / "m.safetensors"
    zoo.save(zoo.create("mlp", depth=12, num_classes=3), path)
    assert main([str(path), "--task", "tabular-classification", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "mlp"
    assert next(f for f in data["findings"] if f["rule"] == "skip-connections")["status"] == "warn"
    assert main(["no-such-model"]) == 2
    assert "zoo check: error:" in capsys.readouterr().err


def test_history_file(tmp_path, capsys):
    curves = tmp_path / "curves.json"
    curves.write_text(json.dumps({"train": [0.6, 0.9, 0.99], "val": [0.58, 0.72, 0.70]}))
    assert main(["mlp", "--history", str(curves)]) == 0  # overfitting warns, does not fail
    out = capsys.readouterr().out
    assert "WARN  fit" in out and "overfitting" in out and "1. reduce capacity" in out
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"train": [2.3, 2.3, 2.3], "val": [2.3, 2.3, 2.3],
                                "metric": "loss"}))
    assert main(["mlp", "--history", str(flat), "--json"]) == 1  # not learning fails
    fit = next(f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "fit")
    assert fit["data"]["case"] == "not-learning"
    assert main(["mlp", "--history", str(tmp_path / "missing.json")]) == 2
    assert "history=" in capsys.readouterr().err


def test_assembled_zoo_parser(user_module, capsys):
    from zoo.factory.cli import main as zoo_main

    assert zoo_main(["check", f"{user_module}:small_cnn", "--input-shape", "3,8,8"]) == 0
    assert capsys.readouterr().out.startswith("zoo check PlainCNN")
    with pytest.raises(SystemExit) as info:
        zoo_main(["check", "mlp", "--n-samples", "many"])
    assert info.value.code == 2


def test_the_readme_example_fails_skip_connections_from_its_folder(monkeypatch, capsys):
    """The README's `zoo check plain_cnn:PlainCNN ...`, run from benchmarks/examples as it says."""
    from pathlib import Path

    import zoo.benchmarks

    folder = Path(zoo.benchmarks.__file__).parent / "examples"
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    try:
        assert main(["plain_cnn:PlainCNN", "--input-shape", "3,32,32", "--task",
                     "image-classification", "--n-samples", "1000", "--json"]) == 1
    finally:
        sys.modules.pop("plain_cnn", None)
    report = json.loads(capsys.readouterr().out)
    status = {f["rule"]: f["status"] for f in report["findings"]}
    assert status["skip-connections"] == "fail"
    assert status["inductive-bias"] == "pass" and status["gradient-flow"] == "pass"
