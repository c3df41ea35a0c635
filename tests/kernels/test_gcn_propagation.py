"""GCN propagation: cached CSR fast path vs gather/scatter exportable path vs dense reference vs PyG."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from zoo.kernels.gcn_propagation import (AdjacencyCache, CSRAdjacency, EdgeListAdjacency, gcn_adjacency,
                                     gcn_norm, propagate, propagate_dense_ref, propagate_scatter,
                                     propagate_sparse, use_exportable_path)


def random_graph(n: int, e: int, *, seed: int, weighted: bool = False, loops: int = 0,
                 duplicates: int = 0, isolated: int = 0, dtype=torch.float64):
    """A random directed graph with the awkward cases on demand: existing self-loops (one node
    carries a duplicated one), duplicate edges, and the last ``isolated`` nodes in no edge."""
    g = torch.Generator().manual_seed(seed)
    m = n - isolated
    edges = torch.randint(0, m, (2, e), generator=g)
    parts = [edges]
    if loops:
        nodes = torch.randperm(m, generator=g)[:loops]
        parts.append(torch.stack([nodes, nodes]))
        parts.append(torch.stack([nodes[:1], nodes[:1]]))  # a duplicated self-loop
    if duplicates:
        parts.append(edges[:, :duplicates])
    edge_index = torch.cat(parts, dim=1)
    weight = None
    if weighted:
        weight = torch.rand(edge_index.shape[1], generator=g, dtype=dtype) + 0.1
    return edge_index, weight


CASES = {
    "plain": dict(n=20, e=60),
    "duplicates": dict(n=15, e=40, duplicates=12),
    "self_loops": dict(n=15, e=40, loops=5),
    "isolated": dict(n=18, e=30, isolated=4),
    "everything_weighted": dict(n=25, e=70, loops=6, duplicates=10, isolated=3, weighted=True),
    "weighted": dict(n=12, e=30, weighted=True),
    "no_edges": dict(n=5, e=0),
}


def _paths(x, edge_index, edge_weight):
    cache = AdjacencyCache()
    return {
        "fast": lambda x: propagate(x, edge_index, edge_weight, cache=cache),
        "exportable": lambda x: propagate_scatter(x, edge_index, edge_weight),
        "dense": lambda x: propagate_dense_ref(x, edge_index, edge_weight),
    }


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_paths_agree_outputs_and_gradients(case, seed):
    kw = dict(CASES[case])
    n = kw.pop("n")
    edge_index, edge_weight = random_graph(n, kw.pop("e"), seed=seed, **kw)
    x = torch.randn(n, 6, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(n, 6, dtype=torch.float64)
    results = {}
    for name, fn in _paths(x, edge_index, edge_weight).items():
        out = fn(x)
        (grad,) = torch.autograd.grad((out * probe).sum(), x)
        results[name] = (out, grad)
    for name in ("fast", "exportable"):
        torch.testing.assert_close(results[name][0], results["dense"][0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(results[name][1], results["dense"][1], rtol=1e-12, atol=1e-12)


def _dense_from_edges(edge_index, weight, n):
    a = torch.zeros(n, n, dtype=weight.dtype)
    return a.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)


@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_norm_matrix_equals_pyg(weighted):
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm
    n = 20
    # Existing self-loops once each (PyG's choice among duplicated weighted loops is unspecified).
    edge_index, edge_weight = random_graph(n, 50, seed=3, weighted=weighted, duplicates=8,
                                           isolated=2)
    nodes = torch.tensor([0, 4, 7])
    edge_index = torch.cat([edge_index, torch.stack([nodes, nodes])], dim=1)
    if weighted:
        edge_weight = torch.cat([edge_weight, torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)])
    ours = _dense_from_edges(*gcn_norm(edge_index, n, edge_weight, dtype=torch.float64), n)
    ei, w = pyg_gcn_norm(edge_index, edge_weight, n, dtype=torch.float64)
    torch.testing.assert_close(ours, _dense_from_edges(ei, w, n), rtol=1e-12, atol=1e-12)


def test_gcn_norm_shape_is_static_and_loops_appended():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 2]])
    ei, w = gcn_norm(edge_index, 4)
    assert ei.shape == (2, 8) and w.shape == (8,)
    assert torch.equal(ei[:, 4:], torch.arange(4).repeat(2, 1))
    assert w[2] == 0 and w[3] == 0  # existing loops superseded by the appended ones
    assert w[7] == 1.0  # isolated node 3: degree 1 (its own loop)


def test_weighted_self_loop_keeps_its_weight():
    edge_index = torch.tensor([[0, 1, 1], [1, 0, 1]])
    weight = torch.tensor([1.0, 1.0, 5.0], dtype=torch.float64)
    a = _dense_from_edges(*gcn_norm(edge_index, 2, weight), 2)
    deg = torch.tensor([2.0, 6.0], dtype=torch.float64)  # node 0: 1 + loop 1; node 1: 1 + loop 5
    expected = torch.tensor([[1.0, 1.0], [1.0, 5.0]], dtype=torch.float64) / deg.sqrt()[:, None] / deg.sqrt()
    torch.testing.assert_close(a, expected)


def test_scatter_path_gradcheck_x_and_edge_weight():
    edge_index, edge_weight = random_graph(8, 20, seed=5, weighted=True, loops=2, duplicates=3)
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    edge_weight.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: propagate_scatter(x, edge_index, w), (x, edge_weight))
    # A weight that needs a gradient routes the dispatcher to the differentiable path.
    assert use_exportable_path(x, edge_weight)
    out = propagate(x, edge_index, edge_weight)
    assert torch.autograd.grad(out.sum(), edge_weight)[0].abs().sum() > 0


def test_fast_path_gradcheck_x_and_fused_bias():
    edge_index, _ = random_graph(9, 25, seed=6, duplicates=4, loops=2)
    adjacency = CSRAdjacency.from_edge_index(edge_index, 9, dtype=torch.float64)
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, b: propagate_sparse(x, adjacency, b), (x, bias))
    dense = propagate_dense_ref(x.detach(), edge_index) + bias.detach()
    torch.testing.assert_close(EdgeListAdjacency.from_edge_index(edge_index, 9, dtype=torch.float64)
                               .propagate(x.detach(), bias.detach()), dense)


def test_float32_paths_agree():
    edge_index, edge_weight = random_graph(30, 100, seed=7, weighted=True, duplicates=10, loops=3,
                                           dtype=torch.float32)
    x = torch.randn(30, 5)
    ref = propagate_dense_ref(x, edge_index, edge_weight)
    torch.testing.assert_close(propagate(x, edge_index, edge_weight), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(propagate_scatter(x, edge_index, edge_weight), ref, rtol=1e-5, atol=1e-6)


def test_cache_normalises_once_per_graph():
    cache = AdjacencyCache()
    edge_index, _ = random_graph(10, 30, seed=8)
    x = torch.randn(10, 4)
    first = propagate(x, edge_index, cache=cache)
    propagate(x * 2, edge_index, cache=cache)
    assert cache.builds == 1
    propagate(x, edge_index.clone(), cache=cache)  # equal values, another tensor: rebuilt
    assert cache.builds == 2
    same = edge_index.clone()
    propagate(x, same, cache=cache)
    same[0, 0] = (same[0, 0] + 1) % 10  # in-place edit bumps the version: rebuilt, not reused
    out = propagate(x, same, cache=cache)
    assert cache.builds == 4
    torch.testing.assert_close(out, propagate_dense_ref(x, same), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out, first)
    propagate(torch.randn(12, 4), same, cache=cache)  # another node count
    assert cache.builds == 5
    propagate(x.double(), same, cache=cache)  # another dtype
    assert cache.builds == 6


def test_meta_and_half_use_the_exportable_path():
    edge_index, _ = random_graph(10, 30, seed=9)
    meta = torch.empty(10, 4, device="meta")
    assert use_exportable_path(meta)
    assert propagate(meta, edge_index.to("meta")).shape == (10, 4)
    half = torch.randn(10, 4, dtype=torch.bfloat16)
    assert isinstance(gcn_adjacency(edge_index, 10, like=half), EdgeListAdjacency)
    torch.testing.assert_close(propagate(half, edge_index).float(),
                               propagate_dense_ref(half.float(), edge_index), rtol=2e-2, atol=2e-2)


def test_flop_counter_sees_plain_ops_not_a_dense_product():
    from torch.utils.flop_counter import FlopCounterMode
    edge_index, _ = random_graph(500, 2000, seed=12)
    x = torch.randn(500, 8)
    with FlopCounterMode(display=False) as counter:
        out = propagate(x, edge_index)
    assert counter.get_total_flops() < 2 * 500 * 500 * 8  # never counted as a dense N x N matmul
    torch.testing.assert_close(out, propagate_dense_ref(x, edge_index), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edge_index, match", [
    (torch.zeros(3, 4, dtype=torch.long), r"edge_index.shape=\(3, 4\)"),
    (torch.zeros(2, 4), "edge_index.dtype=torch.float32"),
    (torch.tensor([[0, 12], [1, 2]]), r"node ids in \[0, 12\]"),
    (torch.tensor([[0, -1], [1, 2]]), r"node ids in \[-1, 2\]"),
])
def test_bad_graphs_are_named(edge_index, match):
    with pytest.raises(ValueError, match=match):
        propagate(torch.randn(10, 3), edge_index)


def test_bad_edge_weight_is_named():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"edge_weight.shape=\(3,\)"):
        propagate(torch.randn(4, 3), edge_index, torch.ones(3))


class _Propagate(nn.Module):
    def forward(self, x, edge_index):
        return propagate(x, edge_index)


def test_onnx_export_with_repeated_destinations(tmp_path):
    """The exportable path in ONNX Runtime equals eager, for a graph it never saw, with many edges
    into one node (repeated scatter indices), self-loops, duplicates and isolated nodes."""
    ort = pytest.importorskip("onnxruntime")
    edge_index, _ = random_graph(12, 40, seed=10)
    x = torch.randn(12, 5)
    path = tmp_path / "propagate.onnx"
    nodes, edges = torch.export.Dim("nodes", min=2), torch.export.Dim("edges", min=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Propagate(), (x, edge_index), str(path), dynamo=True, opset_version=18,
                          dynamic_shapes=({0: nodes}, {1: edges}))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    edge_index2, _ = random_graph(20, 50, seed=11, loops=3, duplicates=10, isolated=2)
    hub = torch.stack([torch.arange(18), torch.full((18,), 3)])  # 18 edges into node 3
    edge_index2 = torch.cat([edge_index2, hub, hub[:, :5]], dim=1)
    x2 = torch.randn(20, 5)
    got = sess.run(None, {sess.get_inputs()[0].name: x2.numpy(),
                          sess.get_inputs()[1].name: edge_index2.numpy()})[0]
    np.testing.assert_allclose(got, propagate_dense_ref(x2, edge_index2).numpy(), rtol=1e-4, atol=1e-5)
