"""Training memory *per device* under data parallelism: DDP and FSDP2 on N devices, from one CPU.

``batch_size`` is the GLOBAL batch; each of the N ranks trains on ``b = ceil(B / N)`` samples.
:func:`estimate_per_device_memory` answers "how much does one rank hold at its worst moment":

DDP (``torch.nn.parallel.DistributedDataParallel``): a full replica per rank. On top of the
single-device step at batch b (:func:`zoo.factory.training_memory.estimate_training_memory`) DDP's
reducer allocates, at construction, one flat gradient buffer per bucket (``bucket_cap_mb=25``
sets how the parameters are split, not the total): with the default
``gradient_as_bucket_view=False`` the buckets hold a second copy of every gradient, ``P s``
bytes. So ::

    total_ddp = single(b).total + buckets + overhead,      buckets = P s

(``overhead``: :data:`GLOO_CPU_OVERHEAD` on Gloo, reported within ``framework``.)

FSDP2 (``fully_shard`` per wrap unit, :func:`zoo.shard`): the step is run on fake tensors under
PyTorch's own :class:`torch.distributed._tools.fsdp2_mem_tracker.FSDPMemTracker` with a fake
process group of world size N (``FakeStore``, backend ``"fake"``: collectives are no-ops, shapes
are exact), as torchtitan's estimator does, so any N is estimated on one CPU in about a second.
The tracker reports, at the step's peak, the sharded parameters, gradients and optimizer state
(``sum_p ceil(d0_p / N) * rest_p`` elements each: FSDP2 pads dim 0 to a multiple of N), the
unsharded parameters and gradients of the units live at once (the running unit and the one
prefetched), the all-gather and reduce-scatter buffers, activations and temporaries. Then ::

    total_fsdp = tracker(N).peak + kernels + allocator + framework

* ``kernels = single(b).traced_peak - tracker(1).peak``: how the single-device trace differs
  from a fake FSDP step on one device (CPU kernel workspaces; the LSTM's and GCN's profiled
  kernels, whose fake-tensor paths differ), terms of the per-device batch that sharding does not
  change. So ``tracker(N) - tracker(1)``, what sharding changes, is applied to the single-device
  trace, and N = 1 gives the single-device estimate;
* ``framework``: the single-device step's library constants, plus :data:`GLOO_CPU_OVERHEAD` on
  CPU;
* ``allocator`` (CPU): glibc's heap. :func:`zoo.shard` fixes glibc's mmap threshold at 1 MiB on
  CPU (:func:`zoo.distributed.fix_cpu_mmap_threshold`): without that, glibc's dynamic threshold
  kept FSDP's per-step full-size buffers on heaps, several in the Gloo threads' arenas, by
  amounts that differed by model, rank and run (``zoo-bench distributed --glibc-dynamic``).
  With it, the slack is the single-device step replayed through
  :class:`~zoo.factory.glibc_heap.GlibcHeap` at those fixed thresholds
  (:func:`zoo.factory.training_memory.cpu_allocator_fixed_threshold`), plus
  :data:`FSDP_CPU_UNIT_FACTOR` times the bytes of the wrap units (fitted; 0 on the evidence so far).

On CUDA the parts are the single-device CUDA estimate's: the traced tensors and workspaces (what
``torch.cuda.max_memory_allocated`` counts), ``allocator``, the caching allocator's reserved
segments beyond them (:mod:`zoo.factory.cuda_cache`), and ``context``, the CUDA context each
process holds outside the allocator (:data:`zoo.factory.training_memory.CUDA_CONTEXT_BYTES`, NOT
measured here: see ``benchmarks/gpu_check.py``).

Model-state terms fall as 1/N (up to the dim-0 padding); activations depend on b only, so at a
fixed per-device batch they stay constant per device.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass

import torch

import zoo
from zoo import validation
from zoo.distributed import CPU_MMAP_THRESHOLD
from zoo.factory.train_step import OPTIMIZERS
from zoo.factory.training_memory import CUDA_CONTEXT_BYTES  # noqa: F401  (re-exported: gpu_check)
from zoo.factory.training_memory import cpu_allocator_fixed_threshold, estimate_training_memory

MiB = 1024 ** 2
STRATEGIES = ("ddp", "fsdp")
FSDP_CPU_UNIT_FACTOR = 0.0
"""FSDP2 on CPU, beyond the tracker's peak, :data:`GLOO_CPU_OVERHEAD` and the fixed-threshold
heap: this many times the bytes of the wrap units. ``zoo-bench distributed --repeats 3`` prints the
FSDP2 runs' largest worst-rank error for other values; on the VM of 2026-11-29
(distributed_vm2.json): 0: 17.6 %, 0.1: 18.3 %, 0.2: 18.9 %, 0.5: 20.9 %, 1: 24.2 % (the largest
is the ResNet-18 x0.25 on 2 ranks, over-estimated, which any such term makes worse). So no such
term: the fixed-threshold heap replay alone; the constant stays for another machine's evidence."""
GLOO_CPU_OVERHEAD = 5 * MiB
"""Data parallelism on Gloo (DDP and FSDP) beyond the single-device step and DDP's buckets: the
reducer's autograd hooks and bucket views (DDP), Gloo's pair buffers and threads. Measured +6 to
+12 MiB at 2 ranks under DDP for an MLP, a ResNet-18 and a Transformer on the project's first VM;
0 to +3 MiB for the ResNet-18 x0.25 on the VM of 2026-11-29 (50.0-52.7 MiB with DDP on 2 ranks vs
47.2 MiB alone at batch 16, less its 2.7 MiB of buckets), where 8 MiB put that case at +13.5 to
+16 %. With 5 MiB every measured DDP case of both VMs is within 14 % (``zoo-bench distributed``:
distributed.json, distributed_vm2.json)."""


