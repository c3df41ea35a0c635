"""Measure real training memory in this (fresh) process: ``python -m zoo.factory.memprobe '<json>'``.

The independent check of :func:`zoo.factory.training_memory.estimate_training_memory`: it runs real
steps on real tensors and reads the kernel's account of the process, never the estimator's tracing.
:func:`measure_training_memory` starts the fresh process and returns its answer, a
:class:`MeasuredMemory` (the process prints it as one JSON line).

CPU: after the model and optimizer are built, ``/proc/self/clear_refs`` ("5") resets the peak
resident set ``VmHWM`` to the current ``VmRSS``; after the steps, the growth of ``VmHWM`` plus the
bytes of weights held before is the step's peak training memory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass


@dataclass
class MeasuredMemory:
    """Peak training memory measured in a fresh process (bytes); see :func:`measure_training_memory`."""
    peak: int
    weights: int
    rss_before: int
    hwm_after: int
    steps: int
    device: str

    def to_dict(self) -> dict:
        return asdict(self)


def measure_training_memory(config: dict, *, batch_size: int, optimizer: str = "adam",
                            dtype: str = "float32", device: str = "cpu",
                            loss: str = "cross_entropy", input_kwargs: dict | None = None,
                            steps: int = 2, timeout: float = 300.0) -> MeasuredMemory:
    """Train ``config`` for ``steps`` real steps in a fresh Python process and measure its peak.

    CPU: the growth of the process's peak resident set (``VmHWM``, reset through
    ``/proc/self/clear_refs`` after the model is built) over the resident set before the first
    step, plus the weights it held before -- independent of the estimator's tracing. Two steps by
    default, because from the second step on the optimizer's state is resident during the forward.
    CUDA: ``torch.cuda.max_memory_allocated`` over the steps.
    """
    request = dict(config=config, batch_size=batch_size, optimizer=optimizer, dtype=dtype,
                   device=device, loss=loss, input_kwargs=input_kwargs, steps=steps)
    proc = subprocess.run([sys.executable, "-m", "zoo.factory.memprobe", json.dumps(request)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return MeasuredMemory(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def main(argv: list[str]) -> int:
    import torch

    import zoo
    from zoo.factory.counts import weight_bytes
    from zoo.factory.train_step import make_inputs, make_loss, make_optimizer, torch_dtype

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
