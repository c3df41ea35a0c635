"""What every zoo model has beyond ``nn.Module``: its ``config`` and ``example_inputs``."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ZooModel(nn.Module):
    """Base class of every registered model.

    Subclasses implement :meth:`example_inputs`; :func:`zoo.create` fills :attr:`config`.
    ``input_names`` / ``output_names`` name the ONNX graph's inputs and outputs, in ``forward``'s
    argument order.
    """

    input_names: tuple[str, ...] = ("x",)
    output_names: tuple[str, ...] = ("logits",)

    @property
    def config(self) -> dict:
        """The registry name and every argument that rebuilds this architecture (JSON-serialisable)."""
        cfg = getattr(self, "_zoo_config", None)
        if cfg is None:
            raise AttributeError(f"{type(self).__name__} was not built through zoo.create(), "
                                 f"so it has no config; build it with zoo.create(name, ...)")
        return copy.deepcopy(cfg)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """Random inputs ``forward`` accepts, on this model's device and dtype."""
        raise NotImplementedError

    def _placement(self) -> dict:
        """``device``/``dtype`` of the first parameter, for building example inputs beside it."""
        p = next(self.parameters(), None)
        if p is None:
            return {"device": torch.device("cpu"), "dtype": torch.get_default_dtype()}
        return {"device": p.device, "dtype": p.dtype}


class SequenceModel(ZooModel):
    """Base of the sequence models (LSTM, Transformer): inputs are ``(B, seq_len, in_features)``
    floats, or ``(B, seq_len)`` token ids in ``[0, vocab_size)`` when ``vocab_size`` is set.
    Subclasses set ``in_features``, ``seq_len`` and ``vocab_size``."""

    in_features: int
    seq_len: int
    vocab_size: int | None = None

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        place = self._placement()
        if self.vocab_size:
            return (torch.randint(0, self.vocab_size, (batch_size, self.seq_len),
                                  device=place["device"]),)
        return (torch.randn(batch_size, self.seq_len, self.in_features, **place),)
