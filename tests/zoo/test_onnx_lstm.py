"""The LSTM exports as ONNX ``LSTM`` operators (zoo.onnx_ops), not as a per-step decomposition.

One file per configuration is run in ONNX Runtime at batch 1 and 4 and at lengths shorter than,
equal to and longer than the traced one (the time axis is dynamic), against PyTorch's ``nn.LSTM``.
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
from zoo.onnx_export import read_onnx_metadata
from zoo.onnx_ops import TRANSLATIONS, ExportLSTM, onnx_lstm_weights, swap_lstms

RTOL = 1e-4


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _inputs(model, batch: int, steps: int) -> torch.Tensor:
    if model.vocab_size:
        return torch.randint(0, model.vocab_size, (batch, steps))
    return torch.randn(batch, steps, model.in_features)


@pytest.mark.parametrize("layers, bidirectional, vocab_size", [
    (1, False, None), (2, False, None), (1, True, None), (2, True, None), (2, True, 30),
])
def test_lstm_file_matches_pytorch_at_any_batch_and_length(layers, bidirectional, vocab_size,
                                                           tmp_path):
    model = build_small("lstm", layers=layers, bidirectional=bidirectional, vocab_size=vocab_size,
                        hidden=24).eval()
    path = zoo.export_onnx(model, tmp_path / "lstm.onnx")
    ops = _ops(path)
    assert ops["LSTM"] == layers  # one ONNX LSTM node per layer, both directions inside it
    assert not {"Loop", "Scan", "Sigmoid", "Tanh"} & set(ops)  # no unrolled or looped cell
    assert read_onnx_metadata(path)["dynamic_axes"] == {"x": {"0": "batch", "1": "time"}}
    sess = _session(path)
    traced = model.seq_len
    for batch in (1, 4):
        for steps in (3, traced, 3 * traced):
            x = _inputs(model, batch, steps)
            with torch.no_grad():
                want = model(x).numpy()
            got = sess.run(None, {"x": x.numpy()})[0]
            assert got.shape == want.shape
            err = _rel_err(got, want)
            assert err <= RTOL, f"batch {batch}, {steps} steps: relative error {err:.2e}"


def test_graph_does_not_grow_with_the_sequence_length(tmp_path):
    short = zoo.export_onnx(build_small("lstm", seq_len=50).eval(), tmp_path / "short.onnx")
    long = zoo.export_onnx(build_small("lstm", seq_len=400).eval(), tmp_path / "long.onnx")
    assert _ops(short) == _ops(long)
    assert sum(_ops(long).values()) == sum(_ops(short).values())


def test_export_runs_no_per_step_work(tmp_path, monkeypatch):
    """torch.export has no shape function for aten.lstm and would run PyTorch's Python LSTM
    decomposition cell by cell to find one: the export must not reach it at all."""
    from torch._decomp import decompositions

    calls = []
    cell = decompositions.lstm_cell
    monkeypatch.setattr(decompositions, "lstm_cell", lambda *a, **k: calls.append(1) or cell(*a, **k))
    zoo.export_onnx(build_small("lstm", seq_len=30).eval(), tmp_path / "m.onnx")
    assert calls == []


def test_export_leaves_the_callers_lstm_in_place(tmp_path):
    model = build_small("lstm").eval()
    x = model.example_inputs(batch_size=2)[0]
    with torch.no_grad():
        before = model(x)
    zoo.export_onnx(model, tmp_path / "m.onnx")
    assert type(model.lstm) is torch.nn.LSTM
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_export_lstm_eager_equals_nn_lstm_with_and_without_initial_state(bidirectional):
    lstm = torch.nn.LSTM(5, 7, 2, batch_first=True, bidirectional=bidirectional).eval()
    ours = ExportLSTM(lstm)
    dirs = 2 if bidirectional else 1
    x = torch.randn(3, 9, 5)
    hx = (torch.randn(2 * dirs, 3, 7), torch.randn(2 * dirs, 3, 7))
    with torch.no_grad():
        for state in (None, hx):
            (o1, (h1, c1)), (o2, (h2, c2)) = lstm(x, state), ours(x, state)
            for a, b in ((o1, o2), (h1, h2), (c1, c2)):
                torch.testing.assert_close(a, b)


def test_weights_follow_onnx_gate_order():
    lstm = torch.nn.LSTM(2, 3, 1)
    w, r, b = onnx_lstm_weights(lstm)
    assert w.shape == (1, 12, 2) and r.shape == (1, 12, 3) and b.shape == (1, 24)
    i, f, g, o = lstm.weight_ih_l0.detach().chunk(4)
    torch.testing.assert_close(w[0], torch.cat([i, o, f, g]))  # ONNX: i, o, f, c
    bi, bf, bg, bo = lstm.bias_hh_l0.detach().chunk(4)
    torch.testing.assert_close(b[0, 12:], torch.cat([bi, bo, bf, bg]))  # Rb after Wb


class _WithState(torch.nn.Module):
    """An LSTM fed explicit initial states and returning all three outputs (time-major)."""

    def __init__(self, bidirectional: bool):
        super().__init__()
        self.lstm = torch.nn.LSTM(4, 6, 2, bidirectional=bidirectional)

    def forward(self, x, h0, c0):
        out, (h, c) = self.lstm(x, (h0, c0))
        return out, h, c


@pytest.mark.parametrize("bidirectional", [False, True])
def test_translation_with_initial_states_and_time_major_input(bidirectional):
    torch.manual_seed(0)
    net = _WithState(bidirectional).eval()
    reference = _WithState(bidirectional).eval()
    reference.load_state_dict(net.state_dict())
    assert swap_lstms(net) == 1
    dirs = 2 if bidirectional else 1
    args = (torch.randn(8, 3, 4), torch.randn(2 * dirs, 3, 6), torch.randn(2 * dirs, 3, 6))
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    program = torch.onnx.export(
        net, args, None, dynamo=True, verbose=False, input_names=["x", "h0", "c0"],
        dynamic_shapes=({0: time, 1: batch}, {1: batch}, {1: batch}),
        custom_translation_table=TRANSLATIONS)
    sess = ort.InferenceSession(program.model_proto.SerializeToString(),
                                providers=["CPUExecutionProvider"])
    for steps, b in ((2, 1), (11, 4)):
        x = torch.randn(steps, b, 4)
        h0, c0 = torch.randn(2 * dirs, b, 6), torch.randn(2 * dirs, b, 6)
        with torch.no_grad():
            want = reference(x, h0, c0)
        got = sess.run(None, {"x": x.numpy(), "h0": h0.numpy(), "c0": c0.numpy()})
        for g, w in zip(got, want):
            assert _rel_err(g, w.numpy()) <= RTOL


def test_export_lstm_refuses_what_it_does_not_translate():
    with pytest.raises(ValueError, match="proj_size"):
        ExportLSTM(torch.nn.LSTM(4, 6, proj_size=3))
    with pytest.raises(ValueError, match=r"x.shape=\(5, 4\)"):
        ExportLSTM(torch.nn.LSTM(4, 6))(torch.randn(5, 4))