@dataclass
class DistributedMemoryEstimate:
    """Per-device training memory in bytes, with its parts (see the module doc).

    ``params``, ``gradients``, ``optimizer_state``: this rank's model states (full under DDP,
    sharded under FSDP); ``activations`` at the per-device batch; ``buckets``: DDP's gradient
    buckets; ``unsharded``: FSDP's gathered parameters and gradients live at the peak;
    ``comm_buffers``: all-gather and reduce-scatter buffers at the peak; ``transient``: the rest of
    the traced peak; ``allocator``: glibc's heap slack (CPU; under FSDP at the fixed thresholds); ``framework``:
    library constants; ``context``: the CUDA context (0 on CPU). ``total`` is the peak (not the sum:
    parts peak at different moments).
    """
    strategy: str
    devices: int
    batch_size: int
    local_batch: int
    params: int
    gradients: int
    optimizer_state: int
    activations: int
    buckets: int
    unsharded: int
    comm_buffers: int
    transient: int
    allocator: int
    framework: int
    context: int
    total: int
    device: str
    dtype: str
    optimizer: str
    method: str

    @property
    def total_gb(self) -> float:
        return self.total / 1e9

    @property
    def model_states(self) -> int:
        """Parameters + gradients + optimizer state held by this rank outside the step's peak."""
        return self.params + self.gradients + self.optimizer_state

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_gb"] = self.total_gb
        return d


