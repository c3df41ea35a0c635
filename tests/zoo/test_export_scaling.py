"""An export's graph does not grow with the data's size: sequence length, or edge count.

The exported graph of a sequence model is the same (same operators, same count) whether it was
traced at 50 or 400 steps, and one file runs several lengths; a GCN traced on 256 or 40,000 edges
gives the same graph. (The export *time* this buys is measured by ``zoo-bench export``.)
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import zoo
from tests.conftest import build_small

RTOL = 1e-4


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_sequence_graph_is_independent_of_the_traced_length(name, tmp_path):
    short = zoo.export_onnx(build_small(name, seq_len=50).eval(), tmp_path / "short.onnx")
    long = zoo.export_onnx(build_small(name, seq_len=400).eval(), tmp_path / "long.onnx")
    assert _ops(short) == _ops(long)
    assert not {"Loop", "Scan"} & set(_ops(long))


SEQUENCE_MODELS = [n for n in zoo.list_models() if zoo.get_entry(n).input_kind == "sequence"]


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_one_sequence_file_runs_several_lengths(name, tmp_path):
    model = build_small(name, seq_len=40).eval()
    path = zoo.export_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[:2] == ["batch", "time"]
    for batch, steps in ((1, 5), (4, 40), (4, 23)):
        x = torch.randn(batch, steps, model.in_features)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == want.shape and _rel_err(got, want) <= RTOL


def test_gcn_graph_is_independent_of_the_edge_count(tmp_path):
    small = zoo.export_onnx(build_small("gcn", num_nodes=64).eval(), tmp_path / "small.onnx")
    large = zoo.export_onnx(build_small("gcn", num_nodes=10_000).eval(), tmp_path / "large.onnx")
    assert _ops(small) == _ops(large)
    # No array the size of the traced graph was baked in as a constant.
    assert abs(large.stat().st_size - small.stat().st_size) < 1024
