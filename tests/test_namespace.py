"""One import name (issue 7, section 1): the distribution installs the top-level package ``zoo``
alone; the folders factory/, kernels/ and benchmarks/ are ``zoo.factory``, ``zoo.kernels`` and
``zoo.benchmarks``, and the generic names ``kernels``, ``factory`` and ``benchmarks`` resolve to
nothing of ours.

Every check runs in a fresh interpreter started with ``-I`` (no PYTHONPATH, no user site, the
current folder not on ``sys.path``) from a temporary folder, so only what is *installed* is seen,
never the repository checkout by accident. The wheel is built from a copy of the source folders in
a temporary folder, so the build leaves nothing in the working tree.
"""
from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> the dotted package it installs as (setup.cfg's package_dir).
FOLDERS = {"zoo": "zoo", "factory": "zoo.factory", "kernels": "zoo.kernels",
           "benchmarks": "zoo.benchmarks"}
GENERIC = ("kernels", "factory", "benchmarks")

_PROBE = r"""
import ast, importlib, importlib.metadata as md, importlib.util, json, sys
repo = sys.argv[1]
out = {"sys_path_has_repo": any(p.rstrip("/") == repo for p in sys.path)}
dist = md.distribution("zoo")
top = dist.read_text("top_level.txt")
out["top_level"] = top.split() if top is not None else None
files = [str(f) for f in (dist.files or [])]
out["files"] = files
mapping = None
for f in dist.files or []:
    if str(f).endswith("_finder.py") and "__editable__" in str(f):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "MAPPING":
                mapping = ast.literal_eval(node.value)
out["editable_mapping"] = mapping
out["entry_points"] = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
generic = {}
for name in ("kernels", "factory", "benchmarks"):
    spec = importlib.util.find_spec(name)
    generic[name] = None if spec is None else (spec.origin or str(list(spec.submodule_search_locations or [])))
out["generic"] = generic
mods = {}
for name in ("zoo", "zoo.factory", "zoo.kernels", "zoo.benchmarks"):
    m = importlib.import_module(name)
    mods[name] = m.__file__
out["modules"] = mods
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """What a fresh, isolated interpreter outside the repository sees of the installed ``zoo``."""
    proc = subprocess.run([sys.executable, "-I", "-c", _PROBE, str(REPO)],
                          cwd=tmp_path_factory.mktemp("outside"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_installed_distribution_has_one_top_level_name(installed):
    info = installed
    assert not info["sys_path_has_repo"], "the repository is on sys.path: the probe is not isolated"
    if info["top_level"] is not None:
        assert info["top_level"] == ["zoo"], info["top_level"]
    # What the files record: no module or package outside zoo/ (an editable install records its
    # finder and .pth; a regular install records zoo/... paths).
    tops = {f.split("/")[0] for f in info["files"]
            if not f.startswith(("../", "zoo-")) and ".dist-info" not in f.split("/")[0]}
    tops = {t for t in tops if not t.startswith(("__editable__", "__pycache__"))}
    assert tops <= {"zoo"}, tops
    if info["editable_mapping"] is not None:  # the editable finder's name -> folder table
        assert set(info["editable_mapping"]) == set(FOLDERS.values()), info["editable_mapping"]
        for folder, dotted in FOLDERS.items():
            assert Path(info["editable_mapping"][dotted]) == REPO / folder
    assert info["top_level"] is not None or info["editable_mapping"] is not None, \
        "neither top_level.txt nor an editable finder: cannot tell what was installed"


def test_generic_names_resolve_to_nothing_of_ours(installed):
    info = installed
    for name in GENERIC:
        where = info["generic"][name]
        assert where is None or not str(where).startswith(str(REPO)), f"import {name} finds {where}"


def test_subpackages_import_under_zoo(installed):
    info = installed
    for folder, dotted in FOLDERS.items():
        assert Path(info["modules"][dotted]).resolve().parent.name == folder, info["modules"]


def _declared_console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in lines if "=" in line)}


def test_console_scripts_run(tmp_path, installed):
    declared = _declared_console_scripts()
    assert {"zoo", "zoo-bench"} <= set(declared), declared
    assert installed["entry_points"] == declared, (
        f"installed console scripts {installed['entry_points']} differ from setup.cfg's "
        f"{declared}: reinstall with `pip install -e .`")
    bindir = Path(sys.executable).parent
    for name in declared:
        script = bindir / name
        assert script.exists(), f"{script} is not installed"
        proc = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, f"{name} --help: {proc.stderr[-2000:]}"
        assert "usage:" in proc.stdout, proc.stdout[:500]


def test_wheel_holds_zoo_alone(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, src / folder, ignore=ignore)
    out = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), "."], cwd=src, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("zoo-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info_dir = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        assert zf.read(f"{info_dir}/top_level.txt").decode().split() == ["zoo"]
    assert {n.split("/")[0] for n in names} == {"zoo", info_dir}, sorted({n.split("/")[0] for n in names})
    # Every source module is in the wheel, at its dotted place (a sub-package missing from
    # setup.cfg's `packages` would be silently left out).
    missing = []
    for folder, dotted in FOLDERS.items():
        for py in (src / folder).rglob("*.py"):
            rel = py.relative_to(src / folder).as_posix()
            if f"{dotted.replace('.', '/')}/{rel}" not in names:
                missing.append(f"{folder}/{rel}")
    assert not missing, f"not in the wheel: {missing}"
