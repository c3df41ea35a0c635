"""fold_conv_bn against its reference twin, the unfolded model; and the rules that keep it safe."""
from __future__ import annotations

import warnings

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

import zoo
from zoo.kernels.fold_bn import find_conv_bn_pairs, fold_conv_bn, fuse_conv_bn_weights

TOL = 1e-5  # relative: max |folded - ref| / max |ref|


def randomize_bn_(model: nn.Module, seed: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                if m.affine:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                    m.bias.normal_(0.0, 0.1, generator=g)
                if m.track_running_stats:
                    m.running_mean.normal_(0.0, 0.1, generator=g)
                    m.running_var.uniform_(0.5, 2.0, generator=g)
    return model


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


MODELS = {
    "resnet18": lambda: zoo.create("resnet18", num_classes=10, img_size=64),
    "resnet50": lambda: zoo.create("resnet50", num_classes=10, img_size=64),
    "mobilenetv2": lambda: zoo.create("mobilenetv2", num_classes=10, img_size=64),
    "inception": lambda: zoo.create("inception", num_classes=10, img_size=64),
    "seresnet18": lambda: zoo.create("seresnet18", num_classes=10, img_size=64),
    "timm_resnet18": lambda: timm.create_model("resnet18", pretrained=False, num_classes=10),
}


@pytest.mark.parametrize("name", MODELS)
def test_folded_equals_unfolded_and_input_untouched(name):
    torch.manual_seed(0)
    model = randomize_bn_(MODELS[name]()).train()   # folding must not care about the caller's mode
    before, n_bn = snapshot(model), count_bn(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        folded = fold_conv_bn(model)
        out = folded(x)
        ref = model.eval()(x)
    assert count_bn(folded) == 0 and n_bn > 0
    assert not folded.training
    err = rel_err(out, ref)
    assert err < TOL, f"relative error {err:.2e}"
    # the input model is untouched: same modules, same tensors
    assert count_bn(model) == n_bn
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad_fn is None and p.is_leaf for p in folded.parameters())


def test_input_mode_is_kept():
    model = zoo.create("resnet18", num_classes=3, img_size=32).train()
    fold_conv_bn(model)
    assert model.training and all(m.training for m in model.modules())


def test_folded_zoo_model_keeps_its_config_and_methods():
    model = zoo.create("mobilenetv2", width_mult=0.5, num_classes=3, img_size=32)
    folded = fold_conv_bn(model)
    assert folded.config == model.config
    assert folded.example_inputs(2)[0].shape == (2, 3, 32, 32)


def test_fuse_weights_matches_torch_fusion():
    # cross-check the pure math against PyTorch's own conv-bn fusion, with a biased, grouped conv
    conv = nn.Conv2d(8, 12, 3, padding=1, groups=4, bias=True)
    bn = randomize_bn_(nn.Sequential(nn.BatchNorm2d(12, eps=1e-3)))[0].eval()
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                bn.weight, bn.bias)
    expected = fuse_conv_bn_eval(conv.eval(), bn)
    assert torch.allclose(w, expected.weight, rtol=1e-6, atol=1e-7)
    assert torch.allclose(b, expected.bias, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bn_kwargs", [{}, {"affine": False}])
@pytest.mark.parametrize("conv_kwargs", [{}, {"bias": True, "padding_mode": "reflect", "stride": 2,
                                              "dilation": 2, "groups": 2}])
def test_sequential_pair_variants(conv_kwargs, bn_kwargs):
    torch.manual_seed(0)
    model = randomize_bn_(nn.Sequential(nn.Conv2d(4, 6, 3, padding=2, **conv_kwargs),
                                        nn.BatchNorm2d(6, **bn_kwargs), nn.ReLU()))
    x = torch.randn(2, 4, 11, 11)
    folded = fold_conv_bn(model)
    assert find_conv_bn_pairs(model.eval()) == [("0", "1")]
    assert isinstance(folded[1], nn.Identity)
    with torch.no_grad():
        assert rel_err(folded(x), model.eval()(x)) < TOL


class _ConvUsedTwice(nn.Module):
    """The conv output also feeds the residual: folding BN into the conv would change it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _SharedConv(nn.Module):
    """One conv called twice, only once followed by the BN."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


class _WeightReadElsewhere(nn.Module):
    """The conv weight is also used functionally."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x)) + F.conv2d(x, self.conv.weight, padding=1)


class _StdConv(nn.Conv2d):
    """Weight standardisation: forward transforms the weight, so scaling it changes nothing."""

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / self.weight.std((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class _BNThenConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(self.bn(x))


def _hooked():
    m = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
    m[0].register_forward_hook(lambda mod, inp, out: out * 2)
    return m


UNSAFE = {
    "conv_output_used_twice": _ConvUsedTwice,
    "shared_conv": _SharedConv,
    "weight_read_elsewhere": _WeightReadElsewhere,
    "weight_standardised_conv": lambda: nn.Sequential(_StdConv(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
    "bn_before_conv": _BNThenConv,
    "batch_stats_bn": lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=1),
                                            nn.BatchNorm2d(4, track_running_stats=False)),
    "forward_hook": _hooked,
    "registered_twice": lambda: (lambda c, b: nn.Sequential(c, b, nn.Sequential(c, nn.ReLU())))(
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
}


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_pairs_are_left_alone(name):
    torch.manual_seed(0)
    model = randomize_bn_(UNSAFE[name]()).eval()
    x = torch.randn(2, 4, 8, 8)
    folded = fold_conv_bn(model)
    assert find_conv_bn_pairs(model) == []
    assert count_bn(folded) == count_bn(model)
    with torch.no_grad():
        assert torch.equal(folded(x), model(x))


class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace this forward."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if y.sum() > 0 else -y


def test_untraceable_submodule_is_opaque_and_the_rest_still_folds():
    torch.manual_seed(0)
    model = randomize_bn_(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                        _Untraceable(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))).eval()
    assert find_conv_bn_pairs(model) == [("0", "1"), ("4", "5")]
    folded = fold_conv_bn(model)
    assert isinstance(folded[3].bn, nn.BatchNorm2d)   # inside the opaque module: kept
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert rel_err(folded(x), model(x)) < TOL


def test_untraceable_root_folds_nothing_with_a_warning():
    model = randomize_bn_(_Untraceable()).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folded = fold_conv_bn(model)
    assert any("cannot be traced" in str(w.message) for w in caught)
    assert isinstance(folded.bn, nn.BatchNorm2d)


def test_timm_batchnorm_act_is_not_folded():
    # timm's BatchNormAct2d applies an activation too: not a plain BN, so left alone (documented).
    model = timm.create_model("mobilenetv2_050", pretrained=False, num_classes=3).eval()
    assert find_conv_bn_pairs(model) == []


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"model=str"):
        fold_conv_bn("resnet18")


def test_model_without_pairs_is_copied_unchanged():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    folded = fold_conv_bn(model)
    assert folded is not model
    x = torch.randn(2, 3)
    with torch.no_grad():
        assert torch.equal(folded(x), model.eval()(x))


def test_shared_weights_copy_folds_the_same_and_leaves_model_untouched():
    torch.manual_seed(0)
    model = randomize_bn_(zoo.create("resnet18", num_classes=10, img_size=32)).train()
    before = snapshot(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        deep, shared = fold_conv_bn(model), fold_conv_bn(model, share_weights=True)
        assert torch.allclose(shared(x), deep(x), rtol=0, atol=1e-6)
    assert count_bn(shared) == 0 and model.training
    params = dict(model.named_parameters())
    # the fc (no BN after it) is the caller's tensor; the folded convs have new ones
    assert shared.get_parameter("fc.weight") is params["fc.weight"]
    assert all(p is not params[n] for n, p in shared.named_parameters() if n.endswith("conv1.weight"))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and count_bn(model) > 0
    with pytest.raises(ValueError, match=r"share_weights=1"):
        fold_conv_bn(model, share_weights=1)
