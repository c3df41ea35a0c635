"""``zoo-bench``: the suites run end to end at tiny sizes and write well-formed JSON.

Structure only: no test asserts a time, only that every figure has median <= max, min <= median.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zoo.benchmarks.cli import SUITES, main

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME_KEYS = {"device", "device_type", "cpu", "physical_cores", "torch_threads",
                "torch_interop_threads", "env", "versions", "load_average", "bench_threads"}


def _is_figure(fig: dict) -> bool:
    return fig["min_ms"] <= fig["median_ms"] <= fig["max_ms"] and fig["runs"] >= 1


def _is_ratio(r: dict) -> bool:
    return 0 < r["min"] <= r["median"] <= r["max"]


def _check_runtime(payload: dict, suite: str) -> None:
    assert payload["suite"] == suite
    assert RUNTIME_KEYS <= set(payload["runtime"])
    for lib in ("torch", "onnxruntime", "python"):
        assert payload["runtime"]["versions"][lib]


def test_models_suite_json_and_plot(tmp_path):
    out, plot = tmp_path / "models.json", tmp_path / "models.png"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "models", "--filter", "mlp", "--runs", "3",
                           "--warmup", "1", "--json", str(out), "--plot", str(plot)],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "zoo-bench models" in proc.stdout and "mlp" in proc.stdout  # header and table
    payload = json.loads(out.read_text())
    _check_runtime(payload, "models")
    (row,) = payload["results"]["models"]
    assert row["model"] == "mlp" and row["params"] > 0 and row["flops"] > 0
    assert _is_figure(row["eager"]) and _is_figure(row["onnx"]) and row["eager"]["runs"] == 3
    assert _is_ratio(row["eager_over_onnx"])
    assert row["timm"] is None  # timm has no MLP twin
    assert payload["results"]["fold_conv_bn"] is None  # resnet50 not selected
    assert plot.stat().st_size > 0 and plot.read_bytes()[:4] == b"\x89PNG"


def test_models_suite_timm_twin_and_fold_row(tmp_path):
    """resnet50 at 32x32: the paired timm figure and the fold_conv_bn row are present."""
    out = tmp_path / "r50.json"
    assert main(["models", "--filter", "resnet50", "--img-size", "32", "--runs", "2", "--warmup", "0",
                 "--threads", "1", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    pair = results["models"][0]["timm"]
    assert pair["timm_name"] == "resnet50"
    assert _is_figure(pair["ours"]) and _is_figure(pair["timm"]) and _is_ratio(pair["ours_over_timm"])
    fold = results["fold_conv_bn"]
    assert fold["model"] == "resnet50" and fold["input_shapes"] == [[1, 3, 32, 32]]
    assert _is_figure(fold["folded"]) and _is_figure(fold["unfolded"]) and fold["max_abs_diff"] < 1e-3


def test_kernels_suite_tiny_graph(tmp_path, capsys):
    out = tmp_path / "zoo.kernels.json"
    assert main(["kernels", "--nodes", "60", "--edges", "300", "--features", "8", "--hidden", "8",
                 "--classes", "3", "--batch", "2", "--seq-len", "8", "--runs", "2", "--warmup", "1",
                 "--threads", "1", "--json", str(out)]) == 0
    assert "ours/theirs" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    _check_runtime(payload, "kernels")
    rows = payload["results"]
    assert {r["kernel"] for r in rows} == {"gcn propagate", "gcn 2-layer", "attention", "lstm"}
    assert any("PyG GCNConv" in r["theirs_name"] and "train step" in r["case"] for r in rows)
    for r in rows:
        assert _is_figure(r["ours"]) and _is_figure(r["theirs"]) and _is_ratio(r["ours_over_theirs"])
        assert r["max_abs_diff"] < 1e-4, r  # the pair computes the same numbers


@pytest.mark.parametrize("argv, message", [
    (["models", "--filter", "nosuchmodel*"], "matches no model"),
    (["models", "--runs", "0"], "--runs=0"),
    (["kernels", "--nodes", "0"], "--nodes=0"),
])
def test_bad_arguments_are_clear_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo-bench {argv[0]}: error:") and message in err


def test_every_suite_is_listed_and_a_missing_one_says_so(capsys):
    with pytest.raises(SystemExit):
        main(["-h"])
    help_text = capsys.readouterr().out
    for suite in SUITES:
        assert suite in help_text
    missing = [s for s in SUITES if not os.path.exists(os.path.join(PROJECT_ROOT, "benchmarks",
                                                                    f"suite_{s}.py"))]
    for suite in missing:
        assert main([suite]) == 2
        assert "not available yet" in capsys.readouterr().err
