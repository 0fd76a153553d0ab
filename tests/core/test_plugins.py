"""The plugin manager: built-ins, duplicates, broken plugins, listing."""

from __future__ import annotations

import types

import pytest

import panoflow
from panoflow.core.plugins import build_plugins
from panoflow.exceptions import PluginError
from panoflow.plugins import BUILTINS


def test_builtins_provide_the_documented_names() -> None:
    plugins = build_plugins(BUILTINS, entry_points=False)
    plugins.check()
    assert {"file", "testsrc"} <= set(plugins.sources)
    assert {"display", "record", "null"} <= set(plugins.sinks)
    assert set(plugins.parameter_types) >= {"string", "int32", "float32", "boolean"}
    assert "panoramasdk" in plugins.code_runners
    infos = {i.name: i for i in plugins.info()}
    assert all(infos[name].builtin and infos[name].version == panoflow.__version__ for name in BUILTINS)


def test_duplicate_names_fail_at_startup_naming_both_plugins() -> None:
    class Dup(panoflow.MediaSink):
        name = "null"

        async def run(self, inbox: object) -> None:  # pragma: no cover - never run
            pass

    extra = types.SimpleNamespace(panoflow_media_sinks=panoflow.hookimpl(lambda: [Dup]))
    plugins = build_plugins(BUILTINS, entry_points=False, extra=[extra])
    with pytest.raises(PluginError, match="two plugins provide media_sinks 'null'"):
        plugins.check()


def test_a_fresh_manager_per_runtime() -> None:
    a = build_plugins(BUILTINS, entry_points=False)
    b = build_plugins(entry_points=False)
    assert a.pm is not b.pm
    assert not b.sources


def test_broken_builtin_is_a_plugin_error() -> None:
    with pytest.raises(PluginError, match="no_such_module"):
        build_plugins(["panoflow.plugins.no_such_module"], entry_points=False)


def test_cli_lists_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    from panoflow.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "panoflow.plugins.sources" in out and "media_sources" in out and "sources: file" in out
