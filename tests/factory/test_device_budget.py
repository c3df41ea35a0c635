"""build(devices=, strategy=): vram_gb per device, batch_size global; the search costs each point
per device; FSDP on 4 devices fits a model one device refuses at the same vram_gb; the BudgetError
says how many devices would work; the spec states devices, strategy and the per-device batch."""
from __future__ import annotations

import pytest

import zoo
from zoo.errors import BudgetError
from zoo.factory.distributed_memory import estimate_per_device_memory

# An MLP over 400k features: its first layer (12.8M parameters at the smallest width) dominates,
# so model states, which FSDP shards, are most of its training memory.
WIDE = dict(task="tabular-classification", n_samples=100_000, latency_ms=None,
            input_shape=(400_000,), num_classes=10, families=["mlp"], batch_size=64)


def test_fsdp_on_four_devices_fits_what_one_device_refuses():
    one = four = None
    try:
        zoo.build(vram_gb=0.3, devices=1, **WIDE)
    except BudgetError as exc:
        one = exc
    assert one is not None, "one device of 0.3 GB should not train the smallest wide MLP"
    assert "strategy='fsdp' would work" in str(one) and "devices=" in str(one)
    four = zoo.build(vram_gb=0.3, devices=4, strategy="fsdp", **WIDE)
    spec = four.spec
    assert spec.memory["total"] <= 0.3e9 and spec.memory["devices"] == 4
    assert spec.memory["strategy"] == "fsdp" and spec.memory["local_batch"] == 16
    assert spec.budgets["devices"] == 4 and spec.budgets["strategy"] == "fsdp"
    assert spec.budgets["batch_size"] == 64 and spec.budgets["per_device_batch"] == 16
    assert any("vram_gb is per device" in r for r in spec.reasons)
    # the spec's figure is the per-device estimate of the chosen config, not the 1-device one
    est = estimate_per_device_memory(spec.config, batch_size=64, devices=4, strategy="fsdp")
    assert spec.memory["total"] == est.total
    assert est.total < estimate_per_device_memory(spec.config, batch_size=64, devices=1).total


def test_the_suggested_device_count_fits():
    with pytest.raises(BudgetError) as info:
        zoo.build(vram_gb=0.3, devices=1, **WIDE)
    n = int(str(info.value).split("; devices=")[1].split()[0])
    model = zoo.build(vram_gb=0.3, devices=n, strategy="fsdp", **WIDE)
    assert model.spec.memory["total"] <= 0.3e9


def test_one_device_is_the_single_device_search():
    model = zoo.build("tabular-classification", 1000, 1.0, None, input_shape=(8,),
                      num_classes=3, families=["mlp"])
    assert model.spec.budgets["devices"] == 1 and model.spec.budgets["strategy"] == "ddp"
    assert "devices" not in model.spec.memory   # the single-device MemoryEstimate


@pytest.mark.parametrize("kw, message", [
    ({"devices": 0}, "devices=0"), ({"devices": 2.5}, "devices=2.5"),
    ({"strategy": "zero3"}, "strategy='zero3'"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("tabular-classification", 1000, 1.0, None, input_shape=(8,), num_classes=3,
                  **kw)


def test_cli_flags(capsys):
    from zoo.factory.cli import main

    rc = main(["build", "tabular-classification", "--n-samples", "1000", "--input-shape", "8",
               "--num-classes", "3", "--families", "mlp", "--vram-gb", "1", "--latency-ms", "none",
               "--devices", "8", "--strategy", "ddp", "--json", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert '"devices": 8' in out and '"strategy": "ddp"' in out
