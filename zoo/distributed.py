"""Data-parallel training helpers: the whole multi-process part of a training loop.

Under ``torchrun --nproc_per_node N``, every process runs the same script; these helpers make it
data-parallel with PyTorch's own engine (``torch.distributed``)::

    rank, world = zoo.distributed.setup()              # process group from torchrun's env
    model = zoo.distributed.wrap(model, "fsdp")        # or "ddp"
    sampler = zoo.distributed.sampler(dataset, seed)   # this rank's 1/N of a seeded shuffle
    loader = DataLoader(dataset, batch_size=global_batch // world, sampler=sampler)
    ...  loss.backward(); opt.step()                   # gradients averaged over the ranks
    zoo.distributed.all_reduce_mean(loss.detach())     # the global batch's mean loss
    zoo.distributed.save_rank0(model, "best.safetensors")   # full weights, written once
    zoo.distributed.teardown()

The arithmetic that makes N processes at batch B/N equal one process at batch B: with a mean
loss ``L = (1/B) sum_i l_i``, rank r computes ``L_r = (N/B) sum_{i in r} l_i``; DDP all-reduces
and FSDP reduce-scatters the gradients with an average, ``(1/N) sum_r grad L_r = grad L``, and
``all_reduce_mean`` of the ``L_r`` is ``L``. The sampler gives rank r the indices
``perm[r::N]`` of one seeded permutation (``DistributedSampler``), so consecutive per-rank batches
of B/N together hold exactly the samples of the single process's batch (up to order). Batch
statistics (BatchNorm) are per rank, so models with batch norm do not match exactly.

Without a process group (a plain ``python`` run) everything degrades to one process: rank 0 of 1,
``wrap`` returns the model, ``all_reduce_mean`` returns its input.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from . import validation

STRATEGIES = ("ddp", "fsdp")
CPU_MMAP_THRESHOLD = 1 << 20
"""glibc's mmap threshold :func:`zoo.shard` fixes on CPU (bytes): see :func:`fix_cpu_mmap_threshold`."""
_OWNED = {"group": False}   # whether setup() created the process group (teardown destroys it)


def is_initialized() -> bool:
    """Whether a default process group exists."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_rank0() -> bool:
    """True on rank 0, or in a single process: the one that logs, shows progress and saves."""
    return rank() == 0


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its ``WORLD_SIZE``/``RANK`` are set)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(backend: str | None = None) -> tuple[int, int]:
    """Initialise the default process group from torchrun's environment; returns ``(rank, world)``.

    ``backend``: ``"gloo"`` (CPU) or ``"nccl"`` (CUDA); None picks NCCL when CUDA is available,
    else Gloo. On CUDA the process takes the device ``LOCAL_RANK``. Not launched by torchrun (no
    ``WORLD_SIZE``): nothing is initialised and ``(0, 1)`` is returned. Already initialised: the
    existing group is used.
    """
    if backend is not None:
        validation.choice("backend", backend, ("gloo", "nccl"))
    if is_initialized():
        return rank(), world_size()
    if not launched():
        return 0, 1
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    _OWNED["group"] = True
    return rank(), world_size()


def teardown() -> None:
    """End the process group if :func:`setup` (or ``zoo.fit``) created it: a barrier (every rank
    is done with its collectives), then NCCL's group is destroyed. Gloo's is left to the process's
    exit: destroying it can close a rank's sockets while another rank's Gloo thread still reads
    them, and that process then aborts ("terminate called without an active exception") after a
    finished run; at exit the kernel closes the sockets instead."""
    if _OWNED["group"] and is_initialized():
        dist.barrier()
        if dist.get_backend() != "gloo":
            dist.destroy_process_group()
    _OWNED["group"] = False


def wrap(model: nn.Module, strategy: str = "ddp", *, reshard_after_forward: bool = True,
         fix_mmap_threshold: bool = True) -> nn.Module:
    """``model`` made data-parallel: ``"ddp"`` (a full replica per rank, gradients all-reduced in
    25 MiB buckets) or ``"fsdp"`` (FSDP2 over the family's units, :func:`zoo.shard`, which takes
    ``reshard_after_forward`` and ``fix_mmap_threshold``).

    Call after the model is on its device and before the optimizer is built (FSDP replaces the
    parameters by their shards). One process without a group: the model is returned as is.
    """
    strategy = validation.choice("strategy", strategy, STRATEGIES)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module")
    if not is_initialized():
        return model
    if strategy == "fsdp":   # rank 0's weights everywhere first (DDP does this itself)
        from .sharding import shard
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(t.data, src=0)
        return shard(model, reshard_after_forward=reshard_after_forward,
                     fix_mmap_threshold=fix_mmap_threshold)
    from torch.nn.parallel import DistributedDataParallel as DDP
    device = next(model.parameters()).device
    ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def fix_cpu_mmap_threshold(threshold: int = CPU_MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes and its trim threshold at twice that, for
    this process; True where it took effect (Linux with glibc), False elsewhere (nothing changed).

    FSDP2 allocates full-size buffers in every step (all-gathered parameters, unsharded gradients,
    reduce-scatter inputs). glibc's thresholds are dynamic: freeing a first mmapped buffer raises
    the mmap threshold to that buffer's size (up to 32 MiB), so every later unit-sized buffer comes
    from a heap -- several from the Gloo threads' own arenas -- and stays resident when freed.
    Measured on Gloo (an MLP of three 3-4 MiB units, global batch 256, three runs each): its ranks
    held 77-97 MiB on 2 ranks and 64-86 MiB on 4 (``zoo-bench distributed --glibc-dynamic``),
    against 42-46 and 32-35 MiB with the threshold fixed at 1 MiB (``zoo-bench distributed``),
    where buffers over 1 MiB go back to the kernel when freed. ``mallopt`` is glibc's
    documented control (``MALLOC_MMAP_THRESHOLD_`` sets the same at start); setting either
    threshold turns the dynamic adjustment off. The estimate models this heap
    (:func:`zoo.factory.distributed_memory.estimate_per_device_memory`).
    """
    import ctypes
    import ctypes.util

    threshold = validation.positive_int("threshold", threshold)
    if threshold > 32 * 1024 ** 2:  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
        raise ValueError(f"threshold={threshold} is not accepted: expected at most 32 MiB "
                         f"({32 * 1024 ** 2} bytes), glibc's largest mmap threshold")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl and macOS have no such symbol
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold))
                and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2 * threshold)))


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (an FSDP2 model is its own module)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    return model.module if isinstance(model, DDP) else model


