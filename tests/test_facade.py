"""Meta-tests: the public facade is complete and sorted; every hook is documented, typed and implemented; the
plugin contract has no untyped gaps; the contrib plugin needs nothing but the facade."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import panoflow
from panoflow.core import bases, hookspecs
from panoflow.core.plugins import build_plugins
from panoflow.plugins import BUILTINS

ROOT = Path(__file__).resolve().parents[1]

#: what a plugin is handed or raises beyond the base classes: each must come from the facade
PLUGIN_NEEDS = ("BusClosed", "CodeNodeContext", "DeviceContext", "Frame", "Inbox", "ModelFiles", "Policy",
                "RunOptions", "Runtime", "StreamsExhausted", "TensorInfo", "build_plugins", "hookimpl")


def test_all_is_sorted_and_importable() -> None:
    assert list(panoflow.__all__) == sorted(panoflow.__all__)
    for name in panoflow.__all__:
        assert hasattr(panoflow, name), name


def test_facade_exports_every_plugin_base_class() -> None:
    for name in bases.__all__:
        assert name in panoflow.__all__, f"panoflow.{name} is missing from the facade"


def _hooks() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("panoflow_")]


def test_every_hook_is_documented_and_typed() -> None:
    assert _hooks()
    for name in _hooks():
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and "Called" in fn.__doc__, f"{name} needs a docstring saying when it is called"
        assert "return" in inspect.signature(fn).__str__() or fn.__annotations__.get("return"), name


def test_every_registration_hook_is_implemented_by_a_builtin_or_reserved() -> None:
    plugins = build_plugins(BUILTINS, entry_points=False)
    implemented = {h.name for p in plugins.pm.get_plugins() for h in plugins.pm.get_hookcallers(p) or ()}
    # startup/shutdown are for third parties
    reserved = {"panoflow_startup", "panoflow_shutdown"}
    assert set(_hooks()) - reserved <= implemented


def test_facade_exports_what_plugins_are_handed() -> None:
    for name in PLUGIN_NEEDS:
        assert name in panoflow.__all__, f"panoflow.{name} is missing from the facade"
    assert panoflow.CodeNodeContext.__module__ == "panoflow.core.runtime"
    assert panoflow.BusClosed is __import__("panoflow.core.bus", fromlist=["BusClosed"]).BusClosed


def test_import_panoflow_stays_light() -> None:
    """The runtime (anyio, numpy, the inference layer) loads on first use of its names, not on
    ``import panoflow``."""
    code = "import sys, panoflow; print(sorted(m for m in sys.modules if m.startswith('panoflow.core.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "panoflow.core.runtime" not in out and "panoflow.core.inference" not in out, out


def _hints(obj: object) -> dict[str, object]:
    from panoflow.core import runtime

    return typing.get_type_hints(obj, {**vars(bases), **vars(runtime), **vars(hookspecs)})


def test_the_plugin_contract_has_no_untyped_parameters() -> None:
    """``Any`` is allowed only for the daemon's own objects in DeviceContext and for open-ended option
    maps."""
    from panoflow.core import runtime

    assert _hints(bases.CodeRunner.run)["context"] is runtime.CodeNodeContext
    assert _hints(bases.CloudConnector.run)["device"] is bases.DeviceContext
    assert _hints(hookspecs.panoflow_startup)["runtime"] is runtime.Runtime
    assert _hints(hookspecs.panoflow_shutdown)["runtime"] is runtime.Runtime
    assert _hints(bases.ModelBackend)["inputs"] == tuple[bases.TensorInfo, ...]
    assert _hints(bases.ModelBackend.__init__)["files"] is bases.ModelFiles
    assert callable(bases.MediaSource.stats) and "policy" in _hints(bases.MediaSource)
    for cls in (bases.MediaSource, bases.MediaSink, bases.ModelBackend, bases.CodeRunner,
                bases.CloudConnector):
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name != "__init__":
                continue
            for param, hint in _hints(fn).items():
                assert hint is not typing.Any or param in ("inputs", "options"), (
                    f"{cls.__name__}.{name}({param})"
                )


def test_one_model_contract() -> None:
    from panoflow.core.inference import LoadedModel

    assert LoadedModel is bases.ModelBackend


def test_the_contrib_plugin_imports_only_the_facade() -> None:
    plugin = ROOT / "plugins-contrib" / "panoflow-jsonl" / "src" / "panoflow_jsonl" / "__init__.py"
    imported = set()
    for node in ast.walk(ast.parse(plugin.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert "panoflow" in imported
    assert not [m for m in imported if m.startswith("panoflow.")], imported
