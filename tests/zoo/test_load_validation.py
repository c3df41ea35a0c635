"""zoo.load refuses every bad file with a ModelFileError naming it, and bad arguments with a
ValueError naming the argument (issue 7, section 3: the zoo.load rows).

One test per row of the issue's table, a round trip of every registered model (the bounds never
refuse a good file), and a seeded generator of several hundred corrupted files and bad arguments.
"""
from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn.modules import module as torch_module

import zoo
import zoo.io as zio
from tests.conftest import build_small


def _write(path: Path, state: dict, meta: dict) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
    return path


def _meta(config: dict, **extra) -> dict:
    return {"zoo.format": "1", "zoo.config": json.dumps(config), **extra}


@contextlib.contextmanager
def _registrations():
    """Count parameters, buffers and modules registered by this thread (torch's global hooks)."""
    me, count = threading.get_ident(), [0]

    def hook(*_):
        if threading.get_ident() == me:
            count[0] += 1

    handles = [torch_module.register_module_parameter_registration_hook(hook),
               torch_module.register_module_buffer_registration_hook(hook),
               torch_module.register_module_module_registration_hook(hook)]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _hang_guard(seconds: int):
    """Fail (instead of hanging the suite) if the block runs past ``seconds``; not a timing check."""
    def on_alarm(*_):
        raise TimeoutError(f"zoo.load hung: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    torch.manual_seed(0)
    model = zoo.create("mlp", in_features=6, num_classes=3, hidden=16)
    path = tmp_path_factory.mktemp("good") / "mlp.safetensors"
    zoo.save(model, path)
    return path, model


# ---- one test per zoo.load row of issue 7's table ----------------------------------------------

@pytest.mark.parametrize("config", [
    {"name": "mlp", "in_features": 6, "num_classes": 3, "hidden": 16, "bogus": 1},
    {"name": "no-such-model"},
    {"name": "mlp", "in_features": "six", "num_classes": 3, "hidden": 16},
    {"name": "mlp", "in_features": 6, "num_classes": 3, "hidden": -16},
])
def test_row_config_cannot_be_built(tmp_path, mlp_file, config):
    state = load_file(str(mlp_file[0]))
    path = _write(tmp_path / "bad_config.safetensors", state, _meta(config))
    with pytest.raises(zoo.ModelFileError, match="bad_config.safetensors") as info:
        zoo.load(path)
    assert str(path) in str(info.value)


def test_row_builder_runtime_error_becomes_model_file_error(tmp_path, mlp_file, monkeypatch):
    """Whatever a builder raises (torch's RuntimeError included), load names the file."""
    def boom(config, **kw):
        raise RuntimeError("negative dimension -16")

    monkeypatch.setattr(zio, "from_config", boom)
    with pytest.raises(zoo.ModelFileError, match=r"cannot be built.*RuntimeError.*negative") as info:
        zoo.load(mlp_file[0])
    assert str(mlp_file[0]) in str(info.value)


@pytest.mark.parametrize("spec", ["{not json", "[1, 2]", '"a string"'])
def test_row_spec_not_json(tmp_path, mlp_file, spec):
    state = load_file(str(mlp_file[0]))
    path = _write(tmp_path / "bad_spec.safetensors", state, _meta(mlp_file[1].config, **{"zoo.spec": spec}))
    with pytest.raises(zoo.ModelFileError, match=r"bad_spec\.safetensors.*'zoo\.spec'"):
        zoo.load(path)


@pytest.mark.parametrize("version", ["999", "0", "", "1.0", None])
def test_row_unknown_format_version(tmp_path, mlp_file, version):
    state = load_file(str(mlp_file[0]))
    meta = _meta(mlp_file[1].config)
    if version is None:
        del meta["zoo.format"]
    else:
        meta["zoo.format"] = version
    path = _write(tmp_path / "future.safetensors", state, meta)
    with pytest.raises(zoo.ModelFileError, match=r"future\.safetensors.*not a known format version "
                                                  r"\(known: 1\)"):
        zoo.load(path)


@pytest.mark.parametrize("name", zoo.list_models())
def test_row_small_file_with_huge_depth_is_refused_before_building(tmp_path, name):
    """A ~1 KB file saying depth_mult=1e5: refused after a bounded number of registrations (the
    file's tensor count sets the bound), never by building the millions of layers it describes."""
    config = dict(zoo.create(name, device="meta").config, depth_mult=1e5)
    path = _write(tmp_path / "huge.safetensors", {"head.weight": torch.zeros(2, 2)}, _meta(config))
    assert path.stat().st_size < 2048
    with _registrations() as count, _hang_guard(60):
        with pytest.raises(zoo.ModelFileError, match=r"huge\.safetensors"):
            zoo.load(path)
    bound = (zio._TENSOR_SLACK + zio._MODULE_SLACK) * 1 + 2 * zio._CONSTANT_SLACK + 2
    assert count[0] <= bound, f"{name}: {count[0]} registrations, the rule allows {bound}"


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if zoo.get_entry(n).scales_depth])
def test_build_is_bounded_by_the_file_even_for_accepted_multipliers(tmp_path, name):
    """depth_mult=16 is a valid argument (the builders accept it), so only the file-size rule can
    stop the build: the registrations stay within the bound the file's one tensor sets."""
    config = dict(zoo.create(name, device="meta").config, depth_mult=16.0)
    path = _write(tmp_path / "deep.safetensors", {"head.weight": torch.zeros(2, 2)}, _meta(config))
    with _registrations() as count, _hang_guard(60):
        with pytest.raises(zoo.ModelFileError, match=r"deep\.safetensors") as info:
            zoo.load(path)
    bound = (zio._TENSOR_SLACK + zio._MODULE_SLACK) * 1 + 2 * zio._CONSTANT_SLACK + 2
    assert count[0] <= bound, f"{name}: {count[0]} registrations, the rule allows {bound}"
    if name == "resnet50":  # 16x its 16 bottlenecks: far more layers than the bound lets it build
        assert "describes a larger model than the file holds" in str(info.value)


