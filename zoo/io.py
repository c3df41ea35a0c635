"""Save and load models as safetensors with their config (and spec, if any) in the metadata.

File layout: the model's ``state_dict`` tensors, plus string metadata
``{"zoo.format": "1", "zoo.config": <json config>, "zoo.spec": <json spec, optional>}``.
Loading refuses unknown format versions, rebuilds the architecture from the config on the meta
device (bounded by the number of tensors the file holds, so a small file cannot make it build a huge
model), checks every tensor name, shape and dtype against it, and only then loads: a mismatched or
corrupt file raises :class:`ModelFileError` naming the file, and no model is half-loaded.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
import safetensors.torch

from . import validation
from .atomic import atomic_path
from .errors import ModelFileError
from .registry import from_config

FORMAT_VERSION = "1"
# Format versions this zoo reads; a file of any other version is refused, not guessed at.
KNOWN_FORMATS = ("1",)


def spec_to_json(model: nn.Module) -> str | None:
    """The model's spec as JSON, if it carries one (``model.spec`` with ``to_dict()`` or a dict)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return None
    return json.dumps(spec.to_dict() if hasattr(spec, "to_dict") else spec)


def model_metadata(model: nn.Module) -> dict[str, str]:
    """String metadata recorded in saved and exported files: format, config and spec."""
    meta = {"zoo.format": FORMAT_VERSION, "zoo.config": json.dumps(model.config)}
    spec = spec_to_json(model)
    if spec is not None:
        meta["zoo.spec"] = spec
    return meta


# safetensors' dtype names -> torch dtypes (those a zoo model's state can hold).
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
           "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def save_file(tensors: dict[str, torch.Tensor], filename: str | os.PathLike,
              metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (contiguous, CPU) to exactly ``filename`` in the safetensors format.

    Why not ``safetensors.torch.save_file``: since safetensors 0.8 it writes a ``.tmpXXXXXX`` file
    beside the given name and renames it, so a writer killed mid-write leaves a file named after
    nothing (issue 7). Format: 8-byte little-endian header length ``n``; ``n`` bytes of JSON
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`` padded with
    spaces to a multiple of 8; then each tensor's bytes, contiguous from offset 0, largest element
    size first (so every tensor is aligned). Tensors are streamed one at a time: no second copy of
    the weights in memory. Big-endian machines and dtypes outside the table fall back to
    ``safetensors.torch.save`` (one in-memory copy).
    """
    names = {d: n for n, d in _DTYPES.items()}
    if sys.byteorder != "little" or any(t.dtype not in names for t in tensors.values()):
        Path(filename).write_bytes(safetensors.torch.save(tensors, metadata=metadata))
        return
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for k in order:
        t = tensors[k]
        nbytes = t.numel() * t.element_size()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape),
                     "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(filename, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        for k in order:
            t = tensors[k].detach().to("cpu").contiguous()
            if t.numel():
                fh.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and config to ``path`` (safetensors), atomically."""
    if not hasattr(model, "config"):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a model built by "
                         f"zoo.create() or zoo.build() (it has no config)")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    for k, v in state.items():
        if v.device.type == "meta" or v.is_meta:
            raise ValueError(f"model is on the meta device: tensor {k!r} has no data to save")
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=model_metadata(model))
    return Path(path)


def _check_path(path) -> str:
    """``path`` as a ``str`` (a str or ``os.PathLike`` of a str); anything else is a ``ValueError``."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path or "\0" in path:
        shown = repr(path) if len(repr(path)) <= 80 else repr(path)[:77] + "..."
        raise ValueError(f"path={shown} is not accepted: expected a file path (a non-empty str or "
                         f"os.PathLike without NUL characters)")
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a zoo safetensors file; raises :class:`ModelFileError` if unreadable."""
    path = _check_path(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file" + (" (it is a folder)" if os.path.isdir(path)
                                                         else ""))
    try:
        with safe_open(path, framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt headers
        raise ModelFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    if "zoo.config" not in meta:
        raise ModelFileError(f"{path}: safetensors file has no 'zoo.config' metadata; "
                             f"it was not written by zoo.save()")
    return meta


def _json_object(path: str, meta: dict[str, str], key: str) -> dict:
    """The metadata entry ``key`` decoded; it must be a JSON object."""
    try:
        value = json.loads(meta[key])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: metadata {key!r} is not accepted: expected a JSON object, "
                             f"got {type(value).__name__}")
    return value


