"""zoo.shard: each family's FSDP wrap units, and fully_shard applied units-first, then the root."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

import zoo
from zoo.sharding import WRAP_UNITS, shard, wrap_units

SMALL = {
    "resnet18": dict(width_mult=0.25, num_classes=3),
    "seresnet18": dict(width_mult=0.25, num_classes=3),
    "mobilenetv2": dict(width_mult=0.25, num_classes=3),
    "inception": dict(width_mult=0.25, num_classes=3),
    "transformer": dict(num_classes=3),
    "lstm": dict(num_classes=3, hidden=16),
    "gcn": dict(num_classes=3, hidden=16, layers=3),
    "mlp": dict(num_classes=3, hidden=16, depth=3),
    "linear": dict(num_classes=3),
}


@pytest.fixture
def group():
    """A one-process Gloo group in this process (no spawn, no port)."""
    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
    yield
    dist.destroy_process_group()


def test_every_family_has_units():
    families = {zoo.get_entry(n).family for n in zoo.list_models()}
    assert families <= set(WRAP_UNITS), families - set(WRAP_UNITS)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_units_are_disjoint_blocks_in_forward_order(name):
    model = zoo.create(name, device="meta", **SMALL[name])
    units = wrap_units(model)
    seen: set[int] = set()
    for u in units:
        ids = {id(p) for p in u.parameters()}
        assert ids and not ids & seen, f"{name}: unit {type(u).__name__} overlaps or is empty"
        seen |= ids
    expected = {
        "resnet18": lambda: 8, "seresnet18": lambda: 8, "lstm": lambda: 1, "gcn": lambda: 3,
        "mlp": lambda: 4, "linear": lambda: 0,
        "transformer": lambda: len(model.blocks),
        "mobilenetv2": lambda: sum(len(stage) for stage in model.blocks),
        "inception": lambda: sum(1 for n in model.feature_order if n.startswith("inception")),
    }[name]()
    assert len(units) == expected
    # forward order: the named-module order of the model (children before later siblings)
    order = {id(m): i for i, m in enumerate(model.modules())}
    assert [order[id(u)] for u in units] == sorted(order[id(u)] for u in units)


def test_shard_needs_a_process_group():
    model = zoo.create("mlp", hidden=8, depth=1)
    if dist.is_initialized():
        pytest.skip("a process group already exists")
    with pytest.raises(RuntimeError, match="process group"):
        shard(model)


def test_shard_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reshard_after_forward=1 is not accepted"):
        shard(zoo.create("mlp", hidden=8, depth=1), reshard_after_forward=1)
    with pytest.raises(ValueError, match="model=str is not accepted"):
        shard("mlp")


@pytest.mark.parametrize("name", ["mlp", "gcn", "lstm", "resnet18"])
def test_sharded_model_computes_the_same(group, name):
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    torch.manual_seed(0)
    model = zoo.create(name, **SMALL[name]).train()
    ref = zoo.create(name, **SMALL[name]).train()
    ref.load_state_dict(model.state_dict())
    inputs = ref.example_inputs(2)
    units = wrap_units(model)
    out = shard(model)
    assert out is model and isinstance(model, FSDPModule)
    assert all(isinstance(u, FSDPModule) for u in units)
    assert all(isinstance(p, DTensor) for p in model.parameters())
    assert model.config == ref.config            # still a zoo model
    torch.testing.assert_close(model(*inputs), ref(*inputs))
    model(*inputs).square().mean().backward()
    ref(*inputs).square().mean().backward()
    for (k, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad.full_tensor(), q.grad, msg=k)


def test_class_units_take_precedence(group):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def fsdp_units(self):
            return [self.a]

        def forward(self, x):
            return self.b(self.a(x))

    from torch.distributed.fsdp import FSDPModule
    m = shard(Two())
    assert isinstance(m.a, FSDPModule) and not isinstance(m.b, FSDPModule)


def test_shards_follow_the_mesh():
    import math

    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        pytest.skip("a process group already exists in this test process")
    dist.init_process_group("fake", rank=1, world_size=4, store=FakeStore())
    try:
        model = zoo.create("mlp", in_features=5, hidden=10, depth=2, num_classes=3)
        shapes = {k: tuple(p.shape) for k, p in model.named_parameters()}
        shard(model, init_device_mesh("cpu", (4,)))
        for k, p in model.named_parameters():
            assert tuple(p.shape) == shapes[k]                       # global shape kept
            assert p.to_local().shape[0] <= math.ceil(shapes[k][0] / 4)   # this rank's rows
    finally:
        dist.destroy_process_group()


def test_fix_cpu_mmap_threshold_takes_effect_on_glibc_and_refuses_bad_values():
    import platform

    from zoo.distributed import fix_cpu_mmap_threshold

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert fix_cpu_mmap_threshold() is True
    for bad in (0, -1, 1.5, 2 ** 30):
        with pytest.raises(ValueError, match="threshold="):
            fix_cpu_mmap_threshold(bad)


def test_shard_refuses_a_non_boolean_fix_mmap_threshold():
    with pytest.raises(ValueError, match="fix_mmap_threshold='yes' is not accepted"):
        shard(zoo.create("mlp", hidden=8, depth=1), fix_mmap_threshold="yes")


def test_zoo_shard_stays_the_function_after_its_module_is_imported():
    # the module is zoo.sharding: importing it (as zoo.distributed.wrap does) must not rebind
    # zoo.shard to a module, as a module named zoo.shard would
    import importlib

    importlib.import_module("zoo.sharding")
    from zoo import distributed  # noqa: F401
    assert callable(zoo.shard) and zoo.shard is shard
