"""ONNX export of zoo models: one self-contained file, dynamic batch, the config in its metadata.

What :func:`export_onnx` writes is an *inference copy* of the model: a deep copy put in eval mode
with every Conv+BatchNorm pair folded (``zoo.kernels.fold_bn.fold_conv_bn``), so the file runs the same
arithmetic the factory measured. The caller's model is never modified.

Exporter choice (measured on the 2-core CPU machine this project is built on, torch 2.14.1):
the dynamo exporter (``torch.export`` + onnxscript) takes about 1.5-2 s for a 32x32 ResNet-18 and
3 s for a 2-layer LSTM; the legacy TorchScript exporter (``dynamo=False``) takes 0.2-0.8 s and
0.05 s. We still use the dynamo exporter for every model, because the legacy exporter translated
``index_add_`` with repeated destination indices (every GCN aggregation) into a ``ScatterND``
without reduction: later writes overwrite earlier ones, and ONNX Runtime's output differed from
PyTorch's by 40-150 % (relative max-abs error) on small graphs. It is also deprecated. The first
dynamo export in a process pays about 2 s more (imports and warm-up of torch.export/onnxscript);
a ``zoo build`` should export only its finalists. (Legacy export did not slow later eager timings
here either: resnet18 eager stayed at 14 ms before and after two exports, torch 2.14.1.)

Batch-only models (images, tables) are traced at a *fixed* batch and the ONNX graph's batch axis
is then made symbolic by :func:`zoo.onnx_batch.make_batch_dynamic`, which first proves that every
operator acts per sample (otherwise the model is traced again with a symbolic batch): a symbolic
trace cost 1.5-2 s more for a 224-px ResNet-50 here. The export copy shares the unfolded weights
with the model instead of copying them (``fold_conv_bn(share_weights=True)``).

``torch.export`` specialises dimensions of size 1, so the example traced has batch >= 2 whenever
the batch is dynamic (a batch-1 example froze an LSTM's batch dimension).

Export cost independent of the data's size: every ``nn.LSTM`` of the export copy is swapped for
:class:`zoo.onnx_ops.ExportLSTM`, one custom operator translated to ONNX ``LSTM`` nodes
(``torch.export`` otherwise ran PyTorch's LSTM decomposition step by step on fake tensors just to
find the output shapes: 11 s at 50 steps, 54 s at 400). Sequence models get a dynamic time axis
besides the batch, so one file serves every length; graph models' node and edge axes are
dynamic. ``zoo-bench export`` measures the export times; the graphs do not grow with the length.

Metadata (``metadata_props``, all strings): ``zoo.format``, ``zoo.config`` and ``zoo.spec`` (JSON,
as in safetensors files, from :func:`zoo.io.model_metadata`), plus ``zoo.inputs`` — a JSON list of
``{"name", "shape", "dtype", "high"}`` for each input at the export example's size (``high``: for
integer inputs, one more than the largest example value, so a timer can draw valid random indices)
— and ``zoo.dynamic_axes`` (``{input name: {axis: dim name}}``). :func:`read_onnx_metadata` reads
them back.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .atomic import atomic_path
from .errors import ModelFileError
from .io import model_metadata
from .onnx_batch import make_batch_dynamic
from .onnx_ops import TRANSLATIONS, swap_lstms

# Protobuf cannot serialise a single message of 2 GiB or more; bigger models need external data.
_PROTOBUF_LIMIT = 2**31 - 1
# Opsets the dynamo exporter (torchlib) translates to; ONNX Runtime 1.18+ runs all of them.
MIN_OPSET, MAX_OPSET = 18, 23


def dynamic_axes_for(model: nn.Module) -> dict[str, dict[int, str]]:
    """Which input axes vary between calls, per input name: ``{"x": {0: "batch"}}``.

    A model may declare its own (``model.onnx_dynamic_axes``); otherwise every input's first axis
    is the batch, except graph models (``input_kind == "graph"``), whose node features vary in
    the number of nodes (axis 0) and whose ``edge_index`` (2, E) varies in the number of edges.
    Sequence models (``input_kind == "sequence"``, ``seq_len >= 2``) vary in the batch (axis 0)
    and the time (axis 1): one file runs any length up to the model's ``seq_len`` (the LSTM's
    file any length at all; see :func:`export_onnx`).
    """
    declared = getattr(model, "onnx_dynamic_axes", None)
    if declared is not None:
        return {str(k): {int(a): str(d) for a, d in v.items()} for k, v in declared.items()}
    names = tuple(model.input_names)
    kind = _input_kind(model)
    if kind == "graph":
        return {n: ({1: "edges"} if n == "edge_index" else {0: "nodes"}) for n in names}
    if kind == "sequence" and getattr(model, "seq_len", 0) >= 2:  # length 1 would be specialised
        return {n: {0: "batch", 1: "time"} for n in names}
    return {n: {0: "batch"} for n in names}


def _input_kind(model: nn.Module) -> str | None:
    from .registry import get_entry

    try:
        return get_entry(model.config["name"]).input_kind
    except (AttributeError, KeyError, ValueError):
        return None


def _check_args(model, batch_size, opset) -> None:
    if not isinstance(model, nn.Module) or not hasattr(model, "example_inputs"):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a zoo model "
                         f"(built by zoo.create(), zoo.build() or zoo.load())")
    try:
        model.config  # noqa: B018 - raises AttributeError for a model not built by zoo.create
    except AttributeError as exc:
        raise ValueError(f"model={type(model).__name__} is not accepted: {exc}") from exc
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not accepted: expected an integer >= 1")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)
                              or not MIN_OPSET <= opset <= MAX_OPSET):
        raise ValueError(f"opset={opset!r} is not accepted: expected None (the exporter's default) "
                         f"or an integer in [{MIN_OPSET}, {MAX_OPSET}]")
    if any(t.is_meta for t in model.parameters()) or any(t.is_meta for t in model.buffers()):
        raise ValueError("model is on the meta device: it has no weights to export; build it on a "
                         "real device (device='cpu')")


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with Conv+BatchNorm pairs folded, for one export; ``model``
    is untouched (weights, buffers, train/eval mode and module tree).

    Folding is :func:`zoo.kernels.fold_bn.fold_conv_bn` (the project's one implementation). The
    copy is of the module tree only: the tensors folding does not replace are shared with
    ``model`` (``share_weights=True``; copying every weight cost 0.5 s of a 224-px ResNet-50's
    export here). The exporter only reads them, and the copy is dropped after the export.
    """
    from zoo.kernels.fold_bn import fold_conv_bn

    if any(type(m) is nn.BatchNorm2d for m in model.modules()):
        return fold_conv_bn(model, share_weights=True).eval()
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo).eval()


