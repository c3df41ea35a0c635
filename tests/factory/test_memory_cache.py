"""Training-memory estimates cached across processes (:mod:`zoo.factory.trace_cache`).

A cached estimate is read back, in this process or a new one, without tracing (the tracer is made
to fail); a change of torch's, zoo's or the estimator's version, or a corrupt entry, makes the
estimate traced again and the entry rewritten. Every test points the cache at its own tmp_path.
"""
from __future__ import annotations

import json
from dataclasses import asdict
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo.factory import (framework_calibration, latency_model, step_trace, trace_cache,
                         training_memory, user_cache)
from zoo.factory.training_memory import estimate_training_memory


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    training_memory._MEMORY_CACHE.clear()
    yield tmp_path / "memory"
    training_memory._MEMORY_CACHE.clear()


@pytest.fixture
def traces(monkeypatch):
    """Counts the fake traces made from now on (the machine's framework constants, whose
    measurement traces two tiny steps of its own, are measured first)."""
    framework_calibration.cpu_framework_constants()
    calls = []
    real = step_trace.fake_trace

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training_memory, "fake_trace", counting)
    return calls


def _config():
    return zoo.create("mlp", device="meta", in_features=32, hidden=64, num_classes=4).config


def _forget_in_process():
    training_memory._MEMORY_CACHE.clear()


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    """One place decides the folder; the memory and latency caches keep sub-folders of it."""
    assert user_cache.cache_dir("memory") == tmp_path / "memory"
    assert trace_cache._path("k").parent == tmp_path / "memory"
    assert latency_model.LatencyModel("cpu", 2).path.parent == tmp_path / "latency"
    monkeypatch.delenv("ZOO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache.cache_dir() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.cache_dir("memory") == tmp_path / "home" / ".cache" / "zoo" / "memory"


def test_an_estimate_is_read_back_without_tracing(cache_folder, traces):
    first = estimate_training_memory(_config(), batch_size=16)
    assert len(traces) == 1 and len(list(cache_folder.glob("*.json"))) == 1
    _forget_in_process()
    again = estimate_training_memory(_config(), batch_size=16)
    assert len(traces) == 1 and again is not first and again == first
    # another batch size, optimizer or dtype is another entry
    estimate_training_memory(_config(), batch_size=32)
    estimate_training_memory(_config(), batch_size=16, optimizer="sgd")
    estimate_training_memory(_config(), batch_size=16, dtype="bfloat16")
    assert len(traces) == 4 and len(list(cache_folder.glob("*.json"))) == 4


def test_a_new_process_reads_the_cache_without_tracing(cache_folder):
    first = estimate_training_memory(_config(), batch_size=16)
    code = textwrap.dedent(f"""
        import json, zoo
        from zoo.factory import training_memory
        def no_trace(*a, **k):
            raise AssertionError("traced although cached")
        training_memory.fake_trace = no_trace
        cfg = zoo.create("mlp", device="meta", in_features=32, hidden=64, num_classes=4).config
        print(json.dumps(training_memory.estimate_training_memory(cfg, batch_size=16).to_dict()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == json.loads(json.dumps(first.to_dict()))


@pytest.mark.parametrize("which", ["torch", "zoo", "estimator"])
def test_a_version_change_invalidates(which, monkeypatch, cache_folder, traces):
    estimate_training_memory(_config(), batch_size=16)
    _forget_in_process()
    if which == "torch":
        monkeypatch.setattr(trace_cache.torch, "__version__", "0.0.0-other")
    elif which == "zoo":
        monkeypatch.setattr(trace_cache.zoo, "__version__", "0.0.0-other")
    else:
        monkeypatch.setattr(trace_cache, "ESTIMATOR_VERSION", trace_cache.ESTIMATOR_VERSION + 1)
    estimate_training_memory(_config(), batch_size=16)
    assert len(traces) == 2
    assert len(list(cache_folder.glob("*.json"))) == 2  # the new key's entry beside the old


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"key": "other"}',
                                     b"\xff\xfe", "truncated"])
def test_a_corrupt_entry_is_ignored_and_rewritten(content, cache_folder, traces):
    good = estimate_training_memory(_config(), batch_size=16)
    (entry,) = cache_folder.glob("*.json")
    text = entry.read_bytes()
    entry.write_bytes(text[: len(text) // 2] if content == "truncated" else content)
    _forget_in_process()
    again = estimate_training_memory(_config(), batch_size=16)
    assert len(traces) == 2 and again == good
    assert json.loads(entry.read_text())["estimate"] == json.loads(json.dumps(asdict(good)))


def test_an_entry_with_wrong_fields_is_ignored(cache_folder, traces):
    estimate_training_memory(_config(), batch_size=16)
    (entry,) = cache_folder.glob("*.json")
    data = json.loads(entry.read_text())
    data["estimate"]["total"] = -5
    entry.write_text(json.dumps(data))
    _forget_in_process()
    assert estimate_training_memory(_config(), batch_size=16).total > 0
    assert len(traces) == 2


def test_no_temporary_files_are_left(cache_folder):
    estimate_training_memory(_config(), batch_size=16)
    assert [p.name for p in Path(cache_folder).iterdir() if p.name.endswith(".json")] \
        == [p.name for p in Path(cache_folder).iterdir()]
