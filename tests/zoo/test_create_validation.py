"""Bad arguments to every registered model are refused before anything is built (issue 7, §3).

A seeded generator drives every model of ``zoo.list_models()`` through ``zoo.create``,
``zoo.from_config`` and the builder itself with bad values of each of its arguments (one at a time,
then several at once). Each call must raise ``ValueError`` whose message names a bad argument,
construct no ``nn.Module`` on the way, and return within seconds. The bad values are written here,
by kind of argument, independently of the implementation's own table; an argument this file does not
know fails the test, so a new argument cannot go unchecked.

The last part has one test per row of issue 7's table that concerns ``zoo.create``.
"""
from __future__ import annotations

import contextlib
import json
import random
import signal

import numpy as np
import pytest
import torch
import torch.nn as nn

import zoo
from tests.conftest import small_kwargs

MODELS = zoo.list_models()
NAN, INF = float("nan"), float("inf")

# What each argument is, as far as a caller can tell.
KINDS = {
    "num_classes": "size", "in_features": "size", "in_chans": "size", "img_size": "size",
    "seq_len": "size", "num_nodes": "size", "hidden": "size", "d_model": "size", "num_heads": "size",
    "vocab_size": "optional_size", "layers": "count", "depth": "count",
    "width_mult": "multiplier", "depth_mult": "multiplier", "mlp_ratio": "multiplier",
    "dropout": "fraction", "drop_rate": "fraction", "bidirectional": "bool", "se": "bool",
    "stem": "stem", "norm": "norm", "device": "device", "dtype": "dtype",
}
_NOT_INT = [1.5, 2.0, "32", b"3", True, False, NAN, INF, [4], (4,), {"n": 4}, 3 + 0j, np.float64(4.0)]
BAD = {
    "size": [0, -1, -(2**40), np.int64(0), np.int64(-3), 2**31, 2**70, None] + _NOT_INT,
    "optional_size": [0, -1, -(2**40), np.int64(0), 2**31, 2**70] + _NOT_INT,
    "count": [0, -1, np.int64(0), 1001, 10**9, None] + _NOT_INT,
    "multiplier": [0, 0.0, -1.0, -0.5, NAN, INF, -INF, np.float64(NAN), 65.0, 1e300, "1.0", None,
                   True, [1.0], 1 + 0j],
    "fraction": [-0.1, -1e-9, 1.0, 1.5, NAN, INF, np.float64(NAN), "0.1", None, True, [0.1]],
    "bool": [0, 1, 1.0, "yes", "True", None, [True], np.int64(1)],
    "stem": ["cifar", "", "Small", "IMAGENET", None, 1, True, ["small"], ("small",)],
    "norm": ["bn", "", "BatchNorm", 1, True, 0.0, ["batchnorm"]],
    "device": ["tpu", "gpu", "xla", "mps", "", "cpu:x", "cuda:99", 1, 1.5, True, ["cpu"]],
    "dtype": ["float8", "int64", "int", "", "f32", 32, True, torch.int64, torch.bool,
              torch.complex64, ["float32"]],
}
# Values bad for one model only: what its structure cannot take.
EXTRA_BAD = {
    "inception": {"img_size": list(range(1, 15))},     # pools reduce < 15 px to nothing
    "transformer": {"num_heads": [3, 5, 7, 129, 1000],  # must divide d_model = 128
                    "mlp_ratio": [1e-9, 1e-3]},         # the MLP would have no unit
}
CASE_TIMEOUT_S = 10


def _base_kwargs(name: str) -> dict:
    return small_kwargs(name, device="meta")


def _arguments(name: str) -> list[str]:
    return [*zoo.get_entry(name).defaults, "device", "dtype"]


def _bad_values(name: str, arg: str) -> list:
    return BAD[KINDS[arg]] + EXTRA_BAD.get(name, {}).get(arg, [])


def _single_cases() -> list[tuple[str, dict]]:
    return [(name, {arg: value}) for name in MODELS for arg in _arguments(name)
            for value in _bad_values(name, arg)]