def _header(path: str) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor in the file, from its header alone (no data read)."""
    header = {}
    try:
        with safe_open(path, framework="pt") as fh:
            for k in fh.keys():
                sl = fh.get_slice(k)
                header[k] = (tuple(int(d) for d in sl.get_shape()), sl.get_dtype())
    except Exception as exc:
        raise ModelFileError(f"{path}: tensor header is corrupt ({exc})") from exc
    for k, (shape, name) in header.items():
        if name not in _DTYPES:
            raise ModelFileError(f"{path}: tensor {k!r} has dtype {name}, which no zoo model holds "
                                 f"(accepted: {', '.join(_DTYPES)})")
        header[k] = (shape, _DTYPES[name])
    return header


class _TooLarge(Exception):
    """Raised inside a bounded build when the config describes more than the file holds."""


# Every registered model registers exactly one parameter or buffer per state_dict entry and at most
# two modules per entry (measured over all families at depth_mult 0.34-2, torch 2.14). The bounds
# leave 2x/4x room for builders that replace layers, plus a constant for tiny models.
_TENSOR_SLACK, _MODULE_SLACK, _CONSTANT_SLACK = 2, 4, 256


def _bounded_meta_build(path: str, config: dict, n_tensors: int, dtype) -> nn.Module:
    """Build ``config`` on the meta device, aborting once it outgrows a file of ``n_tensors`` tensors.

    The rule: a model whose ``state_dict`` has ``n`` entries registers about ``n`` parameters and
    buffers and at most ``2n`` modules while it is built. A build that registers more than
    ``2 n_tensors + 256`` parameters/buffers or ``4 n_tensors + 256`` modules cannot match the file,
    so it is stopped there: the work done for a file is bounded by the number of tensors the file
    holds, whatever its config claims (a 1 KB file saying ``depth_mult: 1e5`` stops after a few
    hundred registrations instead of building millions of layers). Counting uses torch's global
    registration hooks, limited to the calling thread.
    """
    import threading

    from torch.nn.modules import module as torch_module

    me = threading.get_ident()
    limits = {"tensors": _TENSOR_SLACK * n_tensors + _CONSTANT_SLACK,
              "modules": _MODULE_SLACK * n_tensors + _CONSTANT_SLACK}
    counts = {"tensors": 0, "modules": 0}

    def counter(kind):
        def hook(*_):
            if threading.get_ident() == me:
                counts[kind] += 1
                if counts[kind] > limits[kind]:
                    raise _TooLarge(kind)
        return hook

    handles = [torch_module.register_module_parameter_registration_hook(counter("tensors")),
               torch_module.register_module_buffer_registration_hook(counter("tensors")),
               torch_module.register_module_module_registration_hook(counter("modules"))]
    try:
        return from_config(config, device="meta", dtype=dtype)
    except _TooLarge as exc:
        raise ModelFileError(
            f"{path}: its config describes a larger model than the file holds: building it "
            f"registered more than {limits[str(exc)]} {exc} while the file has {n_tensors} "
            f"tensor(s) (config {_short(config)})") from None
    except Exception as exc:  # a builder's own errors (ValueError, torch's RuntimeError, ...)
        raise ModelFileError(f"{path}: its config cannot be built ({type(exc).__name__}: {exc}) "
                             f"(config {_short(config)})") from exc
    finally:
        for h in handles:
            h.remove()


def _short(obj) -> str:
    text = json.dumps(obj, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights strictly.

    Checks, cheapest first, each failure a :class:`ModelFileError` (a ``ValueError``) naming the
    file: the safetensors header is readable; ``zoo.format`` is a known version
    (:data:`KNOWN_FORMATS`); ``zoo.config`` and ``zoo.spec`` are JSON objects; the config builds on
    the meta device within the bounds the file's tensor count sets (see
    :func:`_bounded_meta_build`); every tensor name, shape and dtype in the header matches that
    model. Only then is tensor data read and a real model built, so no model is half-loaded.
    A bad ``path`` type or ``device`` is a plain ``ValueError`` naming the argument.
    """
    path = _check_path(path)
    device = validation.device("device", device) or torch.device("cpu")
    meta = read_metadata(path)
    version = meta.get("zoo.format")
    if version not in KNOWN_FORMATS:
        raise ModelFileError(f"{path}: zoo.format={version!r} is not a known format version "
                             f"(known: {', '.join(KNOWN_FORMATS)}); it was written by another "
                             f"version of zoo or not by zoo.save()")
    config = _json_object(path, meta, "zoo.config")
    if not isinstance(config.get("name"), str):
        raise ModelFileError(f"{path}: metadata 'zoo.config' has no model name (a 'name' string)")
    spec = _json_object(path, meta, "zoo.spec") if "zoo.spec" in meta else None
    header = _header(path)
    # The weights' floating dtype is the model's dtype (configs say what a model is, not where).
    dtype = next((d for _, d in header.values() if d.is_floating_point), None)
    model = _bounded_meta_build(path, config, len(header), dtype)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    del model
    _compare(path, config, expected, header)
    try:
        tensors = {}
        with safe_open(path, framework="pt", device=str(device)) as fh:
            for k in fh.keys():
                tensors[k] = fh.get_tensor(k)
    except Exception as exc:
        raise ModelFileError(f"{path}: tensor data is truncated or corrupt ({exc})") from exc
    model = from_config(config, device=device, dtype=dtype)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    if spec is not None:
        model.spec = spec
    return model


def _compare(path: str, config: dict, expected: dict, header: dict) -> None:
    """Raise :class:`ModelFileError` unless the file's tensors are exactly the model's state."""
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    wrong = [f"{k}: file {header[k][0]}/{header[k][1]}, config {s}/{d}"
             for k, (s, d) in expected.items() if k in header and header[k] != (s, d)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[:3]}")
        if wrong:
            parts.append(f"{len(wrong)} shape/dtype mismatch(es) e.g. {wrong[:3]}")
        raise ModelFileError(f"{path}: weights do not match the config {_short(config)}: "
                             + "; ".join(parts))
