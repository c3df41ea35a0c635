"""The CPU framework constants, measured once per machine and cached.

What a CPU training step holds beyond its tensors and glibc's slack is mostly the code the step
pages in (libtorch's, oneDNN's JIT-compiled convolutions, MKL's GEMMs): file-backed pages, whose
count depends on the kernel's page-cache and fault-around settings as much as on torch. Two VMs
with the same CPU model and torch measured the same tiny steps at 20 and 9.6 MiB (a 650-parameter
linear model) and 55 and 37 MiB (ResNet-18 x0.25 at 32 px): no one constant fits both within
15 %. So the constants are measured on the machine that uses them:

* ``base``: the resident growth of a linear model's training step whose tensors are negligible
  (in_features 64, 10 classes, batch 8), less its traced tensors and heap;
* ``convolution``: the same for ResNet-18 x0.25 at 32 px, batch 2, less ``base`` -- what the
  first convolutions add (oneDNN's kernels and their reorder buffers).

Each is :func:`zoo.factory.memprobe.measure_training_memory` in a fresh process (the two run at
once, about 3 s), the same measurement ``zoo-bench memory`` checks the estimator against. The
result is kept under the user's cache directory (:func:`zoo.factory.user_cache.cache_dir`,
``machine/framework-*.json``), keyed by :func:`machine_key`: CPU model, kernel release, torch,
Python and :data:`CALIBRATION_VERSION`; in a process it is read once. Where the probe cannot run
(no ``/proc``, a failed subprocess) the defaults measured on the project's first machine are used
for the rest of the process and nothing is written.
"""
from __future__ import annotations

import contextlib
import functools
import json
import platform
import subprocess
from concurrent.futures import ThreadPoolExecutor

from zoo.atomic import write_text_atomic

from .timing import cpu_name
from .train_step import MiB
from .user_cache import keyed_path

CALIBRATION_VERSION = 1
DEFAULTS = {"base": 20 * MiB, "convolution": 20 * MiB}
"""Measured on the project's first VM (2026-11-28); used only where no measurement can be made."""

PROBES = {
    "base": ({"name": "linear", "in_features": 64, "num_classes": 10}, 8),
    "convolution": ({"name": "resnet18", "width_mult": 0.25, "img_size": 32, "num_classes": 10}, 2),
}

_MEMO: dict[str, dict[str, int]] = {}


@functools.lru_cache(maxsize=1)
def _machine_key_json() -> str:
    import torch

    return json.dumps({"cpu": cpu_name(), "kernel": platform.release(), "torch": torch.__version__,
                       "python": platform.python_version(), "version": CALIBRATION_VERSION},
                      sort_keys=True)


def machine_key() -> dict:
    """What the constants depend on beyond the step: CPU, kernel, torch and Python versions
    (read once per process: every estimate asks)."""
    return json.loads(_machine_key_json())


def _path(key: dict):
    return keyed_path("machine", key, prefix="framework-")


def cpu_framework_constants() -> dict[str, int]:
    """``{"base": bytes, "convolution": bytes}`` for this machine (see the module docstring)."""
    key, memo_key = machine_key(), _machine_key_json()
    path = _path(key)
    if memo_key in _MEMO:
        if _MEMO[memo_key] is not DEFAULTS and not path.exists():
            _store(path, key, _MEMO[memo_key])  # another cache folder since: others read it there
        return _MEMO[memo_key]
    stored = _read(path, key)
    if stored is not None:
        _MEMO[memo_key] = stored
        return stored
    constants = measure()
    if constants is None:   # no probe here: the defaults for this process, nothing written
        _MEMO[memo_key] = DEFAULTS
        return DEFAULTS
    _MEMO[memo_key] = constants
    _store(path, key, constants)
    return constants


def _read(path, key: dict) -> dict[str, int] | None:
    """The stored constants for ``key``, or None: absent, unreadable, another machine's, or not
    one non-negative integer per constant."""
    try:
        entry = json.loads(path.read_text())
        constants = entry["constants"] if entry.get("machine") == key else None
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None
    if not isinstance(constants, dict) or set(constants) != set(DEFAULTS) or not all(
            type(v) is int and v >= 0 for v in constants.values()):
        return None
    return constants


def _store(path, key: dict, constants: dict) -> None:
    with contextlib.suppress(OSError):  # a read-only home: measured again next process
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"machine": key, "constants": constants}))


def measure() -> dict[str, int] | None:
    """Run the two probes in fresh processes; None where they cannot run here."""
    from .memprobe import measure_training_memory
    from .training_memory import cpu_tensor_bytes

    try:
        with ThreadPoolExecutor(max_workers=len(PROBES)) as pool:
            futures = {k: pool.submit(measure_training_memory, cfg, batch_size=bs, timeout=120)
                       for k, (cfg, bs) in PROBES.items()}
            peaks = {k: f.result().peak for k, f in futures.items()}
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError):
        return None
    growth = {k: max(0, peaks[k] - cpu_tensor_bytes(cfg, batch_size=bs)) for k, (cfg, bs) in PROBES.items()}
    return {"base": growth["base"], "convolution": max(0, growth["convolution"] - growth["base"])}
