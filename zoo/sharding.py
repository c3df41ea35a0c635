"""FSDP2 sharding of zoo models: each family's wrap units, ``fully_shard`` bottom-up, then the root.

FSDP2 (:func:`torch.distributed.fsdp.fully_shard`) turns a module's parameters into ``DTensor``
shards, ``Shard(0)`` over the mesh: a parameter of shape ``(d0, ...)`` keeps
``ceil(d0 / N)`` rows on each of ``N`` ranks (dim 0 padded to a multiple of ``N``). Each wrapped
module is one *unit*: its parameters are all-gathered as one flat buffer just before its forward
(and again before its backward when ``reshard_after_forward``), and its gradients reduce-scattered
as one buffer after its backward. So the units set the granularity of the memory that is
unsharded at once, and the root unit holds every parameter no unit claims (stems, heads, norms).

The units of each registry family are listed in :data:`WRAP_UNITS` (the blocks that a residual or
recurrent structure repeats); a model class may instead define ``fsdp_units()`` returning them, which
takes precedence. Units are wrapped in the order ``forward`` runs them (bottom-up), the root last,
as FSDP2 requires: a child must be sharded before the module that contains it.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch.nn as nn

from . import validation


def _blocks(*names: str) -> Callable[[nn.Module], list[nn.Module]]:
    """Units = the children of the containers ``names`` (ModuleList / Sequential), in order."""
    def units(model: nn.Module) -> list[nn.Module]:
        out: list[nn.Module] = []
        for name in names:
            container = getattr(model, name, None)
            if container is not None:
                out.extend(container.children())
        return out
    return units


def _resnet_units(model: nn.Module) -> list[nn.Module]:
    # Residual blocks (BasicBlock / Bottleneck) of the four stages, in forward order.
    return _blocks("layer1", "layer2", "layer3", "layer4")(model)


def _mobilenet_units(model: nn.Module) -> list[nn.Module]:
    # blocks.{stage}.{block}: every inverted-residual (or depthwise-separable) block.
    return [block for stage in model.blocks for block in stage]


def _inception_units(model: nn.Module) -> list[nn.Module]:
    # The Inception blocks, in forward_features' order (the stem convs stay with the root).
    from .models.inception import Inception
    return [getattr(model, n) for n in model.feature_order
            if isinstance(getattr(model, n), Inception)]


def _mlp_units(model: nn.Module) -> list[nn.Module]:
    # Each hidden Linear (its norm, a few vectors, stays with the root), then the head.
    return [m for m in model.body if isinstance(m, nn.Linear)] + [model.head]


def _lstm_units(model: nn.Module) -> list[nn.Module]:
    # nn.LSTM runs its layers in one fused call: the recurrent module is the unit.
    return [model.lstm]


def _tcn_units(model: nn.Module) -> list[nn.Module]:
    # The temporal CNN's residual blocks (H1's zoo/models/tcn.py): whichever container holds them.
    for name in ("blocks", "layers", "network", "tcn"):
        container = getattr(model, name, None)
        if isinstance(container, (nn.ModuleList, nn.Sequential)):
            return list(container.children())
    return []


WRAP_UNITS: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    "resnet": _resnet_units,
    "seresnet": _resnet_units,
    "mobilenetv2": _mobilenet_units,
    "inception": _inception_units,
    "transformer": _blocks("blocks"),
    "lstm": _lstm_units,
    "gcn": _blocks("layers"),
    "mlp": _mlp_units,
    "tcn": _tcn_units,
    "linear": lambda model: [],      # one Linear: the root is the only unit
}
"""Registry family -> function returning the model's FSDP wrap units in forward order."""


def wrap_units(model: nn.Module) -> list[nn.Module]:
    """The FSDP wrap units of ``model`` in forward order (the root excluded).

    ``model.fsdp_units()`` when the class defines it, else :data:`WRAP_UNITS` of its registry
    family. A model that is not a zoo model, or of a family without an entry, has no units (only
    the root is sharded).
    """
    own = getattr(model, "fsdp_units", None)
    if callable(own):
        return list(own())
    config = getattr(model, "_zoo_config", None)
    if not config:
        return []
    from .registry import get_entry
    units = WRAP_UNITS.get(get_entry(config["name"]).family)
    return [] if units is None else [u for u in units(model) if _has_params(u)]


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def shard(model: nn.Module, mesh=None, *, reshard_after_forward: bool = True,
          fix_mmap_threshold: bool = True) -> nn.Module:
    """Apply FSDP2 ``fully_shard`` to ``model``'s wrap units bottom-up, then to the root; in place.

    ``mesh``: a 1-D :class:`torch.distributed.device_mesh.DeviceMesh` (None: FSDP2's default, one
    dimension over the default process group's world). ``reshard_after_forward``: free each unit's
    gathered parameters after its forward and gather them again in the backward (ZeRO-3); False
    keeps them until the backward (ZeRO-2-like, more memory, one all-gather fewer). The root is
    never resharded after forward (its backward runs first), as FSDP2 does by default.

    Per rank, parameters, gradients and optimizer state then take ``sum_p ceil(d0_p / N) * rest_p``
    elements; the unsharded parameters of a unit exist only while it runs (plus the next one,
    prefetched). Returns the same module (its class becomes ``FSDP<Class>``; ``config`` and
    ``example_inputs`` still work). A process group must be initialised first.

    On CPU, with ``fix_mmap_threshold`` (the default), it first fixes glibc's mmap threshold at
    1 MiB (:func:`zoo.distributed.fix_cpu_mmap_threshold`), so FSDP's per-step full-size buffers go
    back to the kernel when freed instead of staying on the heap; the factory's per-device memory
    estimate assumes it. False leaves the process's allocator as it is (e.g. under jemalloc).
    """
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} is not accepted: expected a torch.nn.Module")
    reshard_after_forward = validation.boolean("reshard_after_forward", reshard_after_forward)
    fix_mmap_threshold = validation.boolean("fix_mmap_threshold", fix_mmap_threshold)
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("zoo.shard needs an initialised process group: call "
                           "zoo.distributed.setup() (under torchrun) or "
                           "torch.distributed.init_process_group first")
    if fix_mmap_threshold and any(p.device.type == "cpu" for p in model.parameters()):
        from .distributed import fix_cpu_mmap_threshold
        fix_cpu_mmap_threshold()
    kwargs = {} if mesh is None else {"mesh": mesh}
    for unit in _distinct(wrap_units(model)):
        fully_shard(unit, reshard_after_forward=reshard_after_forward, **kwargs)
    fully_shard(model, reshard_after_forward=reshard_after_forward, **kwargs)
    return model


def _distinct(units: Iterable[nn.Module]) -> list[nn.Module]:
    """Units without repeats or nesting (a unit inside another would be sharded twice)."""
    units = list(dict.fromkeys(units))
    inner = {id(m) for u in units for m in u.modules() if m is not u}
    return [u for u in units if id(u) not in inner]
