"""Parameter and FLOP counts: exact, kept across processes, invalidated by a version change."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.factory import count_cache, counts
from zoo.factory.search import config_for


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(count_cache, "_MEMO", {})
    return tmp_path


def _refuse(*a, **k):
    raise AssertionError("counted again: the cache was not read")


def test_counts_are_read_back_in_a_new_process_and_a_version_change_recounts(cache, monkeypatch):
    cfg = config_for("resnet18", num_classes=10, width_mult=0.5)
    params = count_cache.params(cfg)
    flops = count_cache.flops(cfg, None)
    assert params == sum(p.numel() for p in zoo.from_config(cfg, device="meta").parameters())
    assert flops == counts.count_flops(cfg)
    assert len(list((cache / "counts").glob("*.json"))) == 2
    monkeypatch.setattr(count_cache, "_MEMO", {})          # a new process: only the files remain
    monkeypatch.setattr(count_cache, "count_params", _refuse)
    monkeypatch.setattr(count_cache, "count_flops", _refuse)
    assert count_cache.params(cfg) == params and count_cache.flops(cfg, None) == flops
    monkeypatch.setattr(count_cache, "_MEMO", {})
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")  # another torch: other keys
    with pytest.raises(AssertionError, match="counted again"):
        count_cache.params(cfg)


def test_a_corrupt_or_foreign_entry_is_counted_again(cache, monkeypatch):
    cfg = config_for("mlp", in_features=8, num_classes=3)
    n = count_cache.params(cfg)
    (path,) = (cache / "counts").glob("params-*.json")
    for text in ("{not json", '{"key": "another", "count": 5}', '{"count": -1}', "[]"):
        path.write_text(text)
        monkeypatch.setattr(count_cache, "_MEMO", {})
        assert count_cache.params(cfg) == n


@pytest.mark.parametrize("kw", [dict(in_features=40, num_classes=5),
                                dict(in_features=12, num_classes=2, width_mult=2.853,
                                     depth_mult=1.5, norm="batchnorm", dropout=0.1),
                                dict(in_features=7, num_classes=1, norm="layernorm")])
def test_tabular_flops_without_a_forward_equal_the_flop_counter(kw):
    model = zoo.create("mlp", **kw).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(3, kw["in_features"]))
    assert counts.count_flops(config_for("mlp", **kw), batch_size=3) == counter.get_total_flops()
    linear = config_for("linear", in_features=kw["in_features"], num_classes=4)
    assert counts.count_flops(linear) == 2 * kw["in_features"] * 4


def test_attention_is_counted():
    """On meta tensors SDPA is the two matrix products it is, 2 * 2 * T^2 * d per layer; on real or
    fake CPU tensors it is a fused kernel the counter has no formula for, and is left out."""
    cfg = config_for("transformer", in_features=8, seq_len=64, num_classes=3, depth=2)
    model = zoo.from_config(cfg).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*model.example_inputs(1))
    attention = 2 * (2 * 2 * 64 * 64 * cfg["d_model"])
    assert counts.count_flops(cfg) == counter.get_total_flops() + attention
