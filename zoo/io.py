"""Save and load models as safetensors with their config (and spec, if any) in the metadata.

File layout: the model's ``state_dict`` tensors, plus string metadata
``{"zoo.format": "1", "zoo.config": <json config>, "zoo.spec": <json spec, optional>}``.
Loading rebuilds the architecture from the config, checks every tensor name, shape and dtype
against it, and only then loads — a mismatched or corrupt file raises :class:`ModelFileError`
naming the file, and no model is half-loaded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file

from .atomic import atomic_path
from .errors import ModelFileError
from .registry import from_config

FORMAT_VERSION = "1"


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


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a zoo safetensors file; raises :class:`ModelFileError` if unreadable."""
    path = str(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file")
    try:
        with safe_open(path, framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt headers
        raise ModelFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    if "zoo.config" not in meta:
        raise ModelFileError(f"{path}: safetensors file has no 'zoo.config' metadata; "
                             f"it was not written by zoo.save()")
    return meta


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` and load its weights strictly.

    Raises :class:`ModelFileError` (a ``ValueError``) naming the file when it is truncated,
    corrupt, or its tensors do not match the architecture its config describes.
    """
    meta = read_metadata(path)
    try:
        config = json.loads(meta["zoo.config"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: metadata 'zoo.config' is not valid JSON ({exc})") from exc
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            for k in fh.keys():
                tensors[k] = fh.get_tensor(k)
    except Exception as exc:
        raise ModelFileError(f"{path}: tensor data is truncated or corrupt ({exc})") from exc
    # The weights' floating dtype is the model's dtype (configs say what a model is, not where).
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
    try:
        model = from_config(config, device="meta", dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: its config cannot be built: {exc}") from exc
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k}: file {tuple(tensors[k].shape)}/{tensors[k].dtype}, config {s}/{d}"
             for k, (s, d) in expected.items()
             if k in tensors and (tuple(tensors[k].shape) != s or tensors[k].dtype != d)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s) e.g. {unexpected[:3]}")
        if wrong:
            parts.append(f"{len(wrong)} shape/dtype mismatch(es) e.g. {wrong[:3]}")
        raise ModelFileError(f"{path}: weights do not match the config {config}: " + "; ".join(parts))
    model = from_config(config, device=device, dtype=dtype)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    if "zoo.spec" in meta:
        model.spec = json.loads(meta["zoo.spec"])
    return model
