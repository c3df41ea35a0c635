"""The temporal CNN ("tcn") against a plain twin written with nn.Sequential and
nn.Conv1d(padding="same"), its scaling, any series length, and its ONNX export."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from tests.zoo.test_onnx_export import RTOL, _randomise_norm_stats, _rel_err, _session
from zoo.models.tcn import KERNEL_SIZES, WIDTHS


def _twin_block(in_chs: int, out_chs: int) -> nn.ModuleDict:
    """One residual block of Wang et al. (2017) as the paper's figure draws it."""
    layers: list[nn.Module] = []
    chans = in_chs
    for i, k in enumerate(KERNEL_SIZES):
        layers += [nn.Conv1d(chans, out_chs, k, padding="same", bias=False), nn.BatchNorm1d(out_chs)]
        if i < len(KERNEL_SIZES) - 1:
            layers.append(nn.ReLU())
        chans = out_chs
    shortcut = [nn.Conv1d(in_chs, out_chs, 1, bias=False)] if in_chs != out_chs else []
    return nn.ModuleDict({"branch": nn.Sequential(*layers),
                          "shortcut": nn.Sequential(*shortcut, nn.BatchNorm1d(out_chs))})


class Twin(nn.Module):
    """The same network, written plainly: (x - mean) / std, blocks, mean over time, linear."""

    def __init__(self, in_features: int, widths: list[int], num_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        chans = [in_features] + widths
        self.blocks = nn.ModuleList(_twin_block(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.head = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = ((x - self.mean) / self.std).transpose(1, 2)  # (B, F, T)
        for block in self.blocks:
            h = torch.relu(block["branch"](h) + block["shortcut"](h))
        return self.head(h.mean(dim=2))


def _copy_into_twin(model) -> Twin:
    widths = [block.bns[0].num_features for block in model.blocks]
    twin = Twin(model.in_features, widths, model.head.out_features)
    ours = list(model.state_dict().values())
    theirs = twin.state_dict()
    assert len(ours) == len(theirs)
    # Same order of tensors: standardize (mean, std), then per block the three conv/BN pairs
    # (ours: all convs, then all BNs), the shortcut, and the head.
    mapping = {}
    for b, block in enumerate(model.blocks):
        for i in range(len(KERNEL_SIZES)):
            mapping[f"blocks.{b}.convs.{i}.weight"] = f"blocks.{b}.branch.{3 * i}.weight"
            for t in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                mapping[f"blocks.{b}.bns.{i}.{t}"] = f"blocks.{b}.branch.{3 * i + 1}.{t}"
        for key in block.shortcut.state_dict():
            mapping[f"blocks.{b}.shortcut.{key}"] = f"blocks.{b}.shortcut.{key}"
    mapping.update({"standardize.mean": "mean", "standardize.std": "std",
                    "head.weight": "head.weight", "head.bias": "head.bias"})
    state = model.state_dict()
    assert set(mapping) == set(state) and set(mapping.values()) == set(theirs)
    twin.load_state_dict({mapping[k]: v for k, v in state.items()})
    return twin


@pytest.mark.parametrize("kwargs", [{}, {"width_mult": 0.5, "depth_mult": 2.0},
                                    {"depth_mult": 0.5, "in_features": 1}])
@pytest.mark.parametrize("length", [1, 8, 37])
def test_tcn_equals_its_plain_twin(kwargs, length):
    kwargs = {"in_features": 3, "seq_len": length, "num_classes": 4, **kwargs}
    model = zoo.create("tcn", **kwargs)
    _randomise_norm_stats(model)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a fitted standardisation, so the twin checks it is applied first
        model.standardize.mean.copy_(torch.randn(model.in_features, generator=g))
        model.standardize.std.copy_(torch.rand(model.in_features, generator=g) + 0.5)
    twin = _copy_into_twin(model)
    x = torch.randn(5, length, model.in_features, generator=g)
    model.eval(), twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), twin(x), rtol=0, atol=1e-6)
    if length > 1:  # training mode: batch statistics (a single value per channel cannot train)
        model.train(), twin.train()
        torch.testing.assert_close(model(x), twin(x), rtol=0, atol=1e-5)


def test_tcn_is_wang_et_al_resnet_at_defaults():
    model = zoo.create("tcn", in_features=1, device="meta")
    entry = zoo.get_entry("tcn")
    assert (entry.family, entry.input_kind) == ("tcn", "sequence")
    assert [b.bns[0].num_features for b in model.blocks] == list(WIDTHS) == [64, 128, 128]
    assert [c.kernel_size[0] for c in model.blocks[0].convs] == list(KERNEL_SIZES) == [8, 5, 3]
    assert isinstance(model.blocks[2].shortcut[0], nn.BatchNorm1d)  # equal widths: BN shortcut
    # 3 blocks x (3 convs + BNs) + 2 projection shortcuts + head: the paper's ~0.5 M parameters
    assert 480_000 < sum(p.numel() for p in model.parameters()) < 520_000


def test_tcn_scaling():
    deep = zoo.create("tcn", depth_mult=2.0, device="meta")
    assert [b.bns[0].num_features for b in deep.blocks] == [64, 128, 128, 128, 128, 128]
    shallow = zoo.create("tcn", depth_mult=0.3, device="meta")
    assert [b.bns[0].num_features for b in shallow.blocks] == [64]
    wide = zoo.create("tcn", width_mult=1.5, device="meta")
    assert [b.bns[0].num_features for b in wide.blocks] == [96, 192, 192]


def test_tcn_takes_any_length_and_token_ids():
    model = zoo.create("tcn", in_features=2, seq_len=16, num_classes=3).eval()
    with torch.no_grad():
        for t in (1, 2, 5, 300):
            assert model(torch.randn(2, t, 2)).shape == (2, 3)
    tokens = zoo.create("tcn", in_features=8, vocab_size=20, num_classes=3).eval()
    assert not hasattr(tokens, "standardize")  # ids are not standardised
    (ids,) = tokens.example_inputs(batch_size=2)
    assert ids.dtype == torch.long and ids.shape == (2, 128)
    with torch.no_grad():
        torch.testing.assert_close(tokens(ids), tokens.head(tokens.features(ids)))


@pytest.mark.parametrize("vocab_size", [None, 30])
def test_tcn_onnx_runtime_equals_pytorch_at_batch_1_and_4(vocab_size, tmp_path):
    model = zoo.create("tcn", in_features=3, seq_len=50, num_classes=4, width_mult=0.5,
                       vocab_size=vocab_size)
    _randomise_norm_stats(model)
    if vocab_size is None:
        with torch.no_grad():
            model.standardize.mean.fill_(0.3)
            model.standardize.std.fill_(2.0)
    model.eval()
    path = zoo.export_onnx(model, tmp_path / "tcn.onnx")
    sess = _session(path)
    for batch in (1, 4):
        (x,) = model.example_inputs(batch_size=batch)
        with torch.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == want.shape
        assert _rel_err(got, want) <= RTOL
