"""Every registered model, driven by the registry: a new model is covered for free."""
from __future__ import annotations

import pytest
import torch

import zoo
from tests.conftest import NUM_CLASSES, build_small, n_params, small_kwargs

MODELS = zoo.list_models()


def test_registry_is_populated():
    for name in ["linear", "mlp"]:
        assert name in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite(name):
    model = build_small(name).eval()
    inputs = model.example_inputs(batch_size=2)
    with torch.no_grad():
        out = model(*inputs)
    rows = inputs[0].shape[0]  # batch, or nodes for a graph
    assert out.shape == (rows, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name):
    model = build_small(name).train()
    out = model(*model.example_inputs(batch_size=2))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for {missing[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_params_grow_strictly_with_width(name):
    if not zoo.get_entry(name).scales_width:
        pytest.skip(f"{name} has no width to scale (registry: scales_width=False)")
    counts = [n_params(zoo.create(name, **small_kwargs(name, width_mult=w, device="meta")))
              for w in (0.5, 1.0, 1.5)]
    assert counts[0] < counts[1] < counts[2], counts


@pytest.mark.parametrize("name", MODELS)
def test_params_grow_strictly_with_depth(name):
    if not zoo.get_entry(name).scales_depth:
        pytest.skip(f"{name} has no depth to scale (registry: scales_depth=False)")
    counts = [n_params(zoo.create(name, **small_kwargs(name, depth_mult=d, device="meta")))
              for d in (1.0, 2.0)]
    assert counts[0] < counts[1], counts


@pytest.mark.parametrize("name", MODELS)
def test_meta_device_builds_without_allocating(name):
    real = build_small(name)
    meta = zoo.create(name, **small_kwargs(name, device="meta"))
    assert all(p.is_meta for p in meta.parameters())
    assert n_params(meta) == n_params(real)
    assert meta.config == real.config


@pytest.mark.parametrize("name", MODELS)
def test_config_rebuilds_architecture(name):
    model = build_small(name)
    rebuilt = zoo.from_config(model.config)
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    model = build_small(name).eval()
    path = tmp_path / f"{name}.safetensors"
    zoo.save(model, path)
    loaded = zoo.load(path)
    inputs = model.example_inputs(batch_size=2)
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded(*inputs))
    assert loaded.config == model.config


@pytest.mark.parametrize("name", MODELS)
def test_example_inputs_follow_batch_size(name):
    model = build_small(name)
    a, b = model.example_inputs(batch_size=1), model.example_inputs(batch_size=3)
    assert len(a) == len(b) == len(model.input_names)
