"""``zoo.check``: audit any PyTorch model against the design principles, and diagnose its training.

>>> report = zoo.check(model, task="image-classification", n_samples=1_000,
...                    input_shape=(3, 32, 32))                      # doctest: +SKIP
>>> print(report.report())                                           # doctest: +SKIP

One forward pass of the model on its inputs runs under the structural tracer
(:mod:`zoo.factory.trace_structure`): weight layers on the longest and shortest path, residual
adds, widths, recurrent layers and their steps, attention, message passing. The rules of
:mod:`zoo.factory.check_rules` judge that structure against the task and the data size (inductive
bias, capacity, skip connections, depth/width, over-smoothing, recurrent length), and a backward
from a loss on random targets measures the gradient flow. With ``history=`` the learning curves
are diagnosed, with ``overfit_batch=True`` the one-batch sanity check runs
(:mod:`zoo.factory.diagnose`). The model is never modified: every pass runs on a deep copy, in
train mode, seeded, without touching the caller's random state.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from zoo import validation as v

from . import policy
from .check_rules import STATUSES, Finding, fmt, rule_gradient_flow, structure_rules
from .diagnose import (OVERFIT_BATCH, OVERFIT_LR, OVERFIT_STEPS, diagnose_history, output_tensor,
                       overfit_batch as run_overfit_batch, random_targets, loss_of)
from .trace_structure import Structure, trace_structure


@dataclass
class CheckReport:
    """What :func:`check` found. ``ok``: no finding failed (warnings allowed)."""
    model: str
    params: int
    task: str | None
    n_samples: int | None
    structure: Structure
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.status == s for f in self.findings) for s in STATUSES}

    def finding(self, rule: str) -> Finding:
        """The finding of ``rule``; ``ValueError`` naming the rules present otherwise."""
        for f in self.findings:
            if f.rule == rule:
                return f
        raise ValueError(f"rule={rule!r} is not accepted: expected one of "
                         f"{', '.join(f.rule for f in self.findings)}")

    def to_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "task": self.task,
                "n_samples": self.n_samples, "ok": self.ok, "counts": self.counts(),
                "structure": {"summary": self.structure.summary(),
                              "architecture": self.structure.architecture,
                              **json.loads(json.dumps(asdict(self.structure), default=str))},
                "findings": [f.to_dict() for f in self.findings]}

    def report(self) -> str:
        """Readable text: a header, the structure, one line per rule with its remedies, a
        verdict (the seed's words and our numbers behind each rule: :meth:`to_dict`)."""
        about = [f"{fmt(self.params)} params"]
        if self.task:
            about.append(f"task {self.task}")
        if self.n_samples is not None:
            about.append(f"{self.n_samples:,} samples")
        lines = [f"zoo check {self.model} ({'; '.join(about)})",
                 f"  structure: {self.structure.summary()}"]
        width = max(len(f.rule) for f in self.findings)
        for f in self.findings:
            lines.append(f"  {f.status.upper():<4}  {f.rule:<{width}}  {f.fact}")
            for k, remedy in enumerate(f.remedies, 1):
                lines.append(f"  {'':<4}  {'':<{width}}  {k}. {remedy}")
        c = self.counts()
        lines.append(f"{'FAIL' if c['fail'] else 'OK'}: {c['pass']} passed, {c['warn']} warned, "
                     f"{c['fail']} failed, {c['skip']} skipped")
        return "\n".join(lines)


def _as_tuple(example_inputs) -> tuple:
    if isinstance(example_inputs, torch.Tensor) or hasattr(example_inputs, "edge_index"):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs:
        return tuple(example_inputs)
    raise ValueError(f"example_inputs={type(example_inputs).__name__} is not accepted: expected a "
                     f"tensor or a non-empty tuple of the model's forward arguments")


def resolve_inputs(model: nn.Module, *, batch_size: int, input_shape=None,
                   example_inputs=None) -> tuple:
    """The forward arguments: ``example_inputs`` as given; else ``torch.randn(batch_size,
    *input_shape)`` beside the model's first parameter; else ``model.example_inputs(batch_size)``
    (zoo models have it). ``ValueError`` when none applies."""
    if example_inputs is not None:
        return _as_tuple(example_inputs)
    if input_shape is not None:
        shape = v.shape("input_shape", input_shape)
        p = next(model.parameters(), None)
        place = {"device": p.device, "dtype": p.dtype} if p is not None and p.is_floating_point() \
            else {}
        return (torch.randn(batch_size, *shape, **place),)
    if callable(getattr(model, "example_inputs", None)):
        return _as_tuple(model.example_inputs(batch_size))
    raise ValueError(f"input_shape=None is not accepted for {type(model).__name__}, which has no "
                     f"example_inputs(): expected input_shape (one sample's shape; the batch is "
                     f"prepended, e.g. (3, 32, 32)) or example_inputs=(tensor, ...)")


def _model_name(model: nn.Module) -> str:
    config = getattr(model, "_zoo_config", None)
    return config["name"] if isinstance(config, dict) and "name" in config \
        else type(model).__name__


def _classifies(task: str | None) -> bool:
    return policy.TASKS[task].classification if task is not None else True


def _traced_step(model: nn.Module, inputs: tuple, task: str | None
                 ) -> tuple[Structure, dict | None, str | None]:
    """One traced forward and a backward from a loss on random targets, on a deep copy in train
    mode, seeded, leaving the caller's random state alone. Returns the structure, the gradients
    by parameter name (None on the meta device) and the backward's error, if any."""
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)
        work = copy.deepcopy(model).train()
        work.zero_grad(set_to_none=True)
        try:
            structure, out = trace_structure(work, inputs)
        except Exception as exc:  # the user's model, the user's error: say so plainly
            raise ValueError(f"model={type(model).__name__} is not accepted: its forward on the "
                             f"inputs (shapes {_shapes(inputs)}) raised {type(exc).__name__}: "
                             f"{exc}") from exc
        if any(p.device.type == "meta" for p in work.parameters()):
            return structure, None, None
        try:
            out = output_tensor(out)
            target, kind = random_targets(out.detach(), _classifies(task))
            loss_of(out, target, kind).backward()
        except Exception as exc:
            return structure, {}, f"{type(exc).__name__}: {exc}"
    grads = {n: p.grad for n, p in work.named_parameters() if p.requires_grad}
    return structure, grads, None


