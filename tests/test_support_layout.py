"""The tests' own layout (issue 18): no module imports from a conftest.py (shared helpers and fixtures live in
:mod:`tests.support`, its fixture modules registered once by ``pytest_plugins`` in tests/conftest.py) nor from
a test module, and the support modules depend on no test folder."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
#: where Python that may import test helpers lives
SCANNED = (TESTS, ROOT / "benchmarks", ROOT / "plugins-contrib")


def module_name(path: Path) -> str:
    """The dotted name of ``path`` relative to the repository root (``tests/daemon/x.py`` ->
    ``tests.daemon.x``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in ``source`` (function-local and relative ones included), and
    for ``from X import name`` also ``X.name`` (which may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def conftest_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """``line N: X`` for each import of a conftest module ``X`` in ``source``."""
    found: dict[str, None] = {}
    for line, name in imported_modules(source, module, is_package):
        parts = name.split(".")
        if "conftest" in parts:
            found[f"line {line}: {'.'.join(parts[: parts.index('conftest') + 1])}"] = None
    return list(found)


def python_files() -> list[Path]:
    return sorted(p for folder in SCANNED if folder.is_dir() for p in folder.rglob("*.py")
                  if not any(part.startswith(".") or part in ("node_modules", "__pycache__")
                             for part in p.parts))


def test_no_module_imports_from_a_conftest() -> None:
    found = []
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        hits = conftest_imports(source, module_name(path), path.name == "__init__.py")
        found += [f"{path.relative_to(ROOT)} {hit}" for hit in hits]
    assert not found, (
        "modules import from a conftest.py; move the helper into a module named for what it holds "
        "(tests/support/ when more than one folder uses it, else a module of its folder) and a shared "
        "fixture into a tests/support module listed in pytest_plugins of tests/conftest.py:\n  "
        + "\n  ".join(found))


def imports_of_test_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """``line N: X`` for each import of a test module ``X`` (a ``test_*`` module under tests/)."""
    found: dict[str, None] = {}
    for line, name in imported_modules(source, module, is_package):
        if name.startswith("tests.") and name.rpartition(".")[2].startswith("test_"):
            found[f"line {line}: {name}"] = None
    return list(found)


def test_no_module_imports_a_test_module() -> None:
    """What test modules share lives in a helper module (tests/support/ when more than one folder uses it,
    else a module of their folder), never in one of the test modules."""
    found = []
    for path in python_files():
        hits = imports_of_test_modules(path.read_text(encoding="utf-8"), module_name(path),
                                   path.name == "__init__.py")
        found += [f"{path.relative_to(ROOT)} {hit}" for hit in hits]
    assert not found, ("modules import a test module (move what they share into a helper module):\n  "
                       + "\n  ".join(found))


def test_support_depends_on_no_test_folder() -> None:
    """tests.support is the bottom layer: it imports nothing from a test folder (tests.media, a shared helper
    module of its own, aside)."""
    found = []
    for path in sorted((TESTS / "support").rglob("*.py")):
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                                           path.name == "__init__.py"):
            if name.startswith("tests.") and not name.startswith(("tests.support", "tests.media")):
                found.append(f"{path.relative_to(ROOT)} line {line}: {name}")
    assert not found, "tests/support imports from a test folder:\n  " + "\n  ".join(found)


def test_shared_fixture_plugins_are_support_modules() -> None:
    tree = ast.parse((TESTS / "conftest.py").read_text(encoding="utf-8"))
    plugins = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets))
    assert plugins == sorted(plugins), "keep pytest_plugins sorted"
    for name in plugins:
        assert name.startswith("tests.support."), name
        path = ROOT / (name.replace(".", "/") + ".py")
        assert path.is_file(), f"{name} in pytest_plugins is not a module"


def test_only_the_root_conftest_names_pytest_plugins() -> None:
    """pytest honours ``pytest_plugins`` only in the rootdir's conftest.py (elsewhere it stops the run)."""
    offenders = [str(p.relative_to(ROOT)) for p in TESTS.rglob("conftest.py")
                 if p != TESTS / "conftest.py" and "pytest_plugins" in p.read_text(encoding="utf-8")]
    assert not offenders, offenders


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from tests.daemon.conftest import Daemon\n", "tests.e2e.test_x", ["line 1: tests.daemon.conftest"]),
    ("from .conftest import require\n", "tests.isolation.test_x", ["line 1: tests.isolation.conftest"]),
    ("from . import conftest\n", "tests.isolation.test_x", ["line 1: tests.isolation.conftest"]),
    ("from .. import conftest\n", "tests.core.manifest.test_x", ["line 1: tests.core.conftest"]),
    ("import tests.rtsp.conftest as c\n", "tests.decode.test_x", ["line 1: tests.rtsp.conftest"]),
    ("def f():\n    from tests.plugins.conftest import frame\n", "benchmarks.x",
     ["line 2: tests.plugins.conftest"]),
    ("if True:\n    from tests import conftest\n", "tests.test_x", ["line 2: tests.conftest"]),
    ("from tests.support.daemons import Daemon\nimport conftest_like\nfrom tests.media import make_clip\n",
     "tests.daemon.test_x", []),
])
def test_the_finder_sees_every_form_of_conftest_import(source: str, module: str, expected: list[str]) -> None:
    assert conftest_imports(source, module) == expected


def test_relative_imports_resolve_from_a_package() -> None:
    assert conftest_imports("from .conftest import x\n", "tests.isolation", is_package=True) == [
        "line 1: tests.isolation.conftest"]


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from tests.controlplane.test_device_api import claimed\n", "tests.security.test_x",
     ["line 1: tests.controlplane.test_device_api"]),
    ("from tests.daemon import test_inbound_ports\n", "tests.appproc.test_x",
     ["line 1: tests.daemon.test_inbound_ports"]),
    ("from tests.daemon.test_lifecycle import events\n", "tests.daemon.test_x",
     ["line 1: tests.daemon.test_lifecycle"]),
    ("from .test_lifecycle import events\n", "tests.daemon.test_x", ["line 1: tests.daemon.test_lifecycle"]),
    ("from tests.support.ports import free_port\n", "tests.daemon.test_x", []),
    ("from tests.inference.kserve_harness import SHAPE\n", "tests.inference.test_x", []),
])
def test_the_finder_sees_imports_of_test_modules(source: str, module: str, expected: list[str]) -> None:
    assert imports_of_test_modules(source, module) == expected
