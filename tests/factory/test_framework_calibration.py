"""The CPU framework constants, measured once per machine (:mod:`zoo.factory.framework_calibration`).

The measurement is real (two probe processes); it is cached under the user's cache folder and read
back in a new process without probing; another machine key, a corrupt file or a probe that cannot
run give a new measurement or the defaults, never an error.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoo.factory import framework_calibration as fc
from zoo.factory.train_step import MiB


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    fc._MEMO.clear()
    yield tmp_path
    fc._MEMO.clear()


def test_measured_once_cached_and_read_back_in_a_new_process(tmp_path):
    constants = fc.cpu_framework_constants()
    assert set(constants) == {"base", "convolution"}
    # a tiny step pages in megabytes of library code, not hundreds
    assert 1 * MiB < constants["base"] < 100 * MiB
    assert 0 <= constants["convolution"] < 100 * MiB
    files = list((tmp_path / "machine").glob("framework-*.json"))
    assert len(files) == 1
    entry = json.loads(files[0].read_text())
    assert entry["machine"] == fc.machine_key() and entry["constants"] == constants
    code = ("import json; from zoo.factory import framework_calibration as fc\n"
            "fc.measure = lambda: (_ for _ in ()).throw(AssertionError('probed again'))\n"
            "print(json.dumps(fc.cpu_framework_constants()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == constants


def test_another_machine_key_or_a_corrupt_file_is_measured_again(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(fc, "measure", lambda: calls.append(1) or {"base": 5, "convolution": 6})
    path = fc._path(fc.machine_key())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert fc.cpu_framework_constants() == {"base": 5, "convolution": 6} and len(calls) == 1
    fc._MEMO.clear()
    path.write_text(json.dumps({"machine": {**fc.machine_key(), "kernel": "other"},
                                "constants": {"base": 1, "convolution": 1}}))
    assert fc.cpu_framework_constants() == {"base": 5, "convolution": 6} and len(calls) == 2
    fc._MEMO.clear()
    assert fc.cpu_framework_constants() == {"base": 5, "convolution": 6} and len(calls) == 2
    path.unlink()   # a new cache folder: the constants this process holds are written there
    assert fc.cpu_framework_constants() == {"base": 5, "convolution": 6} and len(calls) == 2
    assert json.loads(path.read_text())["constants"] == {"base": 5, "convolution": 6}


def test_a_probe_that_cannot_run_gives_the_defaults_and_writes_nothing(monkeypatch, tmp_path):
    calls = []

    def fail(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("memory probe failed (exit 1)")

    monkeypatch.setattr("zoo.factory.memprobe.measure_training_memory", fail)
    assert fc.cpu_framework_constants() == fc.DEFAULTS
    assert not list(tmp_path.glob("**/framework-*.json"))
    probed = len(calls)
    assert fc.cpu_framework_constants() == fc.DEFAULTS   # not probed again by every estimate
    assert len(calls) == probed and not list(tmp_path.glob("**/framework-*.json"))


@pytest.mark.parametrize("constants", [
    {"base": -1, "convolution": 6}, {"base": "5", "convolution": 6}, {"base": 5},
    {"base": 5.5, "convolution": 6}, [5, 6]])
def test_a_stored_entry_that_is_not_two_non_negative_integers_is_measured_again(
        monkeypatch, constants):
    monkeypatch.setattr(fc, "measure", lambda: {"base": 5, "convolution": 6})
    path = fc._path(fc.machine_key())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"machine": fc.machine_key(), "constants": constants}))
    assert fc.cpu_framework_constants() == {"base": 5, "convolution": 6}
    assert json.loads(path.read_text())["constants"] == {"base": 5, "convolution": 6}


def test_the_estimate_uses_this_machines_constants(monkeypatch):
    import zoo
    from zoo.factory import training_memory

    monkeypatch.setattr(fc, "measure", lambda: {"base": 7 * MiB, "convolution": 3 * MiB})
    training_memory._MEMORY_CACHE.clear()
    lin = zoo.create("linear", device="meta", in_features=8, num_classes=2).config
    cnn = zoo.create("resnet18", device="meta", width_mult=0.25, img_size=32, num_classes=2).config
    assert training_memory.estimate_training_memory(lin, batch_size=4).framework == 7 * MiB
    assert training_memory.estimate_training_memory(cnn, batch_size=2).framework == 10 * MiB
    training_memory._MEMORY_CACHE.clear()
