"""Train a built zoo model on N processes with ``zoo.fit`` (DDP or FSDP2), save it once from rank 0.

    torchrun --nproc_per_node 2 benchmarks/examples/fit_torchrun.py --strategy fsdp --out m.safetensors

Every rank runs this same script: it builds the same seeded model (``zoo.build``; or
``--config JSON`` to skip the search), draws the same seeded data, and calls ``zoo.fit`` with the
GLOBAL batch size; ``zoo.fit`` sees torchrun's ``WORLD_SIZE``, starts the process group (Gloo on
CPU, NCCL on CUDA), trains data-parallel and writes the best weights once, from rank 0, to
``--out`` (``zoo.load(out)`` reads them on one device). Rank 0 prints one JSON line: the world
size and each epoch's train loss (already averaged over the ranks). A plain ``python`` run of the
same command trains in one process: the same losses up to float rounding (no batch norm).
"""
from __future__ import annotations

import argparse
import json

import torch

import zoo
from zoo import distributed as zd


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="ddp", choices=zd.STRATEGIES)
    ap.add_argument("--out", default=None, help="where rank 0 writes the best weights")
    ap.add_argument("--config", default=None, help="a model config (JSON) instead of zoo.build")
    ap.add_argument("--samples", type=int, default=64, help="training samples")
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16, help="the global batch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)   # the same initial weights on every rank
    if args.config:
        model = zoo.from_config(json.loads(args.config))
    else:
        model = zoo.build("tabular-classification", args.samples, vram_gb=1.0, latency_ms=None,
                          input_shape=(args.features,), num_classes=args.classes,
                          families=["mlp"], seed=args.seed)
    g = torch.Generator().manual_seed(args.seed + 1)
    X = torch.randn(args.samples, args.features, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    history = zoo.fit(model, (X, y), epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, strategy=args.strategy, save_path=args.out, progress=False)
    if zd.is_rank0():
        print(json.dumps({"world": zd.world_size(), "strategy": args.strategy,
                          "losses": [row["train_loss"] for row in history.epochs]}), flush=True)
    zd.teardown()


if __name__ == "__main__":
    main()