def _multi_cases(count: int, seed: int = 0) -> list[tuple[str, dict]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        name = rng.choice(MODELS)
        args = rng.sample(_arguments(name), k=min(3, len(_arguments(name)), rng.randint(2, 3)))
        cases.append((name, {a: rng.choice(_bad_values(name, a)) for a in args}))
    return cases


@contextlib.contextmanager
def _deadline(seconds: int):
    def hung(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class _ModuleCounter:
    """Counts ``nn.Module.__init__`` calls: a refused call must build nothing."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = nn.Module.__init__

        def counting(module, *args, **kwargs):
            self.count += 1
            original(module, *args, **kwargs)
        monkeypatch.setattr(nn.Module, "__init__", counting)


def _call(path: str, name: str, kwargs: dict):
    if path == "create":
        return zoo.create(name, **kwargs)
    if path == "from_config":
        return zoo.from_config({"name": name, **kwargs})
    return zoo.get_entry(name).builder(**kwargs)  # the builder itself, as a direct call would


def test_every_argument_of_every_model_has_a_kind():
    unknown = {(name, arg) for name in MODELS for arg in _arguments(name) if arg not in KINDS}
    assert not unknown, f"arguments this test does not know how to break: {sorted(unknown)}"


def test_generated_bad_arguments_are_refused_naming_the_argument(monkeypatch):
    cases = _single_cases() + _multi_cases(400)
    assert len(cases) >= 1000
    paths = ("create", "from_config", "builder")
    counter = _ModuleCounter(monkeypatch)
    failures = []
    for i, (name, bad) in enumerate(cases):
        kwargs = {**_base_kwargs(name), **bad}
        path = paths[i % len(paths)]
        before = counter.count
        try:
            with _deadline(CASE_TIMEOUT_S):
                _call(path, name, kwargs)
        except ValueError as err:
            message = str(err)
            if not any(message.startswith(f"{a}=") or f" {a}=" in message for a in bad):
                failures.append(f"{path} {name} {bad!r}: message names none of them: {message}")
            elif counter.count != before:
                failures.append(f"{path} {name} {bad!r}: built {counter.count - before} modules "
                                f"before refusing")
        except Exception as err:  # noqa: BLE001 - any other exception is the failure reported
            failures.append(f"{path} {name} {bad!r}: {type(err).__name__}: {err}")
        else:
            failures.append(f"{path} {name} {bad!r}: accepted")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("name", MODELS)
def test_unknown_argument_is_named_with_the_accepted_ones(name):
    match = rf"{name}: argument\(s\) 'colour' not accepted; accepted: .*num_classes"
    with pytest.raises(ValueError, match=match):
        zoo.create(name, colour="red")
    with pytest.raises(ValueError, match=match):
        zoo.get_entry(name).builder(colour="red")  # a direct call says the same


@pytest.mark.parametrize("name", MODELS)
def test_smallest_accepted_inputs_are_processed(name):
    """Whatever create accepts, the model runs on its own example inputs (eval mode)."""
    entry = zoo.get_entry(name)
    kwargs = {k: 1 for k in ("num_classes", "in_features", "in_chans", "seq_len", "num_nodes")
              if k in entry.defaults}
    stems = ("imagenet", "small") if "stem" in entry.defaults else (None,)
    for stem in stems:
        sized = dict(kwargs)
        if stem is not None:
            sized.update(stem=stem, width_mult=0.25, depth_mult=0.25)
            sized["img_size"] = next(s for s in range(1, 64) if _accepts(name, img_size=s, stem=stem))
        model = zoo.create(name, **sized).eval()
        with torch.no_grad():
            out = model(*model.example_inputs(batch_size=2))
        assert torch.isfinite(out).all()


def _accepts(name: str, **kwargs) -> bool:
    try:
        zoo.create(name, device="meta", **kwargs)
    except ValueError:
        return False
    return True


# --- issue 7's table, one test per row about zoo.create ---------------------------------------------

@pytest.mark.parametrize("name, kwargs, match", [
    ("mlp", {"in_features": -1}, r"in_features=-1 is not accepted: expected an integer >= 1"),
    ("gcn", {"num_classes": None}, r"num_classes=None is not accepted: expected an integer"),
    ("lstm", {"seq_len": "32"}, r"seq_len='32' is not accepted: expected an integer"),
    ("mlp", {"dropout": "x"}, r"dropout='x' is not accepted: expected a finite number"),
])
def test_row_wrong_types_raise_value_error_not_torch_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.create(name, **kwargs)


@pytest.mark.parametrize("name", MODELS)
def test_row_device_tpu_is_refused(name):
    with pytest.raises(ValueError, match=r"device='tpu' is not accepted"):
        zoo.create(name, **small_kwargs(name, device="tpu"))


@pytest.mark.parametrize("name", MODELS)
def test_row_dtype_string_is_accepted_as_build_accepts_it(name):
    for text, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        model = zoo.create(name, **small_kwargs(name, dtype=text, device="meta"))
        assert {p.dtype for p in model.parameters()} == {dtype}
        assert "dtype" not in model.config
        assert model.config == zoo.create(name, **small_kwargs(name, device="meta")).config


ZERO_ROWS = [(name, arg) for name in ("gcn", "linear", "lstm", "mlp", "transformer")
             for arg in ("num_classes", "in_features", "hidden") if arg in zoo.get_entry(name).defaults]


@pytest.mark.parametrize("name, arg", ZERO_ROWS)
def test_row_zero_sizes_are_refused(name, arg):
    with pytest.raises(ValueError, match=rf"{arg}=0 is not accepted"):
        zoo.create(name, **{arg: 0})


DEPTH_ROWS = [(name, arg, value) for name in MODELS for arg in ("layers", "depth")
              if arg in zoo.get_entry(name).defaults for value in (0, -1)]


@pytest.mark.parametrize("name, arg, value", DEPTH_ROWS)
def test_row_depth_is_refused_not_clamped(name, arg, value):
    with pytest.raises(ValueError, match=rf"{arg}={value} is not accepted"):
        zoo.create(name, **{arg: value})
    assert zoo.create(name, device="meta", **{arg: 1}).config[arg] == 1


def test_row_nan_multiplier_is_refused_and_configs_are_strict_json():
    for arg in ("width_mult", "depth_mult"):
        with pytest.raises(ValueError, match=rf"{arg}=nan is not accepted"):
            zoo.create("linear", **{arg: NAN})
    for name in MODELS:
        config = zoo.create(name, device="meta").config
        assert json.loads(json.dumps(config, allow_nan=False)) == config


@pytest.mark.parametrize("name, kwargs, match", [
    ("inception", {"img_size": 3}, r"img_size=3 is not accepted: expected an integer >= 15"),
    ("lstm", {"seq_len": 1.5}, r"seq_len=1.5 is not accepted"),
])
def test_row_inputs_the_model_cannot_process_are_refused_at_create(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.create(name, **kwargs)