def sampler(dataset, seed: int = 0, *, shuffle: bool = True, drop_last: bool = False):
    """This rank's share of ``dataset``: ``torch.utils.data.DistributedSampler`` over the world.

    Epoch ``e`` shuffles with ``torch.Generator().manual_seed(seed + e)`` (call
    ``sampler.set_epoch(e)`` each epoch) and rank r takes ``perm[r::N]``; one process takes the
    whole permutation, so a single-process run at the global batch sees the same samples per step.
    Without ``drop_last`` the permutation is padded by repeating its start to a multiple of N.
    """
    from torch.utils.data import DistributedSampler

    seed = validation.seed("seed", seed)
    shuffle = validation.boolean("shuffle", shuffle)
    drop_last = validation.boolean("drop_last", drop_last)
    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle,
                              seed=seed, drop_last=drop_last)


def all_reduce_mean(value, weight: float = 1.0):
    """The weighted mean over ranks, ``sum_r w_r v_r / sum_r w_r`` (every rank gets it).

    ``value``: a number or a tensor (returned as the same kind; a tensor keeps its shape).
    ``weight``: this rank's weight, e.g. its number of samples when shares differ. One process:
    ``value`` itself.
    """
    weight = validation.number("weight", weight, minimum=0.0)
    if not is_initialized():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    device = _comm_device()
    t = value.detach().to(device=device, dtype=torch.float64) if is_tensor else \
        torch.tensor(float(validation.number("value", value)), dtype=torch.float64, device=device)
    packed = torch.cat([(t * weight).reshape(-1), torch.tensor([weight], dtype=torch.float64,
                                                                device=device)])
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    total = packed[-1].item()
    mean = packed[:-1].reshape(t.shape) / (total if total > 0 else 1.0)
    if is_tensor:
        return mean.to(device=value.device, dtype=value.dtype if value.is_floating_point()
                       else torch.float64)
    return float(mean.item())


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The complete, unsharded ``state_dict`` on CPU on rank 0 (an empty dict on other ranks).

    FSDP: every rank takes part in the all-gathers (call it on all ranks); the full tensors are
    materialised on rank 0 only (``torch.distributed.checkpoint.state_dict`` with
    ``full_state_dict=True, cpu_offload=True``). DDP or one process: the replica's own tensors.
    Keys are the bare model's (no ``module.`` prefix).
    """
    inner = unwrap(model)
    if is_initialized() and _is_fsdp(inner):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(inner, options=opts)
        return state if is_rank0() else {}
    if not is_rank0():
        return {}
    return {k: v.detach().to("cpu") for k, v in inner.state_dict().items()}


def _is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule
    return isinstance(model, FSDPModule)


def save_rank0(model: nn.Module, path: str | os.PathLike) -> Path | None:
    """Gather the full weights and write them once, from rank 0, with :func:`zoo.save`.

    The file is the single-device format (safetensors with the model's config and spec): a plain
    ``zoo.load(path)`` reads it on one device. Call on every rank (FSDP gathers collectively);
    returns the path on rank 0 and None elsewhere, after all ranks have passed a barrier (so no
    rank reads a file that is still being written).
    """
    from .io import save
    from .registry import from_config

    inner = unwrap(model)
    state = full_state_dict(model)
    out = None
    if is_rank0():
        clone = from_config(inner.config, device="meta")   # no second set of initialised weights
        clone.load_state_dict(state, strict=True, assign=True)
        if getattr(inner, "spec", None) is not None:
            clone.spec = inner.spec
        out = save(clone, path)
    if is_initialized():
        dist.barrier()
    return out


def progress_enabled(progress: bool = True) -> bool:
    """Whether this process shows a progress bar: only rank 0 does (and only if asked)."""
    return validation.boolean("progress", progress) and is_rank0()
