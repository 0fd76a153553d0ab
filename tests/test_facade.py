"""Meta-tests: the public facade is complete and sorted; every hook is documented, typed and implemented."""

from __future__ import annotations

import inspect

import panoflow
from panoflow.core import bases, hookspecs
from panoflow.core.plugins import build_plugins
from panoflow.plugins import BUILTINS


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
