"""LSTM, Transformer and GCN against the implementations they claim to equal (same weights)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.kernels.lstm_cell import lstm_ref, lstm_weights
from zoo.models.gcn import GCNLayer
from zoo.models.transformer import TransformerBlock

# ------------------------------------------------------------------------------------------------
# Transformer
# ------------------------------------------------------------------------------------------------


def _torch_layer(d=32, heads=4, ff=64, **kw):
    kw = {"dropout": 0.0, "activation": "gelu", "batch_first": True, "norm_first": True, **kw}
    return nn.TransformerEncoderLayer(d, heads, ff, **kw)


def _padding(lengths, t):
    return torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True = padding


@pytest.mark.parametrize("masked", [False, True])
def test_block_equals_torch_encoder_layer(masked):
    ref = _torch_layer()
    block = TransformerBlock.from_torch(ref)
    x = torch.randn(3, 7, 32)
    mask = _padding([7, 4, 1], 7) if masked else None
    ref.train()  # dropout=0: deterministic, and PyTorch's reference (non fast) path
    block.train()
    torch.testing.assert_close(block(x, mask), ref(x, src_key_padding_mask=mask), rtol=1e-5, atol=1e-5)
    ref.eval()
    block.eval()
    with torch.no_grad():  # eval may take PyTorch's fused fast path; padded outputs may differ there
        ours, theirs = block(x, mask), ref(x, src_key_padding_mask=mask)
    valid = ~mask if masked else torch.ones(3, 7, dtype=torch.bool)
    torch.testing.assert_close(ours[valid], theirs[valid], rtol=1e-5, atol=1e-5)


def test_block_gradients_equal_torch_encoder_layer():
    ref = _torch_layer().double()
    block = TransformerBlock.from_torch(ref)
    x = torch.randn(2, 5, 32, dtype=torch.float64, requires_grad=True)
    mask = _padding([5, 3], 5)
    g_ours = torch.autograd.grad(block(x, mask).sin().sum(), [x, block.qkv.weight, block.fc1.weight])
    g_ref = torch.autograd.grad(ref(x, src_key_padding_mask=mask).sin().sum(),
                                [x, ref.self_attn.in_proj_weight, ref.linear1.weight])
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kw, match", [
    (dict(norm_first=False), "norm_first=True"),
    (dict(activation="relu"), 'activation="gelu"'),
    (dict(batch_first=False), "batch_first=True"),
])
def test_from_torch_refuses_other_layouts(kw, match):
    with pytest.raises(ValueError, match=match):
        TransformerBlock.from_torch(_torch_layer(**kw))


def _reference_transformer(model, x, mask=None):
    """The same network written with nn.TransformerEncoderLayer blocks."""
    h = model.embed(x) + model.pos[:, :x.shape[1]]
    for block in model.blocks:
        layer = _torch_layer(block.d_model, block.num_heads, block.fc1.out_features).train()
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(block.qkv.weight)
            layer.self_attn.in_proj_bias.copy_(block.qkv.bias)
            layer.self_attn.out_proj.weight.copy_(block.proj.weight)
            layer.self_attn.out_proj.bias.copy_(block.proj.bias)
            for ours, theirs in (("fc1", "linear1"), ("fc2", "linear2"), ("norm1", "norm1"),
                                 ("norm2", "norm2")):
                getattr(layer, theirs).load_state_dict(getattr(block, ours).state_dict())
        h = layer(h, src_key_padding_mask=mask)
    h = model.norm(h)
    if mask is None:
        pooled = h.mean(1)
    else:
        pooled = torch.stack([h[b][~mask[b]].mean(0) for b in range(h.shape[0])])
    return model.head(pooled)


@pytest.mark.parametrize("vocab_size", [None, 40])
def test_transformer_model_equals_torch_layers(vocab_size):
    model = zoo.create("transformer", in_features=6, seq_len=12, vocab_size=vocab_size,
                       num_classes=3, d_model=32, num_heads=4, depth=2)
    x = model.example_inputs(batch_size=3)[0][:, :10]  # shorter than seq_len
    mask = _padding([10, 6, 2], 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference_transformer(model, x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model(x, mask), _reference_transformer(model, x, mask),
                                   rtol=1e-5, atol=1e-5)


def test_transformer_width_is_multiple_of_heads_times_8():
    for w in (0.3, 0.5, 0.75, 1.3, 2.0):
        m = zoo.create("transformer", width_mult=w, num_heads=4, device="meta")
        d = m.blocks[0].d_model
        assert d % 32 == 0, (w, d)


def test_transformer_refuses_long_sequences_and_bad_heads():
    model = zoo.create("transformer", in_features=4, seq_len=8, d_model=32, num_heads=4, depth=1)
    with pytest.raises(ValueError, match="exceeds seq_len=8"):
        model(torch.randn(1, 9, 4))
    with pytest.raises(ValueError, match="num_heads=3"):
        zoo.create("transformer", d_model=32, num_heads=3)


def test_transformer_fully_padded_sequence_is_finite():
    model = zoo.create("transformer", in_features=4, seq_len=6, d_model=32, num_heads=4, depth=2)
    x = torch.randn(2, 6, 4)
    mask = _padding([6, 0], 6)
    out = model(x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1], model.head.bias.detach())

# ------------------------------------------------------------------------------------------------
# LSTM
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("vocab_size", [None, 30])
def test_lstm_recurrent_part_equals_nn_lstm_and_reference(bidirectional, vocab_size):
    model = zoo.create("lstm", in_features=6, seq_len=9, vocab_size=vocab_size, hidden=16,
                       layers=2, bidirectional=bidirectional, num_classes=4).eval()
    x = model.example_inputs(batch_size=3)[0]
    feats = model.embed(x) if vocab_size else x
    twin = nn.LSTM(6, 16, 2, batch_first=True, bidirectional=bidirectional)
    twin.load_state_dict(model.lstm.state_dict())
    with torch.no_grad():
        out, (h_n, _) = twin(feats)
        _, (h_ref, _) = lstm_ref(feats, lstm_weights(model.lstm), num_layers=2,
                                 bidirectional=bidirectional)
        dirs = 2 if bidirectional else 1
        expected = torch.cat(list(h_n[-dirs:]), dim=-1)  # (B, dirs * H), [forward, reverse]
        torch.testing.assert_close(model.features(x), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(torch.cat(list(h_ref[-dirs:]), dim=-1), expected, rtol=0, atol=1e-6)
        # The forward direction's final state is the output at the last step.
        torch.testing.assert_close(expected[:, :16], out[:, -1, :16])
        torch.testing.assert_close(model(x), model.head(expected), rtol=0, atol=1e-6)

# ------------------------------------------------------------------------------------------------
# GCN
# ------------------------------------------------------------------------------------------------


def _graph(n=30, e=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n - 2, (2, e), generator=g)  # nodes n-2, n-1 isolated
    loops = torch.tensor([[1, 5, 9], [1, 5, 9]])
    edge_index = torch.cat([edge_index, edge_index[:, :15], loops], dim=1)  # duplicates + loops
    weight = torch.rand(edge_index.shape[1], generator=g) + 0.1
    return edge_index, weight


@pytest.mark.parametrize("in_f, out_f", [(12, 5), (5, 12), (8, 8)])
@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_layer_equals_pyg_gcnconv(in_f, out_f, weighted):
    from torch_geometric.nn import GCNConv
    conv = GCNConv(in_f, out_f)
    nn.init.normal_(conv.bias)  # PyG initialises it to zero; make it count
    layer = GCNLayer(in_f, out_f)
    layer.load_state_dict(conv.state_dict())
    edge_index, weight = _graph()
    weight = weight if weighted else None
    x = torch.randn(30, in_f, requires_grad=True)
    ours, theirs = layer(x, edge_index, weight), conv(x, edge_index, weight)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    probe = torch.randn_like(ours)
    g_ours = torch.autograd.grad((ours * probe).sum(), [x, layer.lin.weight, layer.bias])
    g_theirs = torch.autograd.grad((theirs * probe).sum(), [x, conv.lin.weight, conv.bias])
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_gcn_layer_init_matches_pyg():
    layer = GCNLayer(64, 32)
    assert torch.equal(layer.bias, torch.zeros(32))
    bound = (6 / (64 + 32)) ** 0.5  # Glorot uniform
    assert layer.lin.weight.abs().max() <= bound and layer.lin.weight.std() > bound / 3


class _PyGStack(nn.Module):
    def __init__(self, widths):
        super().__init__()
        from torch_geometric.nn import GCNConv
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x, edge_index, edge_weight=None):
        for k, conv in enumerate(self.convs):
            x = x if k == 0 else x.relu()
            x = conv(x, edge_index, edge_weight)
        return x


@pytest.mark.parametrize("weighted", [False, True])
def test_gcn_model_equals_pyg_stack(weighted):
    model = zoo.create("gcn", in_features=10, hidden=16, layers=2, num_classes=4).eval()
    ref = _PyGStack([10, 16, 4])
    for layer, conv in zip(model.layers, ref.convs):
        nn.init.normal_(layer.bias)
        conv.load_state_dict(layer.state_dict())
    edge_index, weight = _graph()
    weight = weight if weighted else None
    x = torch.randn(30, 10)
    torch.testing.assert_close(model(x, edge_index, weight), ref(x, edge_index, weight),
                               rtol=1e-5, atol=1e-5)


def test_gcn_accepts_pyg_data_and_caches_the_graph():
    from torch_geometric.data import Data
    model = zoo.create("gcn", in_features=10, num_classes=3)
    x, edge_index = model.example_inputs()
    data = Data(x=x, edge_index=edge_index)
    a = model(data)
    b = model(x, edge_index)
    torch.testing.assert_close(a, b)
    assert model.adjacency_cache.builds == 1  # both calls, all layers: one normalisation
    weighted = Data(x=x, edge_index=edge_index, edge_weight=torch.rand(edge_index.shape[1]))
    assert not torch.allclose(model(weighted), a)


def test_gcn_training_step_reaches_every_parameter_on_the_fast_path():
    model = zoo.create("gcn", in_features=10, hidden=8, layers=3, num_classes=3, dropout=0.1).train()
    x, edge_index = model.example_inputs(batch_size=2)
    model(x, edge_index).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_gcn_example_inputs_are_disjoint_copies():
    model = zoo.create("gcn", in_features=7, num_nodes=20)
    x, edge_index = model.example_inputs(batch_size=3, num_edges=50)
    assert x.shape == (60, 7) and edge_index.shape == (2, 150) and edge_index.dtype == torch.long
    for b in range(3):
        chunk = edge_index[:, b * 50:(b + 1) * 50]
        assert chunk.min() >= b * 20 and chunk.max() < (b + 1) * 20
    x, edge_index = model.example_inputs(num_nodes=100)
    assert x.shape == (100, 7) and edge_index.shape == (2, 400)
    pairs = edge_index.t().tolist()
    assert len(set(map(tuple, pairs))) < len(pairs)  # some duplicate edges
