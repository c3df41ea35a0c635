"""attention (SDPA) vs attention_ref (softmax written out): outputs, gradients, masks, ONNX."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from zoo.kernels.attention import attention, attention_ref


def _qkv(b=2, h=3, t=5, s=None, d=8, dtype=torch.float64):
    s = t if s is None else s
    q = torch.randn(b, h, t, d, dtype=dtype, requires_grad=True)
    k = torch.randn(b, h, s, d, dtype=dtype, requires_grad=True)
    v = torch.randn(b, h, s, d, dtype=dtype, requires_grad=True)
    return q, k, v


def _run(fn, q, k, v, **kw):
    out = fn(q, k, v, **kw)
    grads = torch.autograd.grad(out.sin().sum(), (q, k, v))
    return out, grads


def _padding(b, s, lengths):
    return torch.arange(s)[None, :] >= torch.tensor(lengths)[:, None]  # (B, S), True = padding


@pytest.mark.parametrize("shape", [(2, 3, 5, 5, 8), (1, 2, 7, 4, 16), (3, 1, 1, 6, 4)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_fast_equals_reference_outputs_and_gradients(shape, masked, causal):
    b, h, t, s, d = shape
    q, k, v = _qkv(b, h, t, s, d)
    mask = _padding(b, s, [max(1, s - i) for i in range(b)]) if masked else None
    out, grads = _run(attention, q, k, v, key_padding_mask=mask, causal=causal)
    ref, ref_grads = _run(attention_ref, q, k, v, key_padding_mask=mask, causal=causal)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


def test_float32_matches_reference():
    q, k, v = (t.detach().float() for t in _qkv(2, 4, 9, 9, 16))
    mask = _padding(2, 9, [9, 4])
    torch.testing.assert_close(attention(q, k, v, key_padding_mask=mask),
                               attention_ref(q, k, v, key_padding_mask=mask), rtol=1e-5, atol=1e-5)


def test_matches_multihead_attention_core():
    """Our convention (True = padding) is nn.MultiheadAttention's: same numbers, same mask."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=True, dtype=torch.float64).eval()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    mask = _padding(2, 6, [6, 3])
    expected, _ = mha(x, x, x, key_padding_mask=mask, need_weights=False)
    q, k, v = nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    heads = [t.reshape(2, 6, 2, 8).transpose(1, 2) for t in (q, k, v)]  # (B, nh, T, hs)
    y = attention(*heads, key_padding_mask=mask).transpose(1, 2).reshape(2, 6, 16)
    torch.testing.assert_close(mha.out_proj(y), expected)


@pytest.mark.parametrize("fn", [attention, attention_ref])
def test_fully_padded_rows_give_zeros_not_nan(fn):
    q, k, v = _qkv(3, 2, 4, 4, 8)
    mask = _padding(3, 4, [4, 0, 2])  # sequence 1 is all padding
    out, grads = _run(fn, q, k, v, key_padding_mask=mask)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert (out[0] != 0).any() and (out[2] != 0).any()
    assert torch.equal(grads[0][1], torch.zeros_like(grads[0][1]))  # no gradient from that row


@pytest.mark.parametrize("fn", [attention, attention_ref])
def test_causal_with_left_padding_zeroes_only_rows_without_keys(fn):
    q, k, v = _qkv(1, 1, 5, 5, 4)
    mask = torch.tensor([[True, True, False, False, False]])  # queries 0, 1 see only padding
    out, grads = _run(fn, q, k, v, key_padding_mask=mask, causal=True)
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    assert torch.equal(out[0, 0, :2], torch.zeros_like(out[0, 0, :2]))
    assert (out[0, 0, 2:] != 0).all(dim=-1).all()
    # Query 2 sees only key 2: its output is v[2] exactly.
    torch.testing.assert_close(out[0, 0, 2], v[0, 0, 2].detach())


def test_dropout_is_applied_and_finite():
    q, k, v = (t.detach() for t in _qkv(2, 2, 6, 6, 8))
    for fn in (attention, attention_ref):
        out = fn(q, k, v, dropout_p=0.5)
        assert torch.isfinite(out).all()
        assert not torch.allclose(out, fn(q, k, v))


@pytest.mark.parametrize("kwargs, match", [
    (dict(key_padding_mask=torch.zeros(2, 5)), "key_padding_mask.dtype"),
    (dict(key_padding_mask=torch.zeros(2, 1, 5, dtype=torch.bool)), "key_padding_mask.shape"),
    (dict(dropout_p=1.0), "dropout_p=1.0"),
])
def test_bad_arguments_are_named(kwargs, match):
    q, k, v = (t.detach() for t in _qkv(2, 2, 5, 5, 8))
    for fn in (attention, attention_ref):
        with pytest.raises(ValueError, match=match):
            fn(q, k, v, **kwargs)
    with pytest.raises(ValueError, match=r"q.shape=\(2, 5, 8\)"):
        attention(q[0], k, v)


class _Attend(nn.Module):
    def forward(self, q, k, v, key_padding_mask):
        return attention(q, k, v, key_padding_mask=key_padding_mask)


def test_onnx_export_with_fully_padded_rows(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    q, k, v = (t.detach().float() for t in _qkv(2, 2, 5, 5, 8))
    mask = _padding(2, 5, [5, 3])
    batch = torch.export.Dim("batch", min=1, max=64)
    path = tmp_path / "attention.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Attend(), (q, k, v, mask), str(path), dynamo=True, opset_version=18,
                          dynamic_shapes=({0: batch}, {0: batch}, {0: batch}, {0: batch}))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    q3, k3, v3 = (t.detach().float() for t in _qkv(3, 2, 5, 5, 8))
    mask3 = _padding(3, 5, [5, 0, 2])  # a fully padded row, unseen at export time
    feeds = dict(zip([i.name for i in sess.get_inputs()],
                     [q3.numpy(), k3.numpy(), v3.numpy(), mask3.numpy()]))
    got = sess.run(None, feeds)[0]
    expected = attention(q3, k3, v3, key_padding_mask=mask3).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.all(got[1] == 0)
