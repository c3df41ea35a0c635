r"""Fold inference-mode BatchNorm into the convolution that feeds it.

In eval mode a BatchNorm is a fixed per-channel affine map, so after a convolution it can be merged
into the convolution's weights. For output channel :math:`o`, with running statistics
:math:`\mu_o, \sigma^2_o`, affine :math:`\gamma_o, \beta_o` and :math:`\epsilon`:

.. math::
    \mathrm{BN}(W * x + b)_o = s_o\,\big((W * x)_o + b_o - \mu_o\big) + \beta_o,
    \qquad s_o = \frac{\gamma_o}{\sqrt{\sigma^2_o + \epsilon}}

    \Rightarrow\quad W'_{o,:,:,:} = s_o\, W_{o,:,:,:}, \qquad b'_o = (b_o - \mu_o)\, s_o + \beta_o

(:math:`b = 0` for a bias-free conv; :math:`\gamma = 1, \beta = 0` for a non-affine BN). This holds
for any stride, padding, padding mode, dilation and groups: each output channel is linear in its own
filter and bias. One conv then does the work of conv + BN: a BN pass over the activation is saved.

Pairs: :func:`fold_conv_bn` (the fast path) returns a folded copy; its reference twin is the
unfolded model itself, which the tests compare it with. :func:`fuse_conv_bn_weights` is the pure
math above.

When is a fold safe? A pair is folded only when all of these hold (checked on a ``torch.fx``
symbolic trace of the model in eval mode, so the trace records the eval-mode forward):

1. the BN module is exactly ``nn.BatchNorm2d`` (not a subclass, e.g. timm's ``BatchNormAct2d``,
   which also applies an activation) and uses running statistics (``track_running_stats=True``);
2. the conv module is exactly ``nn.Conv2d`` (not a subclass that transforms its weight in
   ``forward``, e.g. weight standardisation, nor a parametrised conv) with a floating dtype;
3. the BN's only input is the conv's output, and the BN is the only consumer of that output (so
   no other op sees the un-normalised tensor, and making the BN an identity aliases nothing);
4. each module is called exactly once in the trace, is registered under exactly one name, and no
   parameter or buffer of either is read outside its own ``forward`` (no ``get_attr`` node);
5. neither module has forward or forward-pre hooks (a trace does not record hooks).

Tracing is all-or-part: a submodule whose ``forward`` cannot be traced (data-dependent Python
control flow, e.g. timm's "same" padding) is re-traced as an opaque leaf (all modules of its type),
and no conv or BN inside an opaque module is folded. Pairs outside it are still proved by the
trace, on one assumption: an opaque module only touches its own submodules, not modules it holds
through unregistered references. If the root ``forward`` itself cannot be traced, nothing is folded
(with a warning).
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.fx as fx
import torch.nn as nn

__all__ = ["find_conv_bn_pairs", "fold_conv_bn", "fuse_conv_bn_weights"]


@torch.no_grad()
def fuse_conv_bn_weights(weight: torch.Tensor, bias: torch.Tensor | None, running_mean: torch.Tensor,
                         running_var: torch.Tensor, eps: float, gamma: torch.Tensor | None,
                         beta: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(W', b')`` with :math:`W' = W \cdot s`, :math:`b' = (b - \mu) s + \beta`,
    :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}` per output channel.

    Shapes: ``weight`` (C_out, C_in / groups, kH, kW); ``bias``, the statistics and the affine
    parameters (C_out,). Computed in float64 (float32 on devices without it), returned in
    ``weight``'s dtype. The per-channel ``s`` and ``b'`` are computed in float64; a float32 or
    float64 ``W`` is scaled in its own dtype (one rounding per element, as the float64 product
    rounded back: converting a ResNet-50's weights to float64 and back cost 0.5 s here).
    """
    out_dtype = weight.dtype
    work = torch.float32 if weight.device.type == "mps" else torch.float64
    c_out = weight.shape[0]
    mean, var = running_mean.to(work), running_var.to(work)
    gamma = torch.ones(c_out, dtype=work, device=weight.device) if gamma is None else gamma.to(work)
    beta = torch.zeros(c_out, dtype=work, device=weight.device) if beta is None else beta.to(work)
    bias = torch.zeros(c_out, dtype=work, device=weight.device) if bias is None else bias.to(work)
    scale = gamma * torch.rsqrt(var + eps)                                    # (C_out,)
    w_work = weight.dtype if weight.dtype in (torch.float32, torch.float64) else work
    w = weight.to(w_work) * scale.to(w_work).reshape(-1, *([1] * (weight.dim() - 1)))  # like weight
    b = (bias - mean) * scale + beta                                          # (C_out,)
    return w.to(out_dtype), b.to(out_dtype)


