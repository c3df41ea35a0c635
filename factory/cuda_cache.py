"""A model of PyTorch's CUDA caching allocator: what a training step reserves from the device.

``torch.cuda.max_memory_allocated`` counts the bytes of live tensors (each rounded up to 512);
what the process takes from the device is the allocator's *reserved* memory, the segments it got
from ``cudaMalloc`` and keeps cached, plus the CUDA context. This replays a traced step through
the allocator's rules (``c10/cuda/CUDACachingAllocator.cpp``, default settings: no
``max_split_size_mb``, no ``roundup_power2_divisions``, no expandable segments, one stream):

* a request is rounded up to a multiple of 512 bytes (at least 512);
* requests up to 1 MiB come from the *small* pool, larger ones from the *large* pool;
* a request takes the smallest cached free block of its pool that is large enough (best fit);
  without one the allocator reserves a new segment: 2 MiB for small requests, 20 MiB for
  requests under 10 MiB, else the request rounded up to a multiple of 2 MiB;
* a block larger than the request is split when the rest is at least 512 bytes (small pool) or
  more than 1 MiB (large pool); otherwise the request keeps the whole block;
* a freed block merges with its free neighbours in the same segment; segments are never given
  back (no ``empty_cache``), so the reserved peak is the reserved memory at the end.

Not modelled: several streams, CUDA graphs, and the allocator's retry after an out-of-memory
error, which frees cached segments (so under a tight memory fraction the reserved peak can come
out lower than this unconstrained figure: the estimate errs on the safe side).
"""
from __future__ import annotations

MiB = 1024 ** 2


class CudaCachingAllocator:
    """Reserved and allocated bytes of PyTorch's CUDA caching allocator under ``malloc``/``free``."""

    MIN_BLOCK = 512
    SMALL_SIZE = 1 * MiB
    SMALL_BUFFER = 2 * MiB
    LARGE_BUFFER = 20 * MiB
    MIN_LARGE_ALLOC = 10 * MiB
    ROUND_LARGE = 2 * MiB

    def __init__(self) -> None:
        self.free_blocks: dict[str, dict[tuple[int, int], int]] = {"small": {}, "large": {}}
        self.blocks: dict[int, tuple[str, int, int, int]] = {}   # key -> (pool, segment, start, size)
        self.segment_free: dict[int, dict[int, int]] = {}        # segment -> start -> size (free)
        self.reserved = 0
        self.allocated = 0
        self.peak_reserved = 0
        self.peak_allocated = 0

    @classmethod
    def round_size(cls, nbytes: int) -> int:
        """The bytes a request of ``nbytes`` occupies: a multiple of 512, at least 512."""
        return max(cls.MIN_BLOCK, -(-nbytes // cls.MIN_BLOCK) * cls.MIN_BLOCK)

    @classmethod
    def segment_size(cls, size: int) -> int:
        """The segment reserved for a rounded request of ``size`` bytes no cached block holds."""
        if size <= cls.SMALL_SIZE:
            return cls.SMALL_BUFFER
        if size < cls.MIN_LARGE_ALLOC:
            return cls.LARGE_BUFFER
        return -(-size // cls.ROUND_LARGE) * cls.ROUND_LARGE

    def malloc(self, key: int, nbytes: int) -> None:
        if nbytes <= 0:   # PyTorch allocates nothing for an empty tensor
            return
        size = self.round_size(nbytes)
        pool = "small" if size <= self.SMALL_SIZE else "large"
        fits = [(bsize, seg, start) for (seg, start), bsize in self.free_blocks[pool].items()
                if bsize >= size]
        if fits:
            bsize, seg, start = min(fits)
            self._take(pool, seg, start)
        else:
            bsize, seg, start = self.segment_size(size), len(self.segment_free), 0
            self.segment_free[seg] = {}
            self.reserved += bsize
            self.peak_reserved = max(self.peak_reserved, self.reserved)
        rest = bsize - size
        if rest >= self.MIN_BLOCK if pool == "small" else rest > self.SMALL_SIZE:
            self._give(pool, seg, start + size, rest)
            bsize = size
        self.blocks[key] = (pool, seg, start, bsize)
        self.allocated += bsize
        self.peak_allocated = max(self.peak_allocated, self.allocated)

    def free(self, key: int) -> None:
        if key not in self.blocks:   # an empty tensor's free
            return
        pool, seg, start, size = self.blocks.pop(key)
        self.allocated -= size
        free = self.segment_free[seg]
        end = start + size
        if end in free:                              # merge with the next free block
            size += self._take(pool, seg, end)
        before = next((s for s, n in free.items() if s + n == start), None)
        if before is not None:                       # ... and the previous one
            size += self._take(pool, seg, before)
            start = before
        self._give(pool, seg, start, size)

    def _give(self, pool: str, seg: int, start: int, size: int) -> None:
        self.free_blocks[pool][(seg, start)] = size
        self.segment_free[seg][start] = size

    def _take(self, pool: str, seg: int, start: int) -> int:
        del self.free_blocks[pool][(seg, start)]
        return self.segment_free[seg].pop(start)


def reserved_peak(static_sizes: list[int], events: list) -> tuple[int, int]:
    """(reserved peak, allocated peak) in bytes: ``static_sizes`` (the tensors held before the
    step, in order) allocated first, then ``events`` (``("a"|"f", key, nbytes)``) replayed."""
    cache = CudaCachingAllocator()
    for i, n in enumerate(static_sizes):
        cache.malloc(-1 - i, n)
    for kind, key, n in events:
        if kind == "a":
            cache.malloc(key, n)
        else:
            cache.free(key)
    return cache.peak_reserved, cache.peak_allocated
