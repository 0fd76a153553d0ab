"""Fixtures for the manifest tests: copies of the reference applications, and a JSON editor for breaking
them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "panorama-apps"

EditJson = Callable[[Path, Callable[[Any], Any]], None]


@pytest.fixture
def app_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``app_copy("debug-server")`` copies a reference application into ``tmp_path`` and returns its
    folder."""

    def copy(name: str) -> Path:
        target = tmp_path / Path(name).name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


def _edit(path: Path, change: Callable[[Any], Any]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


@pytest.fixture
def edit_json() -> EditJson:
    """``edit_json(path, fn)``: load the JSON file, let ``fn`` change it in place (its result is ignored),
    save."""
    return _edit
