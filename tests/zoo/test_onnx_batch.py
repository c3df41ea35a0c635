"""The batch axis of a fixed-batch ONNX graph is made symbolic only when provably per-sample."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import zoo
from tests.conftest import build_small
from zoo.onnx_batch import make_batch_dynamic

B = 2


def _graph(nodes, out_shape, inits=()):
    """A model with input x (B, 2, 4) and output y, shapes filled in by ONNX shape inference."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _run(proto, batch):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 2, 4)).astype(np.float32)
    return x, sess.run(None, {"x": x})[0]


def test_per_sample_graph_gets_a_symbolic_batch_and_runs_any_batch():
    proto = _graph([helper.make_node("Relu", ["x"], ["r"]),
                    helper.make_node("Reshape", ["r", "s"], ["f"]),
                    helper.make_node("Add", ["f", "c"], ["y"])], [B, 8],
                   inits=[("s", np.array([B, 8], np.int64)), ("c", np.ones((1, 8), np.float32))])
    assert make_batch_dynamic(proto, B)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 5):
        x, y = _run(proto, batch)
        np.testing.assert_allclose(y, np.maximum(x, 0).reshape(batch, 8) + 1, rtol=1e-6)


@pytest.mark.parametrize("case", ["reshape_merges_batch", "mean_over_batch", "batch_sized_const",
                                  "shape_op", "transpose_batch"])
def test_graphs_that_mix_samples_are_refused_and_left_unchanged(case):
    nodes, out, inits = {
        "reshape_merges_batch": ([helper.make_node("Reshape", ["x", "s"], ["y"])], [1, 2 * B * 4],
                                 [("s", np.array([1, 2 * B * 4], np.int64))]),
        "mean_over_batch": ([helper.make_node("ReduceMean", ["x", "a"], ["m"]),
                             helper.make_node("Sub", ["x", "m"], ["y"])], [B, 2, 4],
                            [("a", np.array([0], np.int64))]),
        "batch_sized_const": ([helper.make_node("Add", ["x", "c"], ["y"])], [B, 2, 4],
                              [("c", np.ones((B, 2, 4), np.float32))]),
        "shape_op": ([helper.make_node("Shape", ["x"], ["s"]),
                      helper.make_node("Reshape", ["x", "s"], ["y"])], [B, 2, 4], []),
        "transpose_batch": ([helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
                             helper.make_node("Transpose", ["t"], ["y"], perm=[1, 0, 2])],
                            [B, 2, 4], []),
    }[case]
    proto = _graph(nodes, out, inits)
    before = proto.SerializeToString()
    assert not make_batch_dynamic(proto, B)
    assert proto.SerializeToString() == before


def test_export_falls_back_to_a_symbolic_trace_when_the_proof_fails(tmp_path):
    model = build_small("mlp").eval()
    inner = model.forward
    model.forward = lambda x: inner(x) - inner(x).mean(0, keepdim=True)  # mixes the samples
    path = zoo.export_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        (x,) = model.example_inputs(batch_size=batch)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1e-6)
