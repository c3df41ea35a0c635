"""Models over float features standardise them first (``model.standardize``): linear, mlp, lstm,
transformer and tcn; token-id, image and graph models do not."""
from __future__ import annotations

import copy

import pytest
import torch

import zoo
from tests.conftest import build_small
from tests.zoo.test_onnx_export import RTOL, _rel_err, _session
from zoo.standardize import Standardize

STANDARDISED = ["linear", "mlp", "lstm", "transformer", "tcn"]


def _fitted(name: str):
    """A small model whose standardisation is fitted to shifted, scaled data; and that data."""
    model = build_small(name).eval()
    (x,) = model.example_inputs(batch_size=64)
    g = torch.Generator().manual_seed(4)
    shift = torch.randn(x.shape[-1], generator=g) * 3
    scale = torch.rand(x.shape[-1], generator=g) * 4 + 0.5
    data = x * scale + shift
    model.standardize.fit_(data)
    return model, data


def test_exactly_the_float_feature_models_standardise():
    for name in zoo.list_models():
        has = isinstance(getattr(build_small(name), "standardize", None), Standardize)
        assert has == (name in STANDARDISED), name


@pytest.mark.parametrize("name", STANDARDISED)
def test_standardisation_is_applied_first(name):
    model, data = _fitted(name)
    mean, std = model.standardize.mean.clone(), model.standardize.std.clone()
    # the statistics are the data's, per feature over every other axis
    flat = data.reshape(-1, data.shape[-1])
    torch.testing.assert_close(mean, flat.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std, flat.std(0, unbiased=False), rtol=1e-5, atol=1e-5)
    identity = copy.deepcopy(model)
    identity.standardize.mean.zero_()
    identity.standardize.std.fill_(1.0)
    with torch.no_grad():
        torch.testing.assert_close(model(data), identity((data - mean) / std), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(data), identity(data))  # it does change the output


@pytest.mark.parametrize("name", [n for n in STANDARDISED if "vocab_size" in zoo.get_entry(n).defaults])
def test_token_ids_are_not_standardised(name):
    model = build_small(name, vocab_size=30)
    assert not hasattr(model, "standardize")
    assert not any(k.startswith("standardize.") for k in model.state_dict())


@pytest.mark.parametrize("name", STANDARDISED)
def test_fitted_standardisation_survives_save_load_and_onnx(name, tmp_path):
    model, data = _fitted(name)
    zoo.save(model, tmp_path / "m.safetensors")
    loaded = zoo.load(tmp_path / "m.safetensors").eval()
    torch.testing.assert_close(loaded.standardize.mean, model.standardize.mean, rtol=0, atol=0)
    sess = _session(zoo.export_onnx(model, tmp_path / "m.onnx"))
    for batch in (1, 4):
        x = data[:batch]
        with torch.no_grad():
            want = model(x).numpy()
            assert torch.equal(loaded(x), model(x))
        assert _rel_err(sess.run(None, {"x": x.numpy()})[0], want) <= RTOL