# ---- the bounds never refuse a good file ---------------------------------------------------------

@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_round_trips(tmp_path, name):
    extra = {"depth_mult": 2.0} if name in ("resnet18", "mlp", "lstm", "transformer", "gcn") else {}
    model = build_small(name, **extra)
    path = zoo.save(model, tmp_path / f"{name}.safetensors")
    loaded = zoo.load(path)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_spec_round_trips(tmp_path, mlp_file):
    model = mlp_file[1]
    model.spec = {"task": "tabular-classification", "budget": {"vram_gb": 1.5}}
    try:
        path = zoo.save(model, tmp_path / "spec.safetensors")
    finally:
        del model.spec
    assert zoo.load(path).spec == {"task": "tabular-classification", "budget": {"vram_gb": 1.5}}


# ---- seeded generator: >= 300 bad files and bad arguments ----------------------------------------

_BASES = {  # small models of every input kind; resnet18 brings BatchNorm's int64 buffers
    "mlp": dict(in_features=6, num_classes=3, hidden=16),
    "linear": dict(in_features=5, num_classes=2),
    "lstm": dict(in_features=4, seq_len=6, num_classes=2, hidden=8),
    "gcn": dict(in_features=5, num_classes=3, hidden=8),
    "transformer": dict(in_features=4, seq_len=8, num_classes=2, d_model=16, num_heads=2, depth=1),
    "resnet18": dict(num_classes=3, img_size=32, width_mult=0.25),
}


def _bases(folder: Path) -> dict[str, tuple[bytes, dict, dict]]:
    out = {}
    for name, kw in _BASES.items():
        torch.manual_seed(0)
        model = zoo.create(name, **kw)
        path = zoo.save(model, folder / f"{name}.safetensors")
        out[name] = (path.read_bytes(), load_file(str(path)), dict(model.config))
    return out


def _flip_positions(data: bytes) -> list[int]:
    """Byte offsets whose change must break the file: the 8-byte header length and the tensor
    descriptions in the header JSON (not the free-form metadata values, where a changed digit can
    be another valid config, and not the trailing space padding, where a tab is still JSON)."""
    n = int.from_bytes(data[:8], "little")
    text = data[8:8 + n].decode("utf-8")
    start = text.index('"__metadata__"')
    value_at = text.index("{", start)
    _, end = json.JSONDecoder().raw_decode(text, value_at)
    if text[end] == ",":
        end += 1
    elif text[start - 1] == ",":
        start -= 1
    last = text.rstrip(" ").rindex("}")
    keep = [i for i in range(len(text)) if (i < start or i >= end) and i <= last]
    # Positions are in characters; the header is ASCII (json.dumps escapes), so bytes = characters.
    assert len(text) == n
    return list(range(8)) + [8 + i for i in keep]


