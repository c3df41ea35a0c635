"""``zoo build``: the report, --json, the files written with --out, and errors (exit 2)."""
from __future__ import annotations

import json

import onnx
import pytest

import zoo
from zoo.factory.spec import ModelSpec
from zoo.factory.cli import main as zoo_main

ARGS = ["build", "tabular-classification", "--n-samples", "5000", "--vram-gb", "1",
        "--latency-ms", "none", "--input-shape", "16", "--num-classes", "3", "--quiet"]


def test_report_and_files(tmp_path, capsys):
    out = tmp_path / "new" / "dir"
    assert zoo_main(ARGS + ["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "zoo build tabular-classification: mlp" in text and "Decision:" in text
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.safetensors", "spec.json"]
    spec = ModelSpec.from_dict(json.loads((out / "spec.json").read_text()))
    loaded = zoo.load(out / "model.safetensors")
    assert loaded.config == spec.config and ModelSpec.from_dict(loaded.spec) == spec
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert ModelSpec.from_dict(json.loads(meta["zoo.spec"])) == spec


def test_json_prints_the_spec(capsys):
    assert zoo_main(ARGS + ["--json"]) == 0
    spec = ModelSpec.from_dict(json.loads(capsys.readouterr().out))
    assert spec.candidate == "mlp" and spec.budgets["vram_gb"] == 1.0
    assert spec.budgets["latency_ms"] is None


@pytest.mark.parametrize("argv,pattern", [
    (["build", "tabular-foo", "--n-samples", "10", "--vram-gb", "1", "--latency-ms", "1"],
     "zoo build: error: task='tabular-foo' is not accepted"),
    (["build", "tabular-classification", "--vram-gb", "1", "--latency-ms", "1"],
     "zoo build: error: n_samples=None is not accepted: expected --n-samples N or --data FILE"),
    (["build", "tabular-classification", "--n-samples", "10", "--vram-gb", "lots",
      "--latency-ms", "1"], "zoo build: error: argument --vram-gb"),
    (ARGS[:4] + ["--vram-gb", "0.0001"] + ARGS[6:],
     "zoo build: error: vram_gb=0.0001: the cheapest candidate"),
])
def test_errors_exit_2_with_a_message(argv, pattern, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(zoo_main(argv + ["--out", str(tmp_path / "o")]))
    assert info.value.code == 2
    assert pattern in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written on failure