def export_onnx(model: nn.Module, path: str | os.PathLike, *, batch_size: int = 1,
                dynamic_batch: bool = True, opset: int | None = None) -> Path:
    """Export ``model`` for inference to the ONNX file ``path``, atomically; return the path.

    Args:
        model: a zoo model (it has ``config``, ``example_inputs``, ``input_names``, ``output_names``).
        path: the file to write. Written beside it first and renamed, so a failed export leaves no
            file and never replaces an existing good one.
        batch_size: the batch of the example inputs traced (graph models: passed to
            ``example_inputs`` as is). With ``dynamic_batch`` the file accepts any batch and the
            example is traced at ``max(2, batch_size)``; without, the batch is fixed to ``batch_size``.
        dynamic_batch: make the batch axis (sequence models: the batch and time axes; graph
            models: the node and edge axes) symbolic, as :func:`dynamic_axes_for` lists them.
        opset: ONNX opset; ``None`` is the exporter's default (18).

    The graph's inputs and outputs are named ``model.input_names`` / ``model.output_names``; the
    config (and spec) are in the metadata (see the module docstring). Models of 2 GiB or more,
    which need ONNX external data, are refused rather than written as several files.
    """
    _check_args(model, batch_size, opset)
    target = Path(path)
    if target.suffix.lower() != ".onnx":
        raise ValueError(f"path={str(path)!r} is not accepted: expected a file name ending in .onnx")
    nbytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    if nbytes >= _PROTOBUF_LIMIT:
        raise ValueError(f"model has {nbytes / 2**30:.2f} GiB of weights: a single-file ONNX export "
                         f"is limited to 2 GiB (protobuf); external-data export is not supported")

    net = inference_copy(model)
    axes = dynamic_axes_for(net) if dynamic_batch else {}
    traced_batch = max(2, batch_size) if dynamic_batch and _input_kind(net) != "graph" else batch_size
    with torch.no_grad():
        inputs = tuple(net.example_inputs(batch_size=traced_batch))
    input_names, output_names = list(net.input_names), list(net.output_names)
    if len(inputs) != len(input_names):
        raise ValueError(f"{type(net).__name__}.example_inputs gives {len(inputs)} tensors but "
                         f"input_names has {len(input_names)}: {input_names}")
    dynamic_shapes = None
    if axes:
        dims: dict[str, torch.export.Dim] = {}
        dynamic_shapes = tuple(
            {a: dims.setdefault(d, _dim(net, d)) for a, d in axes.get(n, {}).items()} or None
            for n in input_names)
    swap_lstms(net)  # nn.LSTM -> one custom operator: a trace cost independent of the length

    proto = None
    if axes and all(axes.get(n) == {0: "batch"} for n in input_names):
        # Fixed-batch trace, then the batch made symbolic where provably safe (zoo.onnx_batch):
        # 3.8 s instead of 5.6 s for a cold 224-px ResNet-50 here. Otherwise a symbolic trace.
        proto = _dynamo_export(net, inputs, input_names, output_names, None, opset).model_proto
        if not make_batch_dynamic(proto, traced_batch):
            proto = None
    if proto is None:
        proto = _dynamo_export(net, inputs, input_names, output_names, dynamic_shapes,
                               opset).model_proto
    meta = dict(model_metadata(model))
    meta["zoo.inputs"] = json.dumps([_describe(n, t) for n, t in zip(input_names, inputs)])
    meta["zoo.dynamic_axes"] = json.dumps(axes)
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)

    import onnx

    with atomic_path(target, suffix=".onnx") as tmp:
        # One self-contained file: every initializer inline, no ``.onnx.data`` beside it.
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        # Checked before the rename (a failure leaves no file); by path, which skips serialising
        # the proto a second time (0.45 s against 0.9 s for a ResNet-101 here).
        onnx.checker.check_model(str(tmp))
    return target