def estimate_per_device_memory(config: dict, *, batch_size: int, devices: int, strategy: str = "ddp",
                               optimizer: str = "adam", dtype: str = "float32",
                               device: str = "cpu", loss: str = "cross_entropy",
                               input_kwargs: dict | None = None) -> DistributedMemoryEstimate:
    """Per-device bytes to train ``config`` on ``devices`` ranks at GLOBAL ``batch_size``.

    ``strategy``: ``"ddp"`` or ``"fsdp"`` (FSDP2 over the family's units, as :func:`zoo.shard`).
    ``devices=1`` is plain single-device training (no wrapper). Graph inputs (``input_kwargs``
    with ``num_nodes``): the batch counts graphs, as ``example_inputs``; each rank gets b graphs.
    """
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"config={config!r} is not accepted: expected a model config dict")
    batch_size = validation.positive_int("batch_size", batch_size)
    devices = validation.positive_int("devices", devices)
    strategy = validation.choice("strategy", strategy, STRATEGIES)
    device = validation.choice("device", device, ("cpu", "cuda"))
    local = math.ceil(batch_size / devices)
    single = estimate_training_memory(config, batch_size=local, optimizer=optimizer, dtype=dtype,
                                      device=device, loss=loss, input_kwargs=input_kwargs)
    context = single.context   # the CUDA context (0 on CPU), inside single.total
    gloo = GLOO_CPU_OVERHEAD if devices > 1 and device == "cpu" else 0
    common = dict(strategy=strategy, devices=devices, batch_size=batch_size, local_batch=local,
                  activations=single.activations, framework=single.framework + gloo,
                  context=context,
                  device=device, dtype=single.dtype, optimizer=optimizer)
    if devices == 1 or strategy == "ddp":
        buckets = single.gradients if devices > 1 else 0
        return DistributedMemoryEstimate(
            params=single.weights, gradients=single.gradients,
            optimizer_state=single.optimizer_state, buckets=buckets, unsharded=0, comm_buffers=0,
            transient=single.transient, allocator=single.allocator,
            total=single.total + buckets + gloo,
            method=f"single-device {single.trace} trace" + (" + DDP buckets" if devices > 1 else ""),
            **common)
    snap = fsdp_tracker_peaks(config, local_batch=local, worlds=(1, devices), optimizer=optimizer,
                              dtype=dtype, loss=loss, input_kwargs=input_kwargs)
    one, at_n = snap[1], snap[devices]
    # What sharding changes, as the tracker sees it, applied to the single-device trace.
    kernels = single.traced_peak - one["total"]
    # CPU: glibc's heap at the thresholds zoo.shard fixes; CUDA: the caching allocator's reserved
    # slack of the single-device step at the per-device batch (an approximation: FSDP's own
    # buffers are not replayed through it)
    allocator = fsdp_cpu_allocator(config, local_batch=local, optimizer=optimizer, dtype=dtype,
                                   loss=loss, input_kwargs=input_kwargs) if device == "cpu" \
        else single.allocator
    # This rank's model states, whole (the tracker's peak may hold part of the gradients only):
    # the sharded parameters, a gradient of each, and the optimizer's k tensors per gradient.
    sharded = at_n["sharded_param"]
    grads = sharded    # every zoo parameter trains
    return DistributedMemoryEstimate(
        params=sharded + at_n["buffer"], gradients=grads,
        optimizer_state=OPTIMIZERS[optimizer][2] * grads, buckets=0,
        unsharded=at_n["unsharded_param"] + at_n["unsharded_grad"],
        comm_buffers=at_n["all_gather"] + at_n["reduce_scatter"],
        transient=max(0, at_n["temp"] + at_n["inp"] + kernels),
        allocator=allocator,
        total=max(at_n["total"] + kernels, sharded + at_n["buffer"]) + allocator
        + single.framework + gloo + context,
        method="FSDPMemTracker on a fake process group + single-device kernels + fixed-threshold heap",
        **common)


def fsdp_unit_bytes(config: dict, dtype: str = "float32") -> list[int]:
    """Unsharded parameter bytes of each FSDP unit (the family's units, then the root's rest)."""
    from zoo.sharding import wrap_units
    model = zoo.from_config(config, device="meta")
    size = torch.tensor([], dtype=validation.dtype("dtype", dtype)).element_size()
    units = wrap_units(model)
    claimed = {id(p) for u in units for p in u.parameters()}
    out = [sum(p.numel() for p in u.parameters()) * size for u in units]
    out.append(sum(p.numel() for p in model.parameters() if id(p) not in claimed) * size)
    return [b for b in out if b]


def fsdp_cpu_allocator(config: dict, *, local_batch: int, optimizer: str = "adam",
                       dtype: str = "float32", loss: str = "cross_entropy",
                       input_kwargs: dict | None = None) -> int:
    """CPU only: glibc's heap under FSDP2 with the threshold :func:`zoo.shard` fixes -- the
    single-device step's slack at those thresholds plus :data:`FSDP_CPU_UNIT_FACTOR` times the
    wrap units' bytes (see the module doc)."""
    slack = cpu_allocator_fixed_threshold(config, batch_size=local_batch, threshold=CPU_MMAP_THRESHOLD,
                                          optimizer=optimizer, dtype=dtype, loss=loss,
                                          input_kwargs=input_kwargs)
    return slack + int(FSDP_CPU_UNIT_FACTOR * sum(fsdp_unit_bytes(config, dtype)))


