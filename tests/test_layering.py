"""The layers import downward only (kernels <- zoo <- factory <- benchmarks), and no source file
is over 500 lines.

Every ``.py`` under ``zoo/`` and ``kernels/`` is parsed (not imported): no ``import`` or
``from ... import`` -- absolute, or relative and resolved against the installed package names
(``kernels/`` is ``zoo.kernels``) -- and no ``importlib.import_module``/``__import__``/
``runpy.run_module`` of a literal name reaches ``zoo.factory`` or ``zoo.benchmarks``. The facade
``zoo/__init__.py`` maps public names to module names as strings and imports them on first use:
that hand-over is the one allowed, and it is not an import statement.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"zoo": "zoo", "factory": "zoo.factory", "kernels": "zoo.kernels",
            "benchmarks": "zoo.benchmarks"}
FORBIDDEN = ("zoo.factory", "zoo.benchmarks")
DYNAMIC = ("import_module", "__import__", "run_module")
MAX_LINES = 500


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Installed dotted name of ``path`` and whether it is a package's ``__init__``."""
    rel = path.relative_to(root).with_suffix("")
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    is_init = parts[-1] == "__init__"
    if is_init:
        parts = parts[:-1]
    return ".".join(parts), is_init


def _imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    name, is_init = _module_name(path, root)
    package = name.split(".") if is_init else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in DYNAMIC and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def _reaches_up(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


@pytest.mark.parametrize("path", _sources("zoo", "kernels"), ids=lambda p: str(p.relative_to(ROOT)))
def test_zoo_and_kernels_never_import_the_factory_or_the_benchmarks(path):
    bad = [f"line {line}: {module}" for line, module in _imported(path) if _reaches_up(module)]
    assert not bad, f"{path.relative_to(ROOT)} imports a higher layer: {bad}"


def test_the_check_sees_relative_and_dynamic_imports(tmp_path):
    """The parser itself: a relative import from kernels/ and a literal import_module are caught,
    a sibling import is not."""
    pkg = tmp_path / "kernels"
    pkg.mkdir()
    (pkg / "bad.py").write_text("from ..factory import builder\nfrom . import attention\n"
                                "import importlib\nimportlib.import_module('zoo.benchmarks.cli')\n")
    modules = [m for _, m in _imported(pkg / "bad.py", tmp_path)]
    assert "zoo.factory" in modules and "zoo.benchmarks.cli" in modules
    assert "zoo.kernels.attention" in modules
    assert [m for m in modules if _reaches_up(m)] == ["zoo.factory", "zoo.factory.builder",
                                                       "zoo.benchmarks.cli"]


@pytest.mark.parametrize("path", _sources("zoo", "factory", "kernels", "benchmarks"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_is_over_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_no_public_name_is_also_its_module_name():
    # importing a submodule binds it on its package: a function exported as zoo.X from a module
    # zoo/X.py would become that module as soon as anything imports zoo.X (zoo.shard was one)
    import zoo

    assert [n for n, m in zoo._EXPORTS.items() if m == f"zoo.{n}"] == []
