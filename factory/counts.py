"""Parameters and FLOPs of a model config, counted without allocating it.

* :func:`count_params` builds the model on the ``meta`` device and counts; :func:`weight_bytes`
  adds the buffers at a dtype.
* :func:`count_flops` runs one forward under ``FakeTensorMode`` inside
  :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts as 2 FLOPs).
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

    Runs on fake tensors: nothing is allocated and no arithmetic is done.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = materialise(zoo.from_config(config, device="meta")).eval()
        inputs = make_inputs(model, batch_size, input_kwargs)
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
        with torch.no_grad(), counter:
            model(*inputs)
    return int(counter.get_total_flops())


def input_bytes(config: dict, *, batch_size: int, dtype: str | torch.dtype = "float32",
                input_kwargs: dict | None = None) -> int:
    """Bytes of one batch of ``example_inputs`` (a training step holds at least these), computed on
    fake tensors: nothing is allocated, however large the input."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True):
        model = materialise(zoo.from_config(config, device="meta", dtype=torch_dtype(dtype)))
        inputs = make_inputs(model, batch_size, input_kwargs)
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