class _PartialTracer(fx.Tracer):
    """An fx tracer that treats the module types in ``opaque_types`` as leaves and records the
    innermost module whose trace raised, so the caller can retry with its type opaque."""

    def __init__(self, opaque_types: set[type]):
        super().__init__()
        self.opaque_types = opaque_types
        self.failed: nn.Module | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m) in self.opaque_types or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed is None:  # the innermost frame sees the exception first
                self.failed = m
            raise


def _trace(model: nn.Module) -> tuple[fx.Graph | None, set[type]]:
    """An fx graph of ``model`` (None if its own forward cannot be traced) and the opaque types."""
    opaque: set[type] = set()
    while True:
        tracer = _PartialTracer(opaque)
        try:
            return tracer.trace(model), opaque
        except Exception as exc:  # any tracing failure: make the failing module's type opaque
            failed = tracer.failed
            if failed is None or failed is model or type(failed) in opaque:
                warnings.warn(f"fold_conv_bn: {type(model).__name__}.forward cannot be traced by "
                              f"torch.fx ({type(exc).__name__}: {exc}); nothing folded", stacklevel=3)
                return None, opaque
            opaque.add(type(failed))


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Qualified names ``(conv, bn)`` of every pair :func:`fold_conv_bn` would fold in ``model``
    (traced as it is: put it in eval mode first), by the rules in the module docstring."""
    if not any(type(m) is nn.BatchNorm2d for m in model.modules()):
        return []  # nothing to fold: no trace attempted, so no warning for an untraceable model
    graph, opaque_types = _trace(model)
    if graph is None:
        return []
    all_names: dict[int, list[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        all_names.setdefault(id(m), []).append(name)
    modules = dict(model.named_modules())
    opaque_prefixes = tuple(f"{name}." for name, m in modules.items() if type(m) in opaque_types)

    calls: dict[str, int] = {}
    read_attrs: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
        elif node.op == "get_attr":
            read_attrs.append(node.target)

    def usable(name: str) -> bool:
        m = modules[name]
        return (calls.get(name) == 1 and len(all_names[id(m)]) == 1 and not _hooked(m)
                and not name.startswith(opaque_prefixes)
                and not any(a.startswith(f"{name}.") for a in read_attrs))

    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or type(modules[node.target]) is not nn.BatchNorm2d:
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
            continue
        if len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = modules[src.target]
        if type(conv) is not nn.Conv2d or not conv.weight.is_floating_point():
            continue
        if usable(src.target) and usable(node.target):
            pairs.append((src.target, node.target))
    return pairs


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


@torch.no_grad()
def fold_conv_bn(model: nn.Module, *, share_weights: bool = False) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every BatchNorm2d that directly follows a Conv2d
    folded into that conv (see the module docstring for the math and the safety rules) and replaced
    by ``nn.Identity``. ``model`` itself is untouched (weights, buffers and train/eval mode).

    The copy computes what ``model.eval()`` computes, up to float rounding, with fewer ops; it is
    for inference (calling ``.train()`` on it does not bring the BatchNorms back). Its parameters
    are leaf tensors; no gradient is needed or recorded to fold.

    ``share_weights=True`` copies the module tree but not the tensors: the copy's parameters and
    buffers that folding does not replace *are* ``model``'s (a folded conv gets new ones). That is
    for a short-lived read-only copy (an export): it skips copying every weight (0.5 s of a 1 s
    fold for a 224-px ResNet-50 here); writing to the copy's shared tensors would write to ``model``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module")
    if not isinstance(share_weights, bool):
        raise ValueError(f"share_weights={share_weights!r} is not accepted: expected True or False")
    memo = ({id(t): t for t in [*model.parameters(), *model.buffers()]} if share_weights else None)
    folded = copy.deepcopy(model, memo).eval()
    for conv_name, bn_name in find_conv_bn_pairs(folded):
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        conv.weight = nn.Parameter(w, requires_grad=conv.weight.requires_grad)
        conv.bias = nn.Parameter(b, requires_grad=conv.weight.requires_grad)
        _set_submodule(folded, bn_name, nn.Identity())
    return folded
