"""``stem="small"`` on every image family: stride 1 and no early pooling, for small inputs.

``stem="imagenet"`` stays the reference networks' stem (the parity tests in test_parity_cnn.py run
with the default); ONNX export of the small stems is in test_onnx_export.py.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo

IMAGE_MODELS = [n for n in zoo.list_models() if zoo.get_entry(n).input_kind == "image"]
# One of each family and block type, for the tests that run real weights.
REPRESENTATIVES = ["resnet18", "resnet50", "seresnet18", "mobilenetv2", "inception"]


def _small(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "width_mult": 0.25, **kwargs}
    return zoo.create(name, **kwargs).eval()


def test_every_image_model_takes_stem_and_defaults_to_imagenet():
    assert IMAGE_MODELS  # the registry has image models
    for name in IMAGE_MODELS:
        assert zoo.get_entry(name).defaults["stem"] == "imagenet", name
        assert zoo.create(name, device="meta").config["stem"] == "imagenet"


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_32px_reaches_the_last_stage_at_4x4_with_the_small_stem(name):
    model = _small(name, stem="small", depth_mult=0.25)
    reference = _small(name, depth_mult=0.25)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.forward_features(x).shape[2:] == (4, 4)
        assert reference.forward_features(x).shape[2:] == (1, 1)  # why the small stem exists


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_8px_works_with_the_small_stem(name):
    model = _small(name, stem="small", img_size=8, depth_mult=0.25)
    (x,) = model.example_inputs(batch_size=2)
    assert x.shape == (2, 3, 8, 8)
    with torch.no_grad():
        assert model.forward_features(x).shape[2:] == (1, 1)
        out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    model.train()(x).square().mean().backward()  # trains too (batch statistics of a 1x1 map, B=2)


@pytest.mark.parametrize("name", ["resnet18", "seresnet50", "inception"])
def test_small_stem_changes_only_the_stem_conv(name):
    big = zoo.create(name, device="meta").state_dict()
    small = zoo.create(name, device="meta", stem="small").state_dict()
    assert big.keys() == small.keys()
    changed = {k for k in big if big[k].shape != small[k].shape}
    assert changed == {"conv1.weight"} if name != "inception" else {"conv1.conv.weight"}
    assert small[next(iter(changed))].shape[-2:] == (3, 3)


def test_mobilenetv2_small_stem_keeps_every_parameter():
    big = _small("mobilenetv2")
    small = _small("mobilenetv2", stem="small")
    small.load_state_dict(big.state_dict())  # strict: same names and shapes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(big(x), small(x))  # the strides differ, so the outputs do
        # stride 1 in the stem and in the first stride-2 stage (the c=24 row): 4x less down-sampling
        assert small.blocks[1](small.blocks[0](small.act1(small.bn1(small.conv_stem(x))))).shape[2:] \
            == (32, 32)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_small_stem_config_rebuilds_and_round_trips(name, tmp_path):
    model = _small(name, stem="small", img_size=16)
    assert model.config["stem"] == "small"
    rebuilt = zoo.from_config(model.config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    zoo.save(model, tmp_path / "m.safetensors")
    loaded = zoo.load(tmp_path / "m.safetensors")
    assert loaded.config == model.config
    (x,) = model.example_inputs(batch_size=2)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_flops_follow_the_stem(name):
    """The small stem keeps the resolution, so the same 32x32 input costs more FLOPs."""
    flops = {}
    for stem in ("imagenet", "small"):
        model = zoo.create(name, stem=stem, img_size=32, width_mult=0.25, device="meta").eval()
        with FlopCounterMode(display=False) as counter:
            model(*model.example_inputs(batch_size=2))
        flops[stem] = counter.get_total_flops()
    assert flops["small"] > 4 * flops["imagenet"] > 0, flops


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "inception"])
@pytest.mark.parametrize("stem", ["imagenet", "small"])
def test_smallest_img_size_is_exactly_what_the_network_processes(name, stem):
    """create refuses img_size below the family's minimum, and torch itself fails there: the bound
    is neither too strict nor too lax."""
    model = _small(name, stem=stem, depth_mult=0.25)
    minimum = type(model).min_img_size[stem]
    small = _small(name, stem=stem, depth_mult=0.25, img_size=minimum)
    with torch.no_grad():
        assert small(*small.example_inputs(batch_size=2)).shape == (2, 3)
        if minimum > 1:
            with pytest.raises(RuntimeError):
                model(torch.randn(2, 3, minimum - 1, minimum - 1))
    if minimum > 1:
        with pytest.raises(ValueError, match=rf"img_size={minimum - 1} is not accepted: expected an "
                                             rf"integer >= {minimum}.*stem='{stem}'"):
            zoo.create(name, stem=stem, img_size=minimum - 1, device="meta")


@pytest.mark.parametrize("bad", ["cifar", None, "Small", 1])
def test_bad_stem_is_named(bad):
    with pytest.raises(ValueError, match=r"stem=.* is not accepted: expected one of \('imagenet', "
                                         r"'small'\)"):
        zoo.create("resnet18", stem=bad, device="meta")
