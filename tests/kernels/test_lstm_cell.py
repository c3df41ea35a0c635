"""lstm_cell_ref / lstm_ref (gates written out) vs nn.LSTMCell / nn.LSTM: outputs and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from zoo.kernels.lstm_cell import lstm_cell_ref, lstm_ref, lstm_weights


@pytest.mark.parametrize("bias", [True, False])
def test_cell_equals_lstmcell(bias):
    cell = nn.LSTMCell(5, 7, bias=bias)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    h_ref, c_ref = cell(x, (h, c))
    h_out, c_out = lstm_cell_ref(x, h, c, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    torch.testing.assert_close(h_out, h_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(c_out, c_ref, rtol=0, atol=1e-6)


def _compare(lstm: nn.LSTM, x: torch.Tensor, hx=None, atol=1e-6, grad_atol=1e-5):
    x = x.clone().requires_grad_(True)
    out, (h_n, c_n) = lstm(x, hx) if hx is not None else lstm(x)
    ref, (h_ref, c_ref) = lstm_ref(x, lstm_weights(lstm), num_layers=lstm.num_layers,
                                   bidirectional=lstm.bidirectional, batch_first=lstm.batch_first,
                                   hx=hx)
    for a, b in ((out, ref), (h_n, h_ref), (c_n, c_ref)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=atol)
    params = [x] + list(lstm.parameters())
    loss = lambda o, h, c: (o.sin().sum() + h.square().sum() + c.sum())  # noqa: E731
    grads = torch.autograd.grad(loss(out, h_n, c_n), params)
    ref_grads = torch.autograd.grad(loss(ref, h_ref, c_ref), params)
    for name, g, r in zip(["x"] + [n for n, _ in lstm.named_parameters()], grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=grad_atol, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_sequence_equals_nn_lstm_float32(num_layers, bidirectional, batch_first):
    lstm = nn.LSTM(6, 8, num_layers, batch_first=batch_first, bidirectional=bidirectional)
    x = torch.randn(3, 12, 6) if batch_first else torch.randn(12, 3, 6)
    _compare(lstm, x)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_equals_nn_lstm_float64_with_initial_state(bidirectional):
    dirs = 2 if bidirectional else 1
    lstm = nn.LSTM(4, 5, 3, batch_first=True, bidirectional=bidirectional, dtype=torch.float64)
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    hx = (torch.randn(3 * dirs, 2, 5, dtype=torch.float64), torch.randn(3 * dirs, 2, 5, dtype=torch.float64))
    _compare(lstm, x, hx, atol=1e-12, grad_atol=1e-11)


def test_no_bias():
    lstm = nn.LSTM(4, 6, 2, batch_first=True, bias=False)
    _compare(lstm, torch.randn(2, 5, 4))


def test_bad_arguments_are_named():
    lstm = nn.LSTM(4, 6, 2, batch_first=True)
    with pytest.raises(ValueError, match=r"len\(weights\)=2"):
        lstm_ref(torch.randn(2, 5, 4), lstm_weights(lstm), num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"x.shape=\(5, 4\)"):
        lstm_ref(torch.randn(5, 4), lstm_weights(lstm), num_layers=2)
    with pytest.raises(ValueError, match="proj_size=3"):
        lstm_weights(nn.LSTM(4, 6, proj_size=3))
