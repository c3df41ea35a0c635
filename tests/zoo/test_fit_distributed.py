"""zoo.fit under torchrun (Gloo, 127.0.0.1, 2 processes): DDP and FSDP2 give one process's loss
curve at the same global batch and seed, and rank 0's ``save_path`` file loads on one device.

The multi-process tests run ``benchmarks/examples/fit_torchrun.py`` (the README's example) with
``python -m torch.distributed.run``; they are ``serial`` (run after the parallel suite).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
import zoo.benchmarks
from zoo.data import Samples
from zoo.factory.distributed_probe import free_port
from zoo.training_dp import RankShare

SCRIPT = Path(zoo.benchmarks.__file__).parent / "examples" / "fit_torchrun.py"
CONFIG = {"name": "mlp", "in_features": 8, "hidden": 32, "depth": 2, "num_classes": 3}
# 16 samples at global batch 8: 2 steps an epoch, 3 epochs; the per-epoch train losses compared.
ARGS = ["--config", json.dumps(CONFIG), "--samples", "16", "--batch-size", "8", "--epochs", "3"]


def run(nproc: int, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    for _ in (1, 2):   # a second try on a fresh port (one can be taken before torchrun binds it)
        launcher = [] if nproc == 1 else [
            "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}"]
        proc = subprocess.run([sys.executable, *launcher, str(SCRIPT), *ARGS, *args],
                              capture_output=True, text=True, timeout=300, env=env)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-3000:]}")


_ONE: dict = {}


def one_process(tmp_path_factory) -> dict:
    if not _ONE:
        path = tmp_path_factory.mktemp("one") / "m.safetensors"
        _ONE.update(run(1, "--out", str(path)), path=path)
    return _ONE


@pytest.mark.serial
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_give_the_one_process_curve(strategy, tmp_path, tmp_path_factory):
    one = one_process(tmp_path_factory)
    path = tmp_path / "best.safetensors"
    out = run(2, "--strategy", strategy, "--out", str(path))
    assert out["world"] == 2 and one["world"] == 1 and len(out["losses"]) == 3
    assert max(abs(a - b) for a, b in zip(out["losses"], one["losses"])) <= 1e-5, \
        (out["losses"], one["losses"])
    model, reference = zoo.load(path), zoo.load(one["path"])   # rank 0's file, on one device
    assert model.config == reference.config
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, atol=1e-5, rtol=1e-4, msg=k)


# -- one process ----------------------------------------------------------------------------------

def test_rank_shares_make_up_each_global_batch():
    X, y = torch.arange(22.0).reshape(11, 2), torch.arange(11)
    split = Samples(X, y)
    whole = list(split.batches(4, torch.Generator().manual_seed(3)))
    shares = [list(RankShare(split, r, 2).batches(4, torch.Generator().manual_seed(3)))
              for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == RankShare(split, 0, 2).steps(4)
    for step, (inputs, yb, _) in enumerate(whole):
        m = len(yb) - len(yb) % 2          # the global batch cut to a multiple of the world
        got = torch.cat([shares[r][step][1] for r in range(2)])
        assert sorted(got.tolist()) == sorted(yb[:m].tolist())
        for r in range(2):
            assert torch.equal(shares[r][step][0][0], X[shares[r][step][1]])


def test_one_process_strategy_is_checked_and_save_path_writes(tmp_path):
    X, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    model = zoo.create("mlp", in_features=8, hidden=8, depth=1, num_classes=3)
    with pytest.raises(ValueError, match="strategy='zero3'"):
        zoo.fit(model, (X, y), epochs=1, strategy="zero3", progress=False)
    with pytest.raises(ValueError, match="save_path=3"):
        zoo.fit(model, (X, y), epochs=1, save_path=3, progress=False)
    zoo.fit(model, (X, y), epochs=2, strategy="fsdp", save_path=tmp_path / "m.safetensors",
            progress=False)
    loaded = zoo.load(tmp_path / "m.safetensors")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
