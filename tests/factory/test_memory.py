"""Training-memory estimates against a real, independent measurement.

For every family at two sizes (hundreds of MB where it is quick), the estimate
(:func:`zoo.factory.estimate_training_memory`: a fake-tensor or profiled trace, glibc's heap model and
the machine's measured framework constants) is within 15 % of the peak measured by running real training steps in a
fresh subprocess (:func:`zoo.factory.measure_training_memory`: growth of the process's peak resident
set over two real steps -- the second has the optimizer state resident -- plus the weights it
held). One test runs the probes two at a time; it reports every case.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import zoo
from zoo.benchmarks.suite_memory import CASES  # every family at two sizes: the cases `zoo-bench memory` reports
from zoo.factory import estimate_training_memory, measure_training_memory
from zoo.factory.counts import buffer_bytes, count_params, weight_bytes
from zoo.factory.train_step import OPTIMIZERS, MiB

# The band the estimate must fall in, as estimate / measured - 1. The CPU framework constants are
# this machine's, measured once (zoo.factory.framework_calibration): with the first VM's constants
# another VM (same CPU model, another kernel build) measured these cases 0-23 % below the estimate.
UNDER, OVER = -0.15, 0.15
CUDA_TOLERANCE = 0.15   # cuda: torch.cuda.max_memory_allocated, no resident-set noise


@pytest.fixture(autouse=True)
def fresh_memory_cache(tmp_path, monkeypatch):
    """Estimates traced here, not read from the user's cache (see test_memory_cache.py)."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))


def test_every_registered_family_is_covered_at_two_sizes():
    families = {zoo.get_entry(n).family for n in zoo.list_models()}
    counts = {f: sum(zoo.get_entry(n).family == f for n, *_ in CASES) for f in families}
    assert all(c >= 2 for c in counts.values()), counts


def test_estimate_within_its_band_of_the_measured_peak():
    configs = [(name, zoo.create(name, device="meta", **kw).config, bs, ik)
               for name, kw, bs, ik in CASES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(measure_training_memory, cfg, batch_size=bs, input_kwargs=ik)
                   for _, cfg, bs, ik in configs]
        rows, bad = [], []
        for (name, cfg, bs, ik), fut in zip(configs, futures):
            est = estimate_training_memory(cfg, batch_size=bs, input_kwargs=ik).total
            measured = fut.result().peak
            if not UNDER <= est / measured - 1 <= OVER:
                # A resident-set peak varies by a few % from run to run (where glibc's heap puts
                # things): an outlier is measured twice more and judged by the median of three.
                more = [measure_training_memory(cfg, batch_size=bs, input_kwargs=ik).peak
                        for _ in range(2)]
                measured = sorted([measured, *more])[1]
            err = est / measured - 1
            rows.append(f"{name:12s} batch {bs:4d}: estimate {est / MiB:7.1f} MiB, "
                        f"measured {measured / MiB:7.1f} MiB, error {100 * err:+5.1f} %")
            if not UNDER <= err <= OVER:
                bad.append(rows[-1])
    assert min(int(r.split("measured")[1].split()[0].split(".")[0]) for r in rows) >= 100
    assert not bad, "\n".join([f"outside {100 * UNDER:+.0f} % to {100 * OVER:+.0f} %:"] + bad + ["all:"] + rows)


def test_breakdown_follows_the_seed_formula_where_it_holds():
    """weights = 4 bytes x params (+ buffers); gradients 4 bytes x params; Adam 2x, SGD-momentum 1x, SGD 0x state."""
    cfg = zoo.create("mlp", device="meta", in_features=64, hidden=256, num_classes=10).config
    params = count_params(cfg)
    tensors = len(list(zoo.from_config(cfg, device="meta").parameters()))
    for optimizer, k in (("adam", 2), ("sgd-momentum", 1), ("sgd", 0)):
        est = estimate_training_memory(cfg, batch_size=32, optimizer=optimizer)
        # the MLP's buffers (its input standardisation: mean and std per feature) are weights
        # that take no gradient
        assert est.weights == weight_bytes(cfg) == 4 * params + buffer_bytes(cfg)
        assert est.gradients == 4 * params
        # plus Adam's per-tensor step counter (a scalar)
        assert 0 <= est.optimizer_state - k * 4 * params <= 8 * tensors, optimizer
        assert est.total >= est.traced_peak >= est.weights + est.optimizer_state
    assert set(OPTIMIZERS) >= {"adam", "adamw", "sgd", "sgd-momentum"}


def test_activations_grow_with_batch_and_estimates_are_cached():
    cfg = zoo.create("resnet18", device="meta", num_classes=10, img_size=32).config
    small = estimate_training_memory(cfg, batch_size=8)
    large = estimate_training_memory(cfg, batch_size=32)
    assert large.activations > 3 * small.activations
    assert large.total > small.total
    assert estimate_training_memory(cfg, batch_size=8) is small


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size_is_named(bad):
    cfg = zoo.create("linear", device="meta").config
    with pytest.raises(ValueError, match=f"batch_size={bad!r} is not accepted"):
        estimate_training_memory(cfg, batch_size=bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_estimate_within_15_percent_of_max_memory_allocated():
    """On a GPU: the estimate for device='cuda' against torch.cuda.max_memory_allocated over real
    steps (one probe at a time: they share the device)."""
    bad, rows = [], []
    for name, kw, bs, ik in CASES[::3]:
        cfg = zoo.create(name, device="meta", **kw).config
        measured = measure_training_memory(cfg, batch_size=bs, input_kwargs=ik, device="cuda").peak
        est = estimate_training_memory(cfg, batch_size=bs, input_kwargs=ik, device="cuda").allocated
        rows.append(f"{name} batch {bs}: estimate {est / MiB:.1f} MiB, measured "
                    f"{measured / MiB:.1f} MiB ({100 * (est / measured - 1):+.1f} %)")
        if abs(est / measured - 1) > CUDA_TOLERANCE:
            bad.append(rows[-1])
    assert not bad, "\n".join(bad + ["all:"] + rows)
