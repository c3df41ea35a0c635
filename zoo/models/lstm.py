"""LSTM sequence classifier / regressor (Hochreiter & Schmidhuber, 1997) over ``nn.LSTM``."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arguments import check, placement
from ..base import SequenceModel
from ..registry import register_model
from ..scaling import scale_depth, scale_width
from ..standardize import Standardize


class LSTMClassifier(SequenceModel):
    """``Standardize | Embedding -> nn.LSTM(batch_first=True) -> [Dropout] -> Linear`` on the final
    hidden state.

    Float features are standardised per feature first (:class:`zoo.standardize.Standardize`, the
    identity until :func:`zoo.fit` sets it); token ids (``vocab_size`` set) go to the embedding
    and have no standardisation.

    The head reads the last layer's final hidden state ``h_T`` (for a bidirectional LSTM, the
    forward direction's state after step T concatenated with the reverse direction's state after
    step 1: ``[h_fwd, h_bwd]``). The recurrent part is ``nn.LSTM`` itself (cuDNN / MKL), its
    numerics proven equal to the written-out reference :func:`zoo.kernels.lstm_cell.lstm_ref`.

    Init: PyTorch's defaults (every LSTM weight and bias U(-1/sqrt(H), 1/sqrt(H)), as ``nn.LSTM``;
    the head as ``nn.Linear``; the embedding N(0, 1) as ``nn.Embedding``).

    Shapes: x (B, T, in_features) float, or (B, T) long token ids when ``vocab_size`` is set
    -> (B, num_classes).
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int, layers: int, *,
                 seq_len: int = 32, vocab_size: int | None = None, bidirectional: bool = False,
                 dropout: float = 0.0, device=None, dtype=None):
        check(in_features=in_features, num_classes=num_classes, hidden=hidden, layers=layers,
              seq_len=seq_len, vocab_size=vocab_size, bidirectional=bidirectional, dropout=dropout)
        fk = placement(device, dtype)
        super().__init__()
        self.in_features, self.seq_len, self.vocab_size = in_features, seq_len, vocab_size
        self.directions = 2 if bidirectional else 1
        if vocab_size:
            self.embed = nn.Embedding(vocab_size, in_features, **fk)
        else:
            self.embed = None
            self.standardize = Standardize(in_features, **fk)
        # nn.LSTM applies its dropout between layers only; with one layer it would only warn.
        self.lstm = nn.LSTM(in_features, hidden, layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0, **fk)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * hidden, num_classes, **fk)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input: the last layer's final hidden state(s), (B, directions * hidden)."""
        if self.embed is not None:
            x = self.embed(x)  # (B, T) -> (B, T, in_features)
        else:
            x = self.standardize(x)  # (B, T, in_features), per feature
        _, (h_n, _) = self.lstm(x)  # h_n: (layers * directions, B, hidden)
        last = h_n[-self.directions:]  # (directions, B, hidden): last layer, [forward, reverse]
        # Batch from the input, not from h_n: torch.export (2.11) gave h_n a symbolic shape that
        # made reshape(last.shape[1], -1) fail with a dynamic batch.
        return last.transpose(0, 1).reshape(x.shape[0], -1)  # (B, directions * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(x)))  # (B, num_classes)


@register_model(family="lstm", input_kind="sequence", reference="torch.nn.LSTM")
def lstm(*, in_features: int = 16, seq_len: int = 32, vocab_size: int | None = None,
         num_classes: int = 1, hidden: int = 128, layers: int = 2, bidirectional: bool = False,
         dropout: float = 0.0, width_mult: float = 1.0, depth_mult: float = 1.0,
         device=None, dtype=None) -> LSTMClassifier:
    """LSTM: ``layers`` stacked LSTM layers of ``hidden`` units (both scaled), head on h_T."""
    return LSTMClassifier(in_features, num_classes, scale_width(hidden, width_mult),
                          scale_depth(layers, depth_mult), seq_len=seq_len, vocab_size=vocab_size,
                          bidirectional=bidirectional, dropout=dropout, device=device, dtype=dtype)