_KEYS = {"Sharded Param": "sharded_param", "Unsharded Param": "unsharded_param",
         "Buffer": "buffer", "Sharded Grad": "sharded_grad", "Unsharded Grad": "unsharded_grad",
         "Activation": "act", "Temp": "temp", "All Gather": "all_gather",
         "Reduce Scatter": "reduce_scatter", "OptState": "opt", "Inputs": "inp", "Total": "total"}
_TRACKER_CACHE: dict[str, dict] = {}


def fsdp_tracker_peaks(config: dict, *, local_batch: int, worlds, optimizer: str = "adam",
                       dtype: str = "float32", loss: str = "cross_entropy",
                       input_kwargs: dict | None = None) -> dict[int, dict[str, int]]:
    """Per world size N in ``worlds``: FSDPMemTracker's breakdown at the peak of a steady-state
    FSDP2 step at ``local_batch`` (keys of :data:`_KEYS`' values), on fake tensors and a fake
    process group, traced in a fresh subprocess (see the comment inside), cached per request."""
    validation.positive_int("local_batch", local_batch)
    worlds = [validation.positive_int("devices", n) for n in worlds]
    req = dict(config=config, local_batch=local_batch, worlds=worlds, optimizer=optimizer,
               dtype=str(dtype).replace("torch.", ""), loss=loss, input_kwargs=input_kwargs)
    key = json.dumps(req, sort_keys=True, default=str)
    if key not in _TRACKER_CACHE:
        # Always a fresh process: FSDPMemTracker's figures for a config depend on whether this
        # process traced the same config before (the optimizer state at the peak read 6x the
        # sharded parameters on a config's first trace and 4x on a second, for an MLP), and the
        # per-rank peaks of zoo-bench distributed were matched by first traces.
        proc = subprocess.run([sys.executable, "-m", "zoo.factory.distributed_memory",
                               json.dumps(req)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"FSDP memory trace failed: {proc.stderr[-2000:]}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        _TRACKER_CACHE[key] = {int(k): v for k, v in got.items()}
    return dict(_TRACKER_CACHE[key])


def _trace_worlds(*, config, local_batch, worlds, optimizer, dtype, loss, input_kwargs) -> dict:
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from zoo.factory.counts import materialise
    from zoo.factory.train_step import make_inputs, make_loss, make_optimizer
    from zoo.sharding import shard

    dt = validation.dtype("dtype", dtype)
    out = {}
    for n in worlds:
        dist.init_process_group("fake", rank=0, world_size=n, store=FakeStore())
        try:
            mesh = init_device_mesh("cpu", (n,))
            with FakeTensorMode(allow_non_fake_inputs=True):
                model = materialise(zoo.from_config(config, device="meta", dtype=dt)).train()
                shard(model, mesh)
                opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
                tracker = FSDPMemTracker(mod=model, optm=opt)
                with tracker:
                    for step in range(2):     # the second step has the optimizer state
                        inputs = make_inputs(model, local_batch, input_kwargs)
                        value = make_loss(model(*inputs), loss)
                        del inputs
                        value.backward()
                        del value
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                        if step == 0:
                            tracker.reset_mod_stats()
                peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
            out[n] = {_KEYS[getattr(k, "value", k)]: int(v) for k, v in peak.items()
                      if getattr(k, "value", k) in _KEYS}
        finally:
            dist.destroy_process_group()
    return out


def devices_needed(config: dict, *, batch_size: int, vram_gb: float, strategy: str = "fsdp",
                   candidates=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), **kw) -> int | None:
    """The fewest devices among ``candidates`` whose per-device estimate fits ``vram_gb`` (GB,
    1e9 bytes), or None: what a ``BudgetError`` can suggest."""
    limit = validation.positive_number("vram_gb", vram_gb) * 1e9
    for n in candidates:
        if estimate_per_device_memory(config, batch_size=batch_size, devices=n, strategy=strategy,
                                      **kw).total <= limit:
            return n
    return None


if __name__ == "__main__":   # the subprocess of fsdp_tracker_peaks
    print(json.dumps(_trace_worlds(**json.loads(sys.argv[1]))))
