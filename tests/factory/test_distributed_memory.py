"""Per-device memory under DDP and FSDP2: scaling with the world size, the FSDP2 padding rule, the
fit that sharding buys, and argument errors. Estimator level only (fake tensors, fake process group)."""
from __future__ import annotations

import math

import pytest

import zoo
from zoo.factory.distributed_memory import (devices_needed, estimate_per_device_memory,
                                            fsdp_tracker_peaks)

# Every parameter's dim 0 is 1024 or 512: divisible by 8, 64 and 512, so FSDP2 pads nothing.
EVEN = {"name": "mlp", "in_features": 64, "hidden": 1024, "depth": 3, "num_classes": 512}


def _param_bytes(config) -> int:
    return 4 * sum(p.numel() for p in zoo.from_config(config, device="meta").parameters())


def _buffer_bytes(config) -> int:
    # buffers (the input standardisation's mean and std) are replicated, not sharded
    return 4 * sum(b.numel() for b in zoo.from_config(config, device="meta").buffers())


def test_model_states_fall_as_one_over_n_and_activations_stay():
    full, buffers = _param_bytes(EVEN), _buffer_bytes(EVEN)
    per_device_batch = 4
    rows = {n: estimate_per_device_memory(EVEN, batch_size=per_device_batch * n, devices=n,
                                          strategy="fsdp") for n in (8, 64, 512)}
    one = estimate_per_device_memory(EVEN, batch_size=per_device_batch, devices=1)
    for n, r in rows.items():
        assert r.local_batch == per_device_batch
        assert r.params == full // n + buffers, n       # no padding: exactly 1/N
        assert r.gradients == full // n
        assert r.optimizer_state == 2 * full // n       # Adam: two tensors per parameter
        # (the single step also counts Adam's step counters: a few bytes)
        assert (r.model_states - buffers) * n == pytest.approx(one.model_states - buffers,
                                                               rel=1e-6)
        assert r.activations == one.activations         # constant per device
        assert r.unsharded > 0 and r.comm_buffers > 0   # a unit gathered, buffers in flight
    totals = [rows[n].total for n in (8, 64, 512)]
    assert totals[0] > totals[1] > totals[2]
    ddp = [estimate_per_device_memory(EVEN, batch_size=per_device_batch * n, devices=n,
                                      strategy="ddp") for n in (8, 64, 512)]
    assert {r.model_states for r in ddp} == {one.model_states}   # DDP: a full replica everywhere
    assert {r.buckets for r in ddp} == {full}                     # + one gradient copy in buckets
    assert {r.activations for r in ddp} == {one.activations}


def test_sharded_states_follow_fsdp2_padding():
    # dims 10, 7 and 3 are not multiples of 4: FSDP2 pads dim 0 to ceil(d0 / N) rows per rank.
    config = {"name": "mlp", "in_features": 5, "hidden": 10, "depth": 2, "num_classes": 3}
    model = zoo.from_config(config, device="meta")
    n = 4
    expected = 4 * sum(math.ceil(p.shape[0] / n) * (p.numel() // p.shape[0])
                       for p in model.parameters())
    peak = fsdp_tracker_peaks(config, local_batch=2, worlds=(n,))[n]
    assert peak["sharded_param"] == expected
    r = estimate_per_device_memory(config, batch_size=8, devices=n, strategy="fsdp")
    assert r.params == expected + _buffer_bytes(config)


def test_four_devices_fsdp_fit_what_one_device_refuses():
    # 64 MiB units (above glibc's 32 MiB mmap ceiling): full states ~1.2 GB, sharded ~0.3 GB.
    big = {"name": "mlp", "in_features": 256, "hidden": 4096, "depth": 4, "num_classes": 10}
    one = estimate_per_device_memory(big, batch_size=64, devices=1)
    four = estimate_per_device_memory(big, batch_size=64, devices=4, strategy="fsdp")
    ddp = estimate_per_device_memory(big, batch_size=64, devices=4, strategy="ddp")
    assert four.total < one.total < ddp.total
    vram_gb = (one.total + four.total) / 2 / 1e9     # one device refuses, four sharded fit
    assert one.total > vram_gb * 1e9 >= four.total
    needed = devices_needed(big, batch_size=64, vram_gb=vram_gb, candidates=(1, 2, 4))
    assert needed in (2, 4)
    assert devices_needed(big, batch_size=64, vram_gb=vram_gb, strategy="ddp",
                          candidates=(1, 2, 4)) is None


def test_one_device_is_plain_training():
    r = estimate_per_device_memory(EVEN, batch_size=8, devices=1, strategy="fsdp")
    assert r.buckets == 0 and r.unsharded == 0 and r.comm_buffers == 0
    assert r.local_batch == 8


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="zero3"), "strategy='zero3' is not accepted"),
    (dict(devices=0), "devices=0 is not accepted"),
    (dict(batch_size=0), "batch_size=0 is not accepted"),
    (dict(device="tpu"), "device='tpu' is not accepted"),
])
def test_bad_arguments(kwargs, message):
    args = dict(batch_size=8, devices=2, strategy="ddp")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        estimate_per_device_memory(EVEN, **args)


def test_inside_a_process_group_the_trace_runs_in_a_subprocess():
    import torch.distributed as dist

    from zoo.factory import distributed_memory as dm

    config = {"name": "mlp", "in_features": 6, "hidden": 12, "depth": 1, "num_classes": 2}
    here = dm._trace_worlds(config=config, local_batch=2, worlds=[2], optimizer="adam",
                            dtype="float32", loss="cross_entropy", input_kwargs=None)
    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    try:
        dm._TRACKER_CACHE.clear()
        there = fsdp_tracker_peaks(config, local_batch=2, worlds=(2,))
        assert dist.is_initialized() and dist.get_world_size() == 1   # the user's group is intact
    finally:
        dist.destroy_process_group()
    assert there[2] == here[2]


def test_fixed_thresholds_stay_fixed_and_return_large_buffers():
    from zoo.factory.glibc_heap import GlibcHeap

    MiB = 1024 ** 2
    dynamic, fixed = GlibcHeap(), GlibcHeap(mmap_threshold=MiB, trim_threshold=2 * MiB, dynamic=False)
    for heap in (dynamic, fixed):
        heap.malloc(0, 4 * MiB)   # mmapped under both
        heap.free(0)
        for k in range(1, 4):     # then three unit-sized buffers, freed in order
            heap.malloc(k, 4 * MiB)
        for k in range(1, 4):
            heap.free(k)
    assert dynamic.mmap_threshold > 4 * MiB and dynamic.resident >= 12 * MiB  # kept on the heap
    assert fixed.mmap_threshold == MiB and fixed.resident == 0                  # back to the kernel


def test_fsdp_cpu_estimate_models_the_fixed_threshold_heap():
    from zoo.distributed import CPU_MMAP_THRESHOLD
    from zoo.factory.distributed_memory import FSDP_CPU_UNIT_FACTOR, fsdp_unit_bytes
    from zoo.factory.training_memory import cpu_allocator_fixed_threshold

    est = estimate_per_device_memory(EVEN, batch_size=8, devices=2, strategy="fsdp")
    slack = cpu_allocator_fixed_threshold(EVEN, batch_size=4, threshold=CPU_MMAP_THRESHOLD)
    assert est.allocator == slack + int(FSDP_CPU_UNIT_FACTOR * sum(fsdp_unit_bytes(EVEN)))
    with pytest.raises(ValueError, match="threshold=0 is not accepted"):
        cpu_allocator_fixed_threshold(EVEN, batch_size=4, threshold=0)
