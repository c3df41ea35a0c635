"""Parameters and FLOPs of a model config, counted without allocating it.

* :func:`count_params` builds the model on the ``meta`` device and counts; :func:`weight_bytes`
  adds the buffers at a dtype.
* :func:`count_flops` runs one forward inside :class:`torch.utils.flop_counter.FlopCounterMode`
  (a multiply-add counts as 2 FLOPs) on the meta device, or under ``FakeTensorMode`` for models
  with recurrent layers (see :func:`count_flops`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

import zoo

from .train_step import make_inputs, torch_dtype


def count_params(config_or_model: dict | nn.Module) -> int:
    """Exact number of parameters (built on the ``meta`` device when given a config)."""
    model = meta_model(config_or_model)
    return sum(p.numel() for p in model.parameters())


def weight_bytes(config_or_model: dict | nn.Module, dtype: str | torch.dtype = "float32") -> int:
    """Bytes of parameters and buffers at ``dtype`` (integer buffers keep their own size)."""
    model = meta_model(config_or_model)
    dt = torch_dtype(dtype)
    size = torch.tensor([], dtype=dt).element_size()
    total = sum(p.numel() * size for p in model.parameters())
    for b in model.buffers():
        total += b.numel() * (size if b.is_floating_point() else b.element_size())
    return total


def meta_model(config_or_model: dict | nn.Module) -> nn.Module:
    """The model itself, or the config built on the ``meta`` device (no storage)."""
    if isinstance(config_or_model, nn.Module):
        return config_or_model
    return zoo.from_config(config_or_model, device="meta")


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    # oneDNN's LSTM layer (what nn.LSTM runs on CPU): every step multiplies the input by W_ih
    # (4H x I) and the state by W_hh (4H x H): 2 FLOPs per weight per step and sample.
    steps_times_batch = math.prod(input_shape) // input_shape[-1]
    return 2 * steps_times_batch * (math.prod(w_ih_shape) + math.prod(w_hh_shape))


_EXTRA_FLOP_FORMULAS = {torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops}
"""FLOP formulas PyTorch's counter lacks (it counts ops it knows, and silently skips the rest)."""


def count_flops(config: dict, *, batch_size: int = 1, input_kwargs: dict | None = None) -> int:
    """Forward FLOPs of one inference at ``batch_size`` (PyTorch's ``FlopCounterMode``, 2 per MAC).

    Nothing is allocated and no arithmetic is done. The forward runs on the meta device: it needs
    no fake-tensor machinery (whose first use imports ``torch._dynamo``, about a second), and it
    sees attention as the matrix products it is -- on CPU fake tensors SDPA dispatches to a fused
    kernel the counter has no formula for, and its FLOPs go uncounted. Models with recurrent
    layers run under ``FakeTensorMode`` instead: on meta ``nn.LSTM`` unrolls into one op per time
    step (seconds at 1,500 steps), on fake CPU tensors it is one oneDNN layer per layer
    (:data:`_EXTRA_FLOP_FORMULAS`).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = zoo.from_config(config, device="meta").eval()
    if zoo.get_entry(config["name"]).input_kind == "tabular":
        return batch_size * dense_flops(model)
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    if not any(isinstance(m, nn.RNNBase) for m in model.modules()):
        inputs = make_inputs(model, batch_size, input_kwargs)
        with torch.no_grad(), counter:
            model(*inputs)
        return int(counter.get_total_flops())
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = materialise(model)
        inputs = make_inputs(model, batch_size, input_kwargs)
        with torch.no_grad(), counter:
            model(*inputs)
    return int(counter.get_total_flops())


def dense_flops(model: nn.Module) -> int:
    """FLOPs of one sample through a tabular model: ``2 * in * out`` per ``nn.Linear``.

    The tabular families map ``(B, features)`` through each of their ``nn.Linear`` layers once,
    and their other layers (standardisation, norms, activations) are ones ``FlopCounterMode`` does
    not count, so this is its count exactly (a test holds the two equal) -- without running a
    forward on meta tensors, whose first use imports ``torch._dynamo`` (about a second, a third of
    a tabular build).
    """
    return sum(2 * m.in_features * m.out_features for m in model.modules()
               if isinstance(m, nn.Linear))


def input_bytes(config: dict, *, batch_size: int, dtype: str | torch.dtype = "float32",
                input_kwargs: dict | None = None) -> int:
    """Bytes of one batch of ``example_inputs`` (a training step holds at least these), computed on
    fake tensors: nothing is allocated, however large the input."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    model = zoo.from_config(config, device="meta", dtype=torch_dtype(dtype))
    if zoo.get_entry(config["name"]).input_kind == "tabular":  # (B, features): no forward needed
        return batch_size * model.in_features * torch.tensor([], dtype=torch_dtype(dtype)).element_size()
    with FakeTensorMode(allow_non_fake_inputs=True):
        inputs = make_inputs(materialise(model), batch_size, input_kwargs)
        return sum(t.numel() * t.element_size() for t in inputs)


def buffer_bytes(config_or_model: dict | nn.Module, dtype: str | torch.dtype = "float32") -> int:
    """Bytes of the buffers alone (batch-norm statistics...) at ``dtype``."""
    model = meta_model(config_or_model)
    size = torch.tensor([], dtype=torch_dtype(dtype)).element_size()
    return sum(b.numel() * (size if b.is_floating_point() else b.element_size())
               for b in model.buffers())


def materialise(model: nn.Module) -> nn.Module:
    """Give a meta-device model empty CPU tensors (fake ones under ``FakeTensorMode``), in place.

    (``Module.to_empty`` cannot swap a meta parameter for a fake one.)
    """
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None:
                module._parameters[name] = nn.Parameter(torch.empty_like(p, device="cpu"),
                                                        requires_grad=p.requires_grad)
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = torch.zeros_like(b, device="cpu")
    return model
