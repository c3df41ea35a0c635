"""Atomic file writing: write beside the target, fsync, then rename over it.

A failure at any point removes the temporary file and leaves an existing target untouched, so a
good file is never replaced by a broken one.

Temporary files are named after their target, in the target's folder::

    <folder>/.<target name>.<pid>.<random>.tmp[<suffix>]     e.g. .model.safetensors.4211.k3x9q2ab.tmp

so whoever finds one knows which file it belonged to and which process wrote it. A process killed
mid-write (SIGKILL, power loss) cannot remove its own; the next write to the same target does:
before it starts, it removes every temporary file of that target whose writer is gone (see
:func:`stale_temp_files`). Temporary files of live writers are left alone, so two processes
writing one target concurrently do not break each other (the last rename wins, both files are whole).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

_TOKEN_LEN = 8
# An extension a writer needs to see (".png" for matplotlib): a dot and a few name characters.
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9_+-]{1,16}")


def temp_name(target_name: str, pid: int, token: str, suffix: str = "") -> str:
    """The temporary file name for ``target_name``: ``.<name>.<pid>.<token>.tmp<suffix>``."""
    return f".{target_name}.{pid}.{token}.tmp{suffix}"


def _temp_pattern(target_name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(target_name)}\.(\d+)\.([a-z0-9]{{{_TOKEN_LEN}}})\.tmp"
                      rf"(?:\.[A-Za-z0-9_+-]{{1,16}})?")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def _process_start_time(pid: int) -> float | None:
    """Wall-clock start time of process ``pid`` (Linux ``/proc``), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        # Field 22 of stat (starttime, clock ticks since boot); fields[0] is field 3.
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temporary files of ``path`` (named by :func:`temp_name`, in its folder) whose writer is gone.

    A writer is gone when no process has its pid, or when the process holding that pid now started
    after the file was last modified (the pid was reused; known on Linux through ``/proc``). The
    calling process's own live writes are never stale. Writers on other machines sharing the folder
    (network file systems) cannot be told apart by pid: do not share a target across machines.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    pattern = _temp_pattern(target.name)
    stale = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            if _key(Path(entry.path)) in _ACTIVE:
                continue
            stale.append(Path(entry.path))  # a write of this very process that did not finish
            continue
        if not _pid_alive(pid):
            stale.append(Path(entry.path))
            continue
        started = _process_start_time(pid)
        try:
            modified = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if started is not None and started > modified + 1.0:
            stale.append(Path(entry.path))
    return stale


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the stale temporary files of ``path`` (see :func:`stale_temp_files`); return them."""
    removed = []
    for p in stale_temp_files(path):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            p.unlink()
            removed.append(p)
    return removed


# Temporary files this process is writing now (threads of one process share a pid), by real path.
_ACTIVE: set[str] = set()


def _key(p: Path) -> str:
    return os.path.join(os.path.realpath(p.parent), p.name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (named after it); on success it is renamed onto ``path``.

    Writers that only take a file name (safetensors, ONNX, matplotlib) write to the yielded path.
    ``suffix`` (e.g. ``".png"``) ends the temporary name, for writers that read the format from it.
    Stale temporary files of ``path`` left by killed writers are removed first.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(os.fspath(path)):
        raise ValueError(f"path={path!r} is not accepted: expected a non-empty str or os.PathLike")
    if suffix is not None and not (isinstance(suffix, str) and _SUFFIX_RE.fullmatch(suffix)):
        raise ValueError(f"suffix={suffix!r} is not accepted: expected None or an extension such "
                         f"as '.png' (a dot and up to 16 letters, digits, '_', '+' or '-')")
    target = Path(os.fspath(path))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"path={str(path)!r} is not accepted: folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise ValueError(f"path={str(path)!r} is not accepted: it is a folder, expected a file path")
    remove_stale_temp_files(target)
    tmp_path = _create_temp(folder, target.name, suffix or "")
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _new_file_mode())  # what open() would give, not O_CREAT's 0600
        os.replace(tmp_path, target)
        _fsync_folder(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        _ACTIVE.discard(_key(tmp_path))


def _create_temp(folder: Path, name: str, suffix: str) -> Path:
    """Create (exclusively, mode 0600) and return a fresh temporary file for ``name`` in ``folder``."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for _ in range(100):
        token = "".join(secrets.choice(alphabet) for _ in range(_TOKEN_LEN))
        tmp = folder / temp_name(name, os.getpid(), token, suffix)
        key = _key(tmp)
        _ACTIVE.add(key)  # before it exists: another thread's clean-up must never take it
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _ACTIVE.discard(key)
            continue
        except BaseException:
            _ACTIVE.discard(key)
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file for {name!r} in {str(folder)!r}")


def _fsync_folder(folder: Path) -> None:
    """Persist the rename (POSIX: the directory entry lives in the folder); a no-op where unsupported."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _new_file_mode() -> int:
    """0666 less the process umask: the mode a plain ``open(path, "w")`` creates files with."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
