"""Atomic writes (zoo/atomic.py): temporary files are named after their target, in its folder; a
writer killed mid-write never leaves a broken target, and the next write to that target removes the
temporary files such writers left (issue 7, section 3: the SIGKILL row)."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import zoo
from zoo import atomic


def _temp_re(target: Path, pid: int | str = r"\d+") -> re.Pattern:
    return re.compile(rf"\.{re.escape(target.name)}\.(?P<pid>{pid})\.[a-z0-9]{{8}}\.tmp"
                      rf"(\.[A-Za-z0-9_+-]+)?")


def _others(folder: Path, target: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n != target.name)


# ---- in-process behaviour ------------------------------------------------------------------------

def test_temp_file_is_named_after_its_target_in_its_folder(tmp_path):
    target = tmp_path / "model.safetensors"
    with atomic.atomic_path(target, suffix=".safetensors") as tmp:
        assert tmp.parent == tmp_path
        assert _temp_re(target, os.getpid()).fullmatch(tmp.name), tmp.name
        assert tmp.name.endswith(".safetensors")  # writers that read the format from the name
        tmp.write_bytes(b"x")
        assert not target.exists()
    assert target.read_bytes() == b"x"
    assert _others(tmp_path, target) == []
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_removes_its_temp_file_and_keeps_the_target(tmp_path):
    target = tmp_path / "a.txt"
    atomic.write_text_atomic(target, "good")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "good"
    assert _others(tmp_path, target) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_write_removes_only_stale_temp_files(tmp_path):
    target = tmp_path / "m.onnx"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        dead = tmp_path / atomic.temp_name(target.name, _dead_pid(), "dead0000", ".onnx")
        alive = tmp_path / atomic.temp_name(target.name, live.pid, "live0000", ".onnx")
        reused = tmp_path / atomic.temp_name(target.name, live.pid, "reus0000", ".onnx")
        other_target = tmp_path / atomic.temp_name("other.onnx", _dead_pid(), "othe0000")
        for p in (dead, alive, reused, other_target):
            p.write_bytes(b"partial")
        # Written an hour before the process now holding its pid started: a reused pid.
        hour_ago = time.time() - 3600
        os.utime(reused, (hour_ago, hour_ago))
        assert sorted(atomic.stale_temp_files(target)) == sorted([dead, reused])
        atomic.write_text_atomic(target, "new")
        left = _others(tmp_path, target)
        assert left == sorted([alive.name, other_target.name])  # a live writer's, another target's
    finally:
        live.kill()
        live.wait()
    atomic.write_text_atomic(target, "newer")  # its writer is gone now
    assert _others(tmp_path, target) == [other_target.name]


def test_concurrent_writers_in_one_process_keep_each_others_temp_files(tmp_path):
    target = tmp_path / "t.bin"
    inside, release, errors = threading.Event(), threading.Event(), []

    def slow_writer():
        try:
            with atomic.atomic_path(target) as tmp:
                tmp.write_bytes(b"slow")
                inside.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert inside.wait(30)
    atomic.write_bytes_atomic(target, b"fast")  # must not take the slow writer's temp file
    assert len([n for n in _others(tmp_path, target) if _temp_re(target).fullmatch(n)]) == 1
    release.set()
    t.join(30)
    assert not errors and target.read_bytes() == b"slow"
    assert _others(tmp_path, target) == []


@pytest.mark.parametrize("kwargs, argument", [
    (dict(path=None), "path="), (dict(path=3), "path="), (dict(path=""), "path="),
    (dict(path="x.bin", suffix="png"), "suffix="), (dict(path="x.bin", suffix="./a"), "suffix="),
    (dict(path="no/such/folder/x.bin"), "path="),
])
def test_bad_arguments_are_named(tmp_path, monkeypatch, kwargs, argument):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=re.escape(argument)):
        with atomic.atomic_path(**kwargs):
            raise AssertionError("never reached")


def test_a_folder_is_not_a_target(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="path=.*is a folder"):
        with atomic.atomic_path(tmp_path / "d"):
            raise AssertionError("never reached")


# ---- SIGKILL mid-write ---------------------------------------------------------------------------

_CHILD = """
import sys, torch, zoo
name, target, kind = sys.argv[1], sys.argv[2], sys.argv[3]
kw = {"img_size": 64} if kind == "onnx" else {}
model = zoo.create(name, **kw)
while True:  # write again and again: the parent kills it at some point of some write
    if kind == "onnx":
        zoo.export_onnx(model, target)
    else:
        zoo.save(model, target)
"""


def _kill_mid_write(name: str, target: Path, kind: str, delay: float) -> int:
    """Start a writer, SIGKILL it ``delay`` s after its temp file appears; return its pid."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, name, str(target), kind],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pattern = _temp_re(target, proc.pid)
    deadline = time.monotonic() + 240  # a hang guard, not a timing check
    try:
        while not any(pattern.fullmatch(n) for n in os.listdir(target.parent)):
            if proc.poll() is not None:
                raise AssertionError(f"writer exited: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the writer's temp file never appeared")
            time.sleep(0.002)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        return proc.pid
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _check_after_kills(folder: Path, target: Path, pids: list[int], verify) -> list[str]:
    """The target is absent or whole; every other file is a temp file of the target by a killed pid."""
    if target.exists():
        verify(target)
    left = _others(folder, target)
    for n in left:
        m = _temp_re(target).fullmatch(n)
        assert m, f"{n!r} is not named after {target.name!r}"
        assert int(m.group("pid")) in pids, f"{n!r} was not left by a killed writer {pids}"
    return left


def test_sigkill_during_save_of_resnet50(tmp_path):
    target = tmp_path / "model.safetensors"
    rng = random.Random(7)
    pids = [_kill_mid_write("resnet50", target, "save", delay)
            for delay in (0.0, rng.uniform(0, 0.05), rng.uniform(0.05, 0.5))]

    def verify(p):
        loaded = zoo.load(p)
        assert loaded.config["name"] == "resnet50"

    left = _check_after_kills(tmp_path, target, pids, verify)
    assert left, "no kill landed inside a write: nothing was tested"
    # The next write to the target removes what the killed writers left.
    torch.manual_seed(0)
    zoo.save(zoo.create("mlp", in_features=3, hidden=4), target)
    assert _others(tmp_path, target) == []
    assert zoo.load(target).config["name"] == "mlp"


def test_sigkill_during_export_onnx(tmp_path):
    import onnx

    target = tmp_path / "model.onnx"
    pids = [_kill_mid_write("resnet18", target, "onnx", 0.0)]

    def verify(p):
        onnx.checker.check_model(onnx.load(str(p)))
        assert zoo.read_onnx_metadata(p)["config"]["name"] == "resnet18"

    left = _check_after_kills(tmp_path, target, pids, verify)
    assert left, "no kill landed inside a write: nothing was tested"
    zoo.export_onnx(zoo.create("linear", in_features=3), target)
    assert _others(tmp_path, target) == []
    assert zoo.read_onnx_metadata(target)["config"]["name"] == "linear"