def _cases(rng: random.Random, bases: dict, folder: Path):
    """Yield (label, path or None, call) where ``call()`` must raise; the label names the case."""
    counter = iter(range(10**6))

    def new_path():
        return folder / f"case{next(counter):04d}.safetensors"

    names = list(bases)
    for _ in range(60):  # truncated anywhere
        name = rng.choice(names)
        data = bases[name][0]
        p = new_path()
        p.write_bytes(data[:rng.randrange(len(data))])
        yield f"truncated {name}", p
    for _ in range(80):  # one header byte flipped
        name = rng.choice(names)
        data = bytearray(bases[name][0])
        pos = rng.choice(_flip_positions(bytes(data)))
        data[pos] ^= rng.randrange(1, 256)
        p = new_path()
        p.write_bytes(bytes(data))
        yield f"flipped byte {pos} of {name}", p
    for _ in range(30):  # one tensor of another dtype
        name = rng.choice(names)
        _, state, config = bases[name]
        state = dict(state)
        key = rng.choice(sorted(state))
        options = [d for d in (torch.float16, torch.float64, torch.bfloat16, torch.int32, torch.int8,
                               torch.uint8, torch.bool, torch.int64) if d != state[key].dtype]
        state[key] = state[key].to(rng.choice(options))
        yield f"{name} {key} as {state[key].dtype}", _write(new_path(), state, _meta(config))
    for i in range(40):  # wrong shapes, missing, extra and renamed tensors
        name = rng.choice(names)
        _, state, config = bases[name]
        state = dict(state)
        key = rng.choice(sorted(state))
        kind = i % 4
        if kind == 0:
            t = state[key]
            state[key] = torch.zeros(tuple(t.shape) + (2,), dtype=t.dtype) if t.dim() < 4 \
                else t.flatten()
        elif kind == 1:
            del state[key]
        elif kind == 2:
            state["extra.weight"] = torch.zeros(3)
        else:
            state[key + "_renamed"] = state.pop(key)
        yield f"{name} shape/name change {kind} of {key}", _write(new_path(), state, _meta(config))
    bad_configs = ['{"name": "mlp"', "[]", "3", '"mlp"', "null", "{}", '{"name": 3}',
                   '{"name": null}', '{"name": "nope"}', "NaN", '{"name": "mlp", "hidden": NaN}',
                   '{"name": "mlp", "in_features": 0}', '{"name": "mlp", "in_features": -1}',
                   '{"name": "mlp", "in_features": 1e400}', '{"name": "mlp", "depth": "2"}',
                   '{"name": "mlp", "dropout": "x"}', '{"name": "mlp", "width_mult": 0}',
                   '{"name": "lstm", "seq_len": 1.5}', '{"name": "mlp", "device": "tpu"}',
                   "[" * 100000 + "]" * 100000, ""]
    for i in range(66):  # bad metadata JSON and bad config values
        name = rng.choice(names)
        _, state, config = bases[name]
        meta = _meta(config)
        which = i % 3
        if which == 0:
            meta["zoo.config"] = bad_configs[(i // 3) % len(bad_configs)]
        elif which == 1:
            meta["zoo.spec"] = rng.choice(["{", "[]", "1", "true", '"x"', "{'a': 1}", "\x00"])
        else:
            meta.pop(rng.choice(["zoo.config", "zoo.format"]))
            meta["zoo.format" if "zoo.format" not in meta and rng.random() < 0.5 else "other"] = \
                rng.choice(["999", "2", "v1", " 1", "1 "])
        yield f"{name} bad metadata {which}: {str(meta)[:60]}", _write(new_path(), state, meta)
    keys = ["depth_mult", "width_mult", "hidden", "in_features", "num_classes", "layers", "depth",
            "img_size", "seq_len", "d_model", "num_heads", "vocab_size", "num_nodes"]
    for _ in range(50):  # absurd sizes in an otherwise small file
        name = rng.choice(names)
        _, state, config = bases[name]
        key = rng.choice([k for k in keys if k in config])
        value = rng.choice([1e5, 1e9, 1e15, 1e300, 10**6, 10**9, 10**18, 10**30, -(10**9)])
        yield f"{name} {key}={value}", _write(new_path(), state, _meta(dict(config, **{key: value})))


_BAD_ARGS = [(dict(path=v), "path=") for v in
             (None, 0, 1.5, b"x.safetensors", [], {}, object(), "", "a\0b", True)] + \
            [(dict(device=v), "device=") for v in
             ("tpu", 3, "cuda:99", "float32", torch.float32, [], "cpu:x", "")]


def test_generated_bad_files_and_arguments(tmp_path):
    rng = random.Random(20260729)
    bases = _bases(tmp_path)
    cases = list(_cases(rng, bases, tmp_path))
    # Files that do not exist or are folders.
    cases += [(f"missing {i}", tmp_path / f"missing{i}.safetensors") for i in range(5)]
    cases += [("a folder", tmp_path)]
    failures, n = [], 0
    with _hang_guard(300):
        for label, path in cases:
            n += 1
            try:
                zoo.load(path)
            except zoo.ModelFileError as exc:
                if str(path) not in str(exc):
                    failures.append(f"{label}: message does not name the file: {exc}")
            except BaseException as exc:  # noqa: BLE001 - every other outcome is a failure here
                failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
            else:
                failures.append(f"{label}: loaded")
        good = next(iter(bases))
        for kwargs, argument in _BAD_ARGS * 2:
            n += 1
            call = {"path": tmp_path / f"{good}.safetensors", **kwargs}
            try:
                zoo.load(call.pop("path"), **call)
            except zoo.ModelFileError as exc:
                failures.append(f"{kwargs}: a bad argument, not a bad file: {exc}")
            except ValueError as exc:
                if argument not in str(exc):
                    failures.append(f"{kwargs}: message does not name {argument}: {exc}")
            except BaseException as exc:  # noqa: BLE001
                failures.append(f"{kwargs}: {type(exc).__name__}: {str(exc)[:200]}")
            else:
                failures.append(f"{kwargs}: accepted")
    assert n >= 300
    assert not failures, f"{len(failures)} of {n} cases:\n" + "\n".join(failures[:40])


def test_flip_positions_exclude_metadata_values(tmp_path, mlp_file):
    data = mlp_file[0].read_bytes()
    n = int.from_bytes(data[:8], "little")
    config_at = 8 + data[8:8 + n].decode().index("hidden")
    positions = set(_flip_positions(data))
    assert config_at not in positions and 0 in positions
    assert len(positions) > 8 + len(mlp_file[1].state_dict())
