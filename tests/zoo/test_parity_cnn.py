"""The CNN families equal their references: timm ResNet / SE-ResNet / MobileNetV2, torchvision GoogLeNet.

Each test fails when the architecture drifts: parameter names, shapes and counts, and the logits for
the same weights (references built with random weights, BN running statistics and affine parameters
set to random non-trivial values so eval-mode parity tests every BN; timm's zero-initialised last BN
would otherwise hide the residual branches).
"""
from __future__ import annotations

from functools import partial

import pytest
import timm
import torch
import torch.nn as nn
import torchvision
from timm.models._efficientnet_builder import decode_arch_def, round_channels
from timm.models.efficientnet import EfficientNet

import zoo
from tests.conftest import n_params
from zoo.models.mobilenetv2 import CONFIG
from zoo.models.resnet import BasicBlock, Bottleneck

NUM_CLASSES = 10
TOL = 1e-5  # relative: max |ours - ref| / max |ref|


def randomize_bn_(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random BN affine parameters and running statistics, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def assert_same_logits(ours: nn.Module, ref: nn.Module, img_size: int = 64) -> float:
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        out, expected = ours(x), ref(x)
    assert out.shape == expected.shape == (2, NUM_CLASSES)
    err = rel_err(out, expected)
    assert err < TOL, f"relative error {err:.2e}"
    return err


def shapes(model: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- parameter names, shapes and counts (on the meta device: no memory, milliseconds) --------------

TIMM_TWINS = [  # (ours, kwargs, timm name)
    ("resnet18", {}, "resnet18"),
    ("resnet34", {}, "resnet34"),
    ("resnet50", {}, "resnet50"),
    ("resnet101", {}, "resnet101"),
    ("seresnet18", {}, "seresnet18"),
    ("seresnet34", {}, "seresnet34"),
    ("seresnet50", {}, "seresnet50"),
    ("seresnet101", {}, "seresnet101"),
    ("mobilenetv2", {"width_mult": 0.5}, "mobilenetv2_050"),
    ("mobilenetv2", {"width_mult": 1.0}, "mobilenetv2_100"),
    ("mobilenetv2", {"width_mult": 1.4}, "mobilenetv2_140"),
]


@pytest.mark.parametrize("name,kwargs,timm_name", TIMM_TWINS, ids=[t[2] for t in TIMM_TWINS])
def test_state_dict_names_and_shapes_equal_timm(name, kwargs, timm_name):
    ours = zoo.create(name, device="meta", **kwargs)
    ref = timm.create_model(timm_name, pretrained=False, device="meta")
    assert shapes(ours) == shapes(ref)
    assert n_params(ours) == n_params(ref)


@pytest.mark.parametrize("name,kwargs,expected", [
    ("resnet18", {}, 11_689_512),
    ("resnet50", {}, 25_557_032),
    ("mobilenetv2", {}, 3_504_872),
])
def test_published_parameter_counts(name, kwargs, expected):
    assert n_params(zoo.create(name, device="meta", **kwargs)) == expected


def test_inception_state_dict_equals_torchvision_googlenet():
    ours = zoo.create("inception", device="meta")
    ref = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                       transform_input=False)
    assert shapes(ours) == shapes(ref)
    assert n_params(ours) == n_params(ref) == 6_624_904


# --- same weights, same logits -----------------------------------------------------------------

LOGIT_TWINS = [t for t in TIMM_TWINS if t[2] not in ("resnet101", "seresnet101", "seresnet34")]


@pytest.mark.parametrize("name,kwargs,timm_name", LOGIT_TWINS, ids=[t[2] for t in LOGIT_TWINS])
def test_logits_equal_timm_for_the_same_weights(name, kwargs, timm_name):
    torch.manual_seed(0)
    ref = randomize_bn_(timm.create_model(timm_name, pretrained=False, num_classes=NUM_CLASSES))
    ours = zoo.create(name, num_classes=NUM_CLASSES, img_size=64, **kwargs)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_same_logits(ours, ref)
    with torch.no_grad():  # timm's split into features and head, too
        x = torch.randn(1, 3, 64, 64)
        feats = ours.forward_features(x)
        assert rel_err(feats, ref.forward_features(x)) < TOL
        assert feats.shape[1] == ours.num_features


def _timm_mobilenetv2_se(width_mult: float) -> EfficientNet:
    """timm's MobileNetV2 (``_gen_mobilenet_v2``'s arguments) with "se0.25" on every block."""
    arch = [["ds_r1_k3_s1_c16_se0.25"]] + [[f"ir_r{n}_k3_s{s}_e{t}_c{c}_se0.25"] for t, c, n, s in CONFIG[1:]]
    round_fn = partial(round_channels, multiplier=width_mult)
    return EfficientNet(block_args=decode_arch_def(arch), num_features=max(1280, round_fn(1280)),
                        stem_size=32, round_chs_fn=round_fn, act_layer=nn.ReLU6, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("width_mult", [0.5, 1.0])
def test_mobilenetv2_se_equals_timm_se_layer(width_mult):
    torch.manual_seed(0)
    ref = randomize_bn_(_timm_mobilenetv2_se(width_mult))
    ours = zoo.create("mobilenetv2", se=True, width_mult=width_mult, num_classes=NUM_CLASSES, img_size=64)
    # timm's EfficientNet SE names its convs conv_reduce/conv_expand; ours (SE-ResNet's) fc1/fc2.
    renamed = {k.replace(".se.conv_reduce.", ".se.fc1.").replace(".se.conv_expand.", ".se.fc2."): v
               for k, v in ref.state_dict().items()}
    ours.load_state_dict(renamed, strict=True)
    assert n_params(ours) == n_params(ref)
    assert_same_logits(ours, ref)


def test_timm_se_reference_without_se_is_mobilenetv2_100():
    # The arch strings above are exactly timm's mobilenetv2 once the SE is taken out.
    arch = [["ds_r1_k3_s1_c16"]] + [[f"ir_r{n}_k3_s{s}_e{t}_c{c}"] for t, c, n, s in CONFIG[1:]]
    ref = EfficientNet(block_args=decode_arch_def(arch), num_features=1280, stem_size=32,
                       act_layer=nn.ReLU6, device="meta")
    assert shapes(ref) == shapes(timm.create_model("mobilenetv2_100", device="meta"))


def test_inception_logits_equal_torchvision_googlenet():
    torch.manual_seed(0)
    ref = randomize_bn_(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True,
                                                     transform_input=False, num_classes=NUM_CLASSES))
    ours = zoo.create("inception", num_classes=NUM_CLASSES, img_size=64)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_same_logits(ours, ref)


def test_float64_build_matches_timm_in_float64():
    torch.manual_seed(0)
    ref = randomize_bn_(timm.create_model("resnet18", num_classes=NUM_CLASSES)).double().eval()
    ours = zoo.create("resnet18", num_classes=NUM_CLASSES, dtype=torch.float64).eval()
    assert all(p.dtype == torch.float64 for p in ours.parameters())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert ours.example_inputs()[0].dtype == torch.float64
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert rel_err(ours(x), ref(x)) < 1e-12


# --- blocks, init and arguments ----------------------------------------------------------------

def test_block_expansion_and_zero_init_last():
    assert BasicBlock.expansion == 1 and Bottleneck.expansion == 4
    r18, r50 = zoo.create("resnet18", device="meta"), zoo.create("resnet50")
    assert isinstance(r18.layer1[0], BasicBlock) and isinstance(r50.layer1[0], Bottleneck)
    for block in r50.modules():
        if isinstance(block, Bottleneck):  # timm's zero_init_last=True: each block starts as identity
            assert torch.count_nonzero(block.bn3.weight) == 0
            assert torch.all(block.bn2.weight == 1)


def test_depth_mult_scales_every_stage():
    model = zoo.create("resnet18", depth_mult=2.0, device="meta")
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [4, 4, 4, 4]
    model = zoo.create("mobilenetv2", depth_mult=0.5, device="meta")
    assert [len(stage) for stage in model.blocks] == [1, 1, 2, 2, 2, 2, 1]


@pytest.mark.parametrize("depth_mult", [0.5, 2.0])
def test_inception_depth_scaled_forward(depth_mult):
    model = zoo.create("inception", depth_mult=depth_mult, width_mult=0.5, num_classes=NUM_CLASSES,
                       img_size=64).eval()
    blocks = [n for n in model.feature_order if n.startswith("inception")]
    assert len(blocks) == {0.5: 1 + 3 + 1, 2.0: 4 + 10 + 4}[depth_mult]
    with torch.no_grad():
        assert model(*model.example_inputs(2)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "inception"])
def test_in_chans_and_odd_input_size(name):
    model = zoo.create(name, in_chans=1, img_size=33, width_mult=0.5, num_classes=NUM_CLASSES).eval()
    (x,) = model.example_inputs(batch_size=2)
    assert x.shape == (2, 1, 33, 33)
    with torch.no_grad():
        assert model(x).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet18", {"in_chans": 0}, r"in_chans=0"),
    ("resnet50", {"img_size": 64.0}, r"img_size=64.0"),
    ("inception", {"num_classes": -1}, r"num_classes=-1"),
    ("mobilenetv2", {"drop_rate": 1.0}, r"drop_rate=1.0"),
    ("mobilenetv2", {"se": "yes"}, r"se='yes'"),
    ("seresnet18", {"width_mult": 0}, r"width_mult=0"),
])
def test_bad_arguments_are_named(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.create(name, device="meta", **kwargs)
