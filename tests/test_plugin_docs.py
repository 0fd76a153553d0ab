"""docs/plugins.md is runnable: every hook has a section of its own with an example, and every Python block of
the page runs, in order, in one namespace (as a reader pasting them one after the other would), its assertions
included. The last block runs a whole application with the page's source, runner and sink."""

from __future__ import annotations

import inspect
import os
import re
import sys
import types
from pathlib import Path

import pytest

from panoflow.core import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _sections() -> dict[str, list[str]]:
    """``## `hook``` heading -> the Python blocks under it (blocks before the first heading under "")."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for match in re.finditer(r"^## `?([^`\n]+)`?\s*$|^```python\n(.*?)^```", DOC.read_text(),
                             re.MULTILINE | re.DOTALL):
        if match.group(1) is not None:
            current = match.group(1).strip()
            sections.setdefault(current, [])
        else:
            sections[current].append(match.group(2))
    return sections


def _hooks() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("panoflow_")]


def test_every_hook_has_a_section_with_an_example() -> None:
    sections = _sections()
    assert _hooks()
    for hook in _hooks():
        assert hook in sections, f"docs/plugins.md has no '## `{hook}`' section"
    for hook in _hooks():  # the example of startup also serves shutdown (one plugin implements both)
        if hook != "panoflow_shutdown":
            assert sections[hook], f"the {hook} section has no Python example"
    code = "".join(block for blocks in sections.values() for block in blocks)
    assert all(f"def {hook}(" in code for hook in _hooks())


def test_the_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing a block writes lands in the repository
    module = types.ModuleType("plugins_md")  # a real module: dataclasses look their module up in sys.modules
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    blocks = [(title, code) for title, codes in _sections().items() for code in codes]
    assert len(blocks) >= 8
    for title, code in blocks:
        try:
            exec(compile(code, f"docs/plugins.md ({title or 'intro'})", "exec"), namespace)  # noqa: S102
        except Exception as exc:
            raise AssertionError(f"the example under '{title}' failed: {type(exc).__name__}: {exc}") from exc
    assert namespace["summary"].ok
    assert namespace["run_log"].events == [("startup", ["camera_node"]), ("shutdown", True)]
    assert os.listdir(tmp_path) == []  # the examples clean up after themselves
