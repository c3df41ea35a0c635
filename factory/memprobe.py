"""Measure real training memory in this (fresh) process: ``python -m zoo.factory.memprobe '<json>'``.

The independent check of :func:`zoo.factory.estimators.estimate_training_memory`: it runs real steps
on real tensors and reads the kernel's account of the process, never the estimator's tracing.
Prints one JSON line (a :class:`zoo.factory.estimators.MeasuredMemory`).

CPU: after the model and optimizer are built, ``/proc/self/clear_refs`` ("5") resets the peak
resident set ``VmHWM`` to the current ``VmRSS``; after the steps, the growth of ``VmHWM`` plus the
bytes of weights held before is the step's peak training memory.
"""
from __future__ import annotations

import json
import sys


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def main(argv: list[str]) -> int:
    import torch

    import zoo
    from zoo.factory.estimators import make_inputs, make_loss, make_optimizer, torch_dtype, weight_bytes

    req = json.loads(argv[0])
    device, steps = req["device"], int(req["steps"])
    dtype = torch_dtype(req["dtype"])
    torch.manual_seed(0)
    model = zoo.from_config(req["config"], device=device, dtype=dtype).train()
    opt = make_optimizer(req["optimizer"], [p for p in model.parameters() if p.requires_grad])
    weights = weight_bytes(model, dtype)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current VmRSS
            fh.write("5")
        before = _status("VmRSS")
    for _ in range(steps):
        inputs = make_inputs(model, req["batch_size"], req["input_kwargs"])
        loss = make_loss(model(*inputs), req["loss"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del inputs, loss
    if device == "cuda":
        torch.cuda.synchronize()
        after = torch.cuda.max_memory_allocated()
        peak = after - before + weights
    else:
        after = _status("VmHWM")
        peak = after - before + weights
    print(json.dumps({"peak": peak, "weights": weights, "rss_before": before, "hwm_after": after,
                      "steps": steps, "device": device}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