def _shapes(inputs: tuple) -> str:
    return ", ".join(str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__
                     for t in tree_flatten(inputs)[0])


def check(model: nn.Module, *, task: str | None = None, n_samples: int | None = None,
          input_shape=None, example_inputs=None, history=None, overfit_batch: bool = False,
          batch_size: int = 8, target: float | None = None, overfit_steps: int = OVERFIT_STEPS,
          overfit_lr: float = OVERFIT_LR) -> CheckReport:
    """Audit any ``nn.Module`` against the design principles (module docstring).

    Args:
        model: any ``nn.Module``; never modified.
        task: a :data:`zoo.factory.policy.TASKS` name (the data kind; classification or not).
            Without it the data kind comes from the inputs' shapes.
        n_samples: training-set size (nodes for node tasks); enables the capacity rule and the
            small-data parts of the inductive-bias rule.
        input_shape: one sample's shape, the batch prepended: inputs ``randn(batch_size, *shape)``.
        example_inputs: the forward's arguments (a tensor or a tuple), used as given.
            Neither: ``model.example_inputs(batch_size)`` (zoo models), else ``ValueError``.
        history: learning curves to diagnose (a ``zoo.fit`` History, its dict or JSON file
            form, or ``{"train": [...], "val": [...]}`` metric lists), with ``target`` the train
            metric below which both-low curves are underfitting.
        overfit_batch: also run the one-batch check (:func:`zoo.factory.diagnose.overfit_batch`)
            with Adam at ``overfit_lr`` for up to ``overfit_steps`` steps, on
            :data:`~zoo.factory.diagnose.OVERFIT_BATCH` samples where the inputs are generated.
        batch_size: batch of the traced step's generated inputs. BatchNorm in train mode needs
            several samples: at batch 2 MobileNetV2's last 1x1 maps normalise over 2 values and
            its stem gradients blow up 10^6-fold (an artefact of the batch, not the design).

    Raises ``ValueError`` naming a bad argument, its value and what is accepted.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a "
                         f"torch.nn.Module")
    v.optional(v.choice, "task", task, choices=policy.TASKS)
    n_samples = v.optional(v.positive_int, "n_samples", n_samples)
    batch_size = v.positive_int("batch_size", batch_size)
    overfit_batch = v.boolean("overfit_batch", overfit_batch)
    overfit_steps = v.positive_int("overfit_steps", overfit_steps)
    overfit_lr = v.number("overfit_lr", overfit_lr, minimum=0.0)
    target = v.optional(v.number, "target", target)
    inputs = resolve_inputs(model, batch_size=batch_size, input_shape=input_shape,
                            example_inputs=example_inputs)
    params = sum(p.numel() for p in model.parameters())
    structure, grads, error = _traced_step(model, inputs, task)
    findings = structure_rules(structure, params=params, task=task, n_samples=n_samples)
    if grads is None:
        findings.append(Finding("gradient-flow", "skip", "the model is on the meta device: no "
                                "data to differentiate"))
    else:
        findings.append(rule_gradient_flow(structure, grads, error))
    if history is not None:
        findings.append(diagnose_history(history, target=target))
    if overfit_batch:
        # A graph is one batch (its nodes are the samples); else OVERFIT_BATCH samples.
        small = 1 if structure.input_kinds == ["graph"] else OVERFIT_BATCH
        batch = inputs if example_inputs is not None else resolve_inputs(
            model, batch_size=small, input_shape=input_shape)
        findings.append(run_overfit_batch(model, batch, classify=_classifies(task),
                                          steps=overfit_steps, lr=overfit_lr))
    return CheckReport(model=_model_name(model), params=params, task=task, n_samples=n_samples,
                       structure=structure, findings=findings)
