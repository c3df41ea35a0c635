"""zoo-bench distributed: the unit-factor sweep it prints, from its own results, and bad input."""
from __future__ import annotations

import pytest

from zoo.benchmarks import suite_distributed as S
from zoo.benchmarks.cli import main
from zoo.factory.distributed_memory import FSDP_CPU_UNIT_FACTOR

MiB = 1024 ** 2


def test_unit_factor_sweep_recomputes_each_estimate_with_that_factor():
    # one FSDP case: 10 MiB of units, estimated 100 MiB with the current factor, two runs whose
    # worst ranks measured 100 and 104 MiB; a DDP row and an unmeasured row do not count
    rows = [{"strategy": "fsdp", "estimate": {"total": 100 * MiB}, "unit_bytes": 10 * MiB,
             "measured_runs": [[99 * MiB, 100 * MiB], [104 * MiB, 101 * MiB]]},
            {"strategy": "ddp", "estimate": {"total": 1 * MiB}, "unit_bytes": 0,
             "measured_runs": [[50 * MiB, 50 * MiB]]},
            {"strategy": "fsdp", "estimate": {"total": 1 * MiB}, "unit_bytes": 0, "measured_runs": []}]
    sweep = S.unit_factor_sweep(rows)
    assert set(sweep) == set(S.UNIT_FACTORS)
    for f, err in sweep.items():
        total = 100 + (f - FSDP_CPU_UNIT_FACTOR) * 10
        assert err == pytest.approx(max(abs(100 * (total / m - 1)) for m in (100, 104)))


def test_bad_repeats_exit_2(capsys):
    assert main(["distributed", "--no-measure", "--repeats", "0"]) == 2
    assert "--repeats=0 is not accepted" in capsys.readouterr().err
