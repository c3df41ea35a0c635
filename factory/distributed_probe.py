"""Real data-parallel steps, one process per rank: ``torchrun --nproc_per_node N -m
zoo.factory.distributed_probe '<json>'`` (or plain ``python -m`` for one process).

The independent check of :mod:`zoo.factory.distributed_memory` and of :mod:`zoo.distributed`. The
request says ``mode``:

* ``"memory"``: ``config`` trained for ``steps`` steps at ``batch_size`` (global) under
  ``strategy`` on the Gloo backend; each rank measures its own peak as
  :mod:`zoo.factory.memprobe` does (``/proc/self/clear_refs`` resets ``VmHWM`` to ``VmRSS``; the
  peak is the growth of ``VmHWM`` plus the bytes of tensors held at the reset). DDP: the reset is
  before the wrap, so its gradient buckets are inside the growth; FSDP: after the sharding, the
  held bytes are this rank's shards and buffers.
* ``"train"``: ``steps`` Adam steps of the seeded model on a seeded data set drawn from its
  ``example_inputs``, batches from :func:`zoo.distributed.sampler`; records the global mean loss
  of each step (:func:`zoo.distributed.all_reduce_mean`) and, with ``save``, writes the weights
  once from rank 0 (:func:`zoo.distributed.save_rank0`).

Rank 0 prints one JSON line: ``{"world": N, "ranks": [per-rank dicts], "losses": [...]}``.
"""
from __future__ import annotations

import gc
import json
import os
import sys

from zoo.factory.memprobe import _status


def _held_bytes(model) -> int:
    """Bytes of the distinct storages of ``model``'s parameters (local shards) and buffers."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        local = t.to_local() if hasattr(t, "to_local") else t
        s = local.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()
    return total




def _graph_batch(graphs, indices):
    """Disjoint union of the graphs ``indices`` (PyG's batching): node ids offset per graph."""
    import torch
    xs, eis, ys, offset = [], [], [], 0
    for i in indices:
        x, ei, y = graphs[i]
        xs.append(x)
        eis.append(ei + offset)
        ys.append(y)
        offset += x.shape[0]
    return (torch.cat(xs), torch.cat(eis, dim=1)), torch.cat(ys)


def train(req: dict) -> dict:
    import torch
    import torch.nn.functional as F

    import zoo
    from zoo import distributed as zd

    world, seed, steps = zd.world_size(), int(req.get("seed", 0)), int(req["steps"])
    batch = int(req["batch_size"])
    local = batch // world
    torch.manual_seed(seed)
    model = zoo.from_config(req["config"]).train()
    classes = int(req["config"].get("num_classes", 2))
    gen = torch.Generator().manual_seed(seed + 1)
    n = batch * steps
    graph = zoo.get_entry(req["config"]["name"]).input_kind == "graph"
    torch.manual_seed(seed + 2)
    if graph:
        graphs = []
        for _ in range(n):
            x, ei = model.example_inputs(1)
            graphs.append((x, ei, torch.randint(0, classes, (x.shape[0],), generator=gen)))
        data = graphs
    else:
        (xs,) = model.example_inputs(n)
        ys = torch.randint(0, classes, (n,), generator=gen)
        data = list(range(n))
    model = zd.wrap(model, req["strategy"])
    opt = torch.optim.Adam(model.parameters(), lr=float(req.get("lr", 1e-3)))
    order = list(zd.sampler(data, seed))
    losses = []
    for s in range(steps):
        idx = order[s * local:(s + 1) * local]
        if graph:
            inputs, y = _graph_batch(data, idx)
        else:
            inputs, y = (xs[idx],), ys[idx]
        loss = F.cross_entropy(model(*inputs), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(zd.all_reduce_mean(loss.detach()).item())
    if req.get("save"):
        zd.save_rank0(model, req["save"])
    return {"losses": losses}


def memory(req: dict) -> dict:
    import torch

    import zoo
    from zoo import distributed as zd
    from zoo.factory.train_step import make_inputs, make_loss, make_optimizer

    world, steps = zd.world_size(), int(req["steps"])
    local = -(-int(req["batch_size"]) // world)   # ceil(B / N), as the estimator (at least 1)
    torch.manual_seed(0)
    model = zoo.from_config(req["config"]).train()
    if req["strategy"] == "fsdp":
        # glibc_dynamic: leave glibc's mmap threshold dynamic (zoo-bench distributed
        # --glibc-dynamic: what FSDP2 holds without zoo.shard's fix)
        model = zd.wrap(model, "fsdp", fix_mmap_threshold=not req.get("glibc_dynamic", False))
    gc.collect()
    # The optimizer before the reset, as memprobe (its first construction imports torch._dynamo).
    opt = make_optimizer(req.get("optimizer", "adam"), list(model.parameters()))
    held = _held_bytes(model)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status("VmRSS")
    if req["strategy"] == "ddp":
        model = zd.wrap(model, "ddp")
    inner = zd.unwrap(model)
    for _ in range(steps):
        inputs = make_inputs(inner, local, req.get("input_kwargs"))
        loss = make_loss(model(*inputs), req.get("loss", "cross_entropy"))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del inputs, loss
    after = _status("VmHWM")
    return {"rank": zd.rank(), "peak": after - before + held, "held": held, "rss_before": before,
            "hwm_after": after}


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for torchrun's rendezvous; nothing leaves the machine)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(request: dict, nproc: int = 1, timeout: float = 300.0) -> dict:
    """Run this probe on ``nproc`` fresh processes (``python -m torch.distributed.run`` on
    127.0.0.1; plain python for one) and return rank 0's JSON (``world``, ``ranks``, ``losses``).

    Each process runs one intra-op thread (``OMP_NUM_THREADS=1``), as torchrun sets by default.
    """
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    probe = ["-m", "zoo.factory.distributed_probe", json.dumps(request)]
    if nproc == 1:
        cmd = [sys.executable, *probe]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}", *probe]
    for attempt in (1, 2):
        # One retry, on a fresh port: on a loaded machine a rendezvous port can be taken between
        # free_port() and torchrun binding it, and the run then fails before any step.
        if attempt == 2 and nproc > 1:
            cmd[5] = f"--master_port={free_port()}"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    raise RuntimeError(f"distributed probe failed twice (exit {proc.returncode}): "
                       f"{proc.stderr[:1500]} ... {proc.stderr[-1500:]}")


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    from zoo import distributed as zd

    req = json.loads(argv[0])
    zd.setup("gloo")
    result = (train if req["mode"] == "train" else memory)(req)
    ranks = [None] * zd.world_size()
    if zd.is_initialized():
        dist.all_gather_object(ranks, result)
    else:
        ranks = [result]
    if zd.is_rank0():
        out = {"world": zd.world_size(), "ranks": ranks}
        if "losses" in result:
            out["losses"] = result["losses"]
        print(json.dumps(out), flush=True)
    if zd.is_initialized():
        # Leave without destroying the Gloo group: when one rank's destruction closes its sockets
        # while another's Gloo thread still reads them, that thread throws and the process aborts
        # ("terminate called without an active exception"), failing a finished run. The barrier
        # makes every rank done with its collectives; the kernel closes the sockets at exit.
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
