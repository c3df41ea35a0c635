"""A model of glibc ``malloc``'s resident memory under PyTorch's CPU allocations.

Replayed over a traced training step (:func:`zoo.factory.replay.replay`), it gives what a CPU
process holds beyond its live tensors: the holes freed activations leave in the heap.
"""
from __future__ import annotations


class GlibcHeap:
    """A model of glibc ``malloc``'s resident memory under PyTorch's CPU allocations.

    PyTorch's CPU allocator is ``posix_memalign(64, n)`` with no cache of its own, so the resident
    memory of a training step is glibc's (malloc/malloc.c; this follows glibc 2.26-2.37):

    * a request of at least ``mmap_threshold`` bytes gets its own ``mmap``: resident while alive,
      returned to the kernel on ``free``;
    * the threshold is *dynamic*: freeing an mmapped chunk larger than it (up to
      ``DEFAULT_MMAP_THRESHOLD_MAX`` = 32 MiB) raises it to that chunk's size, and the trim
      threshold to twice that. After the first backward frees its activations, every tensor under
      32 MiB comes from the heap;
    * ``_int_memalign`` asks ``_int_malloc`` for ``nb + alignment + MINSIZE`` bytes and gives back
      what it does not use: a freed tensor leaves a hole 96 bytes too small for the same tensor
      again. Holes are reused best-fit and coalesced, but the heap's pages go back to the kernel
      only when free space at its top exceeds the trim threshold: activations freed mid-heap stay
      resident while the gradients that do not fit their holes grow the heap.

    Resident = heap pages below the break + live mmapped chunks. Thread arenas, bins below 64 KiB
    and fastbins are not modelled (tensors are large).
    """

    MMAP_THRESHOLD_MAX = 32 * 1024 ** 2
    PAGE = 4096
    ALIGN = 64       # c10's CPU allocator alignment
    MINSIZE = 32
    SIZE_SZ = 8
    SLIVER = 1024    # free fragments smaller than this are taken by small allocations

    def __init__(self, mmap_threshold: int = 128 * 1024, trim_threshold: int = 128 * 1024,
                 top_pad: int = 128 * 1024, sliver_taken: float = 0.25, seed: int = 0,
                 dynamic: bool = True) -> None:
        """``dynamic=False``: the thresholds as fixed by ``mallopt`` (M_MMAP_THRESHOLD and
        M_TRIM_THRESHOLD turn glibc's adjustment off), see :func:`zoo.distributed.fix_cpu_mmap_threshold`."""
        self.dynamic = dynamic
        self.sliver_taken = sliver_taken
        self._rng = seed
        self.mmap_threshold = mmap_threshold
        self.trim_threshold = trim_threshold
        self.top_pad = top_pad
        self.top = 16         # start of the top (wilderness) chunk
        self.brk = 0          # end of the heap: pages below it are resident
        self.free_blocks: dict[int, int] = {}   # start -> size
        self.free_ends: dict[int, int] = {}     # end -> start
        self.chunks: dict[int, tuple[str, int, int]] = {}  # key -> (kind, start, size)
        self.mmapped = 0
        self.peak = 0

    @property
    def resident(self) -> int:
        return self.brk + self.mmapped

    def _page(self, n: int) -> int:
        return -(-n // self.PAGE) * self.PAGE

    def malloc(self, key: int, nbytes: int) -> None:
        nb = max(self.MINSIZE, (nbytes + self.SIZE_SZ + 15) & ~15)      # request2size
        need = nb + self.ALIGN + self.MINSIZE
        if need >= self.mmap_threshold:
            size = self._page(need + self.SIZE_SZ)
            self.mmapped += size
            self.chunks[key] = ("m", 0, size)
            self.peak = max(self.peak, self.resident)
            return
        best = None
        for start, bsize in self.free_blocks.items():  # best fit among the holes
            if bsize >= need and (best is None or bsize < best[1]):
                best = (start, bsize)
        if best is not None:
            start, size = best
            self._remove_free(start)
        else:
            start, size = self.top, need
            self.top += need
            if self.top > self.brk:
                self.brk = self._page(self.top)
        # _int_memalign: align the user pointer (chunk + 16) to 64, give back lead and tail.
        mem = start + 2 * self.SIZE_SZ
        lead = (-mem) % self.ALIGN
        if lead and lead < self.MINSIZE:
            lead += self.ALIGN
        # The lead and tail slivers go to glibc's small bins, where the interpreter's small
        # objects take them: they do not coalesce back when the tensor is freed.
        if lead and not self._taken(lead):
            self._release(start, lead)
        tail = size - lead - nb
        if tail < self.MINSIZE:
            nb += tail
        elif not self._taken(tail):
            self._release(start + lead + nb, tail)
        self.chunks[key] = ("h", start + lead, nb)
        self.peak = max(self.peak, self.resident)

    def free(self, key: int) -> None:
        kind, start, size = self.chunks.pop(key)
        if kind == "m":
            self.mmapped -= size
            if self.dynamic and self.mmap_threshold < size <= self.MMAP_THRESHOLD_MAX:
                self.mmap_threshold = size
                self.trim_threshold = 2 * size
            return
        self._release(start, size, trim=True)

    def _release(self, start: int, size: int, trim: bool = False) -> None:
        end = start + size
        if end in self.free_blocks:                # coalesce with the next hole
            size += self._remove_free(end)
            end = start + size
        if start in self.free_ends:                # ... and the previous one
            prev = self.free_ends[start]
            size += self._remove_free(prev)
            start = prev
        if end == self.top:                        # merged into the top chunk
            self.top = start
            if trim and self.brk - self.top >= self.trim_threshold:   # systrim
                self.brk = self._page(self.top + self.top_pad)
        else:
            self._add_free(start, size)

    def _taken(self, size: int) -> bool:
        if size >= self.SLIVER:
            return False
        self._rng = (self._rng * 6364136223846793005 + 1442695040888963407) % 2 ** 64
        return (self._rng >> 11) / 2 ** 53 < self.sliver_taken

    def _add_free(self, start: int, size: int) -> None:
        self.free_blocks[start] = size
        self.free_ends[start + size] = start

    def _remove_free(self, start: int) -> int:
        size = self.free_blocks.pop(start)
        del self.free_ends[start + size]
        return size
