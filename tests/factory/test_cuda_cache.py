"""The CUDA caching allocator model (zoo.factory.cuda_cache) follows PyTorch's documented rules, and
the CUDA estimate carries its reserved slack and the CUDA context as their own terms. The model is
checked against the allocator's rules here; against a GPU only by benchmarks/gpu_check.py."""
from __future__ import annotations

import pytest

from zoo.factory.cuda_cache import CudaCachingAllocator, reserved_peak
from zoo.factory.training_memory import CUDA_CONTEXT_BYTES, estimate_training_memory

KiB, MiB = 1024, 1024 ** 2


def test_rounding_and_segment_sizes():
    C = CudaCachingAllocator
    assert [C.round_size(n) for n in (1, 512, 513, 1000)] == [512, 512, 1024, 1024]
    assert C.segment_size(C.round_size(300 * KiB)) == 2 * MiB      # small pool
    assert C.segment_size(C.round_size(5 * MiB)) == 20 * MiB       # large, under 10 MiB
    assert C.segment_size(C.round_size(11 * MiB + 1)) == 12 * MiB  # rounded up to 2 MiB


def test_small_requests_share_a_segment_and_large_ones_split_theirs():
    c = CudaCachingAllocator()
    for k in range(4):
        c.malloc(k, 300 * KiB)
    assert c.reserved == 2 * MiB
    c.malloc(10, 5 * MiB)
    c.malloc(11, 5 * MiB)              # the 15 MiB left of the first 20 MiB segment
    assert c.reserved == 22 * MiB
    c.malloc(12, 12 * MiB)             # its own segment of 12 MiB
    assert c.reserved == 34 * MiB and c.allocated == 4 * 300 * KiB + 22 * MiB


def test_freed_neighbours_merge_and_are_reused_before_new_segments():
    c = CudaCachingAllocator()
    for k in range(3):
        c.malloc(k, 5 * MiB)           # 3 x 5 MiB in one 20 MiB segment
    c.free(1)
    c.free(0)                          # merges with the freed block after it: 10 MiB
    c.malloc(3, 9 * MiB)
    assert c.reserved == 20 * MiB and c.peak_reserved == 20 * MiB
    c.free(3)
    c.malloc(4, 11 * MiB)              # nothing cached is large enough: a new segment
    assert c.reserved == 32 * MiB


def test_a_block_is_not_split_when_the_rest_is_at_most_1_mib():
    c = CudaCachingAllocator()
    c.malloc(0, 19 * MiB + 256 * KiB)  # >= 10 MiB: a segment of exactly 20 MiB
    assert c.allocated == 20 * MiB
    c.free(0)
    c.malloc(1, 9 * MiB)               # the cached 20 MiB block: rest 11 MiB > 1 MiB, split
    assert c.allocated == 9 * MiB and c.reserved == 20 * MiB


def test_replay_counts_static_tensors_and_empty_ones():
    res, alloc = reserved_peak([4 * KiB, 2 * MiB], [("a", 1, 0), ("a", 2, 3 * MiB), ("f", 2, 3 * MiB),
                                                    ("f", 1, 0)])
    assert alloc == 4 * KiB + 2 * MiB + 3 * MiB
    assert res == 2 * MiB + 20 * MiB   # the small tensor's segment, one 20 MiB large segment


def test_cuda_estimate_has_reserved_slack_and_context_as_terms():
    cfg = {"name": "mlp", "in_features": 64, "hidden": 256, "depth": 2, "num_classes": 10}
    est = estimate_training_memory(cfg, batch_size=32, device="cuda")
    assert est.context == CUDA_CONTEXT_BYTES and est.allocator > 0   # small tensors: 2 MiB segments
    assert est.total == est.traced_peak + est.allocator + est.framework + est.context
    assert est.allocated == est.traced_peak + est.framework
    cpu = estimate_training_memory(cfg, batch_size=32, device="cpu")
    assert cpu.context == 0


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_per_device_cuda_estimate_counts_the_context_once(strategy):
    from zoo.factory.distributed_memory import estimate_per_device_memory

    cfg = {"name": "mlp", "in_features": 64, "hidden": 256, "depth": 2, "num_classes": 10}
    single = estimate_training_memory(cfg, batch_size=16, device="cuda")
    est = estimate_per_device_memory(cfg, batch_size=32, devices=2, strategy=strategy, device="cuda")
    assert est.context == CUDA_CONTEXT_BYTES
    assert CUDA_CONTEXT_BYTES <= est.total < single.total + CUDA_CONTEXT_BYTES
