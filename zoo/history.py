"""What :func:`zoo.fit` returns: one row per epoch, the best epoch, why training stopped.

A row is ``{"epoch": int (1-based), "train_loss": float, "train_metric": float | None,
"val_loss": float | None, "val_metric": float | None, "seconds": float (cumulative wall time),
"lr": float (the rate of the epoch's last step)}``. The metric is ``"accuracy"`` (classification)
or ``"r2"`` (regression, the coefficient of determination ``1 - SS_res / SS_tot``).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_bytes_atomic

STOP_REASONS = ("epochs", "time_budget", "early_stopping")
ROW_KEYS = ("epoch", "train_loss", "train_metric", "val_loss", "val_metric", "seconds", "lr")


@dataclass
class History:
    """Per-epoch learning curves of one :func:`zoo.fit` run (JSON round trip via ``to_dict``)."""

    task: str
    metric: str
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped: str = "epochs"

    @property
    def best(self) -> dict | None:
        """The row of ``best_epoch`` (the weights the model holds after ``fit``); without validation,
        the last row; ``None`` before any epoch."""
        if self.best_epoch is not None:
            return dict(self.epochs[self.best_epoch - 1])
        return dict(self.epochs[-1]) if self.epochs else None

    @property
    def seconds_per_epoch(self) -> float | None:
        """Wall seconds of the run over the epochs it ran (validation included); ``None`` before any
        epoch."""
        return self.epochs[-1]["seconds"] / len(self.epochs) if self.epochs else None

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "epochs": [dict(r) for r in self.epochs],
                "best_epoch": self.best_epoch, "stopped": self.stopped}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        if not isinstance(d, dict) or not {"task", "metric", "epochs"} <= set(d):
            raise ValueError(f"d={d!r} is not accepted: expected a dict from History.to_dict() "
                             f"(keys task, metric, epochs, best_epoch, stopped)")
        return cls(task=d["task"], metric=d["metric"], epochs=[dict(r) for r in d["epochs"]],
                   best_epoch=d.get("best_epoch"), stopped=d.get("stopped", "epochs"))

    def plot(self, path: str | os.PathLike, *, title: str | None = None) -> Path:
        """Write the learning curves to the PNG ``path`` atomically; return the path.

        Two panels against the epoch: loss (train and validation) and the metric (train and
        validation), the best epoch marked by a dotted line. matplotlib (the ``dev`` extra) is
        imported here and draws on its Agg canvas, so ``fit`` itself never needs it.
        """
        if str(path).lower()[-4:] != ".png":
            raise ValueError(f"path={str(path)!r} is not accepted: expected a file name ending in .png")
        if not self.epochs:
            raise ValueError("History has no epochs to plot")
        fig = new_figure(figsize=(9, 3.5))
        axes = fig.subplots(1, 2)
        ep = [r["epoch"] for r in self.epochs]
        loss = "cross-entropy" if self.task == "classification" else "mean squared error"
        metric = {"r2": "R\u00b2"}.get(self.metric, self.metric)
        for ax, key, label in ((axes[0], "loss", loss), (axes[1], "metric", metric)):
            for split, style in (("train", "-"), ("val", "--")):
                ys = [r[f"{split}_{key}"] for r in self.epochs]
                if any(v is not None for v in ys):
                    ax.plot(ep, [float("nan") if v is None else v for v in ys], style,
                            marker="o" if len(ep) < 30 else None, markersize=3, label=split)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch, color="gray", linestyle=":", label="best epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(title or f"{self.task}: stopped by {self.stopped}", fontsize=10)
        fig.tight_layout()
        return save_png(fig, path)


def new_figure(**kwargs):
    """A matplotlib ``Figure`` drawn by the Agg canvas, without pyplot: no display, no global
    figure registry, and the caller's pyplot backend is left alone."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is in the dev extra
        raise ImportError("plotting needs matplotlib: pip install 'zoo[dev]' or matplotlib") from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | os.PathLike) -> Path:
    """Render ``fig`` to PNG bytes and write them to ``path`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)
