"""Shared helpers: small, fast instances of every registered model for the registry-driven tests."""
from __future__ import annotations

import os

import pytest
import torch

import zoo

NUM_CLASSES = 5

# Inputs small enough that the whole registry runs in seconds on 2 CPU cores, large enough that
# every stage of every network still sees a spatial map / sequence / graph of size > 1.
SMALL_INPUT = {
    # Half width: the full-width ResNet-101s dominate the suite's time; parity tests cover width 1.
    "image": {"img_size": 64, "width_mult": 0.5},
    "tabular": {"in_features": 12},
    "sequence": {"in_features": 6, "seq_len": 12},
    "graph": {"in_features": 10},
}


def small_kwargs(name: str, **overrides) -> dict:
    """Arguments building ``name`` at test size with ``NUM_CLASSES`` outputs."""
    entry = zoo.get_entry(name)
    kw = {"num_classes": NUM_CLASSES, **SMALL_INPUT[entry.input_kind]}
    kw = {k: v for k, v in kw.items() if k in entry.defaults}
    kw.update(overrides)
    return kw


def build_small(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create(name, **small_kwargs(name, **overrides))


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The suite's caches (memory traces, latency fits) live in a fresh folder, never the user's:
    a test run neither reads a developer's earlier measurements nor leaves its own behind."""
    saved = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(tmp_path_factory.mktemp("zoo-cache"))
    yield
    if saved is None:
        os.environ.pop("ZOO_CACHE_DIR", None)
    else:
        os.environ["ZOO_CACHE_DIR"] = saved