def _dim(net: nn.Module, name: str) -> "torch.export.Dim":
    """The symbolic dimension ``name``; ``time`` is traced over ``[1, seq_len]``, the lengths the
    model accepts (a Transformer's position table is ``seq_len`` long). The ONNX file itself
    records only a symbolic size: its LSTM runs longer sequences too."""
    if name == "time" and isinstance(getattr(net, "seq_len", None), int):
        return torch.export.Dim(name, min=1, max=max(2, net.seq_len))
    return torch.export.Dim(name)


def _dynamo_export(net, inputs, input_names, output_names, dynamic_shapes, opset):
    """``torch.onnx.export(dynamo=True)`` with its progress chatter silenced."""
    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net, inputs, None, dynamo=True, verbose=False, input_names=input_names,
                output_names=output_names, dynamic_shapes=dynamic_shapes, opset_version=opset,
                external_data=False, optimize=True, custom_translation_table=TRANSLATIONS)
    except Exception as exc:  # torch.export / translation errors: name the model and the cause
        raise RuntimeError(f"ONNX export of {net.config.get('name', type(net).__name__)} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return program


def _describe(name: str, t: torch.Tensor) -> dict:
    d = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
    if not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool:
        d["high"] = int(t.max()) + 1 if t.numel() else 1
    return d


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The zoo metadata of an exported ONNX file, decoded: ``config``, ``spec`` (or None),
    ``inputs``, ``dynamic_axes`` and ``format``. Raises :class:`ModelFileError` if it has none."""
    import onnx

    path = str(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file")
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable ONNX file ({exc})") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    if "zoo.config" not in props:
        raise ModelFileError(f"{path}: ONNX file has no 'zoo.config' metadata; it was not written "
                             f"by zoo.export_onnx()")
    try:
        return {
            "format": props.get("zoo.format"),
            "config": json.loads(props["zoo.config"]),
            "spec": json.loads(props["zoo.spec"]) if "zoo.spec" in props else None,
            "inputs": json.loads(props.get("zoo.inputs", "[]")),
            "dynamic_axes": json.loads(props.get("zoo.dynamic_axes", "{}")),
        }
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: zoo metadata is not valid JSON ({exc})") from exc
