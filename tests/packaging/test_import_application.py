"""import-application: every reference application moves to a new account, consistently and exactly."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panoflow.core.manifest import validate_application
from tests.packaging.commands import Result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "panorama-apps"
APPS = sorted(p.parent.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("packages") if p.is_dir())
NEW = "999988887777"


def _swap(value: Any) -> Any:
    """What import-application should make of a manifest: every ``account::...`` reference to NEW."""
    if isinstance(value, dict):
        return {k: _swap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v) for v in value]
    if isinstance(value, str) and "::" in value and not value.startswith("panorama::"):
        return NEW + "::" + value.split("::", 1)[1]
    return value


def test_all_reference_apps_are_covered() -> None:
    assert len(APPS) == 10


@pytest.mark.parametrize("rel", APPS)
def test_reference_app(cli: Callable[..., Result], tmp_path: Path, rel: str) -> None:
    source = FIXTURES / rel
    app = tmp_path / "app"
    shutil.copytree(source, app)
    olds = sorted({p.name.split("-", 1)[0] for p in (source / "packages").iterdir()})
    before = [str(p) for p in validate_application(app)] if (app / "graphs").is_dir() else []

    r = cli("import-application", "--account", NEW, cwd=app)
    assert r.code == 0, r.err

    # package folders: same names and contents under the new account
    for pkg in (source / "packages").iterdir():
        moved = app / "packages" / (NEW + "-" + pkg.name.split("-", 1)[1])
        assert sorted(p.name for p in moved.iterdir()) == sorted(p.name for p in pkg.iterdir())
        for f in pkg.iterdir():
            assert (moved / f.name).read_bytes() == f.read_bytes()  # package.json and descriptors untouched
    assert all(p.name.startswith(NEW + "-") for p in (app / "packages").iterdir())
    # every other JSON file: the same document with the accounts swapped, its formatting kept
    for f in source.rglob("*.json"):
        rel_path = f.relative_to(source)
        if rel_path.parts[0] == "packages":
            continue
        old_text, new_text = f.read_text(), (app / rel_path).read_text()
        assert json.loads(new_text) == _swap(json.loads(old_text)), rel_path
        assert new_text == re.sub(r'"([^":]+)::', lambda m: '"panorama::' if m.group(1) == "panorama"
                                  else f'"{NEW}::', old_text)
        assert not any(f'"{old}::' in new_text for old in olds)
    # validation finds the same (problems naming the new account instead of the old)
    if (app / "graphs").is_dir():
        after = [str(p) for p in validate_application(app)]
        expected = before
        for old in olds:
            expected = [s.replace(old, NEW) for s in expected]
        assert sorted(after) == sorted(expected)
    again = cli("import-application", "--account", NEW, cwd=app)
    assert again.code == 0 and "nothing to rename" in again.out


def _mini(root: Path) -> Path:
    """Accounts 12 and 34: package names containing '12' (which naive replacement would break)."""
    (root / "graphs" / "g").mkdir(parents=True)
    for folder in ("12-MODEL_12-1.0", "34-CODE_12-1.0"):
        (root / "packages" / folder).mkdir(parents=True)
    graph = {"nodeGraph": {"envelopeVersion": "2021-01-01",
                           "packages": [{"name": "12::MODEL_12", "version": "1.0"},
                                        {"name": "34::CODE_12", "version": "1.0"},
                                        {"name": "panorama::hdmi_data_sink", "version": "1.0"}],
                           "nodes": [{"name": "n12", "interface": "12::MODEL_12.interface_12"},
                                     {"name": "c", "interface": "34::CODE_12.interface"},
                                     {"name": "p", "interface": "string", "value": "12::not a package"}],
                           "edges": []}}
    (root / "graphs" / "g" / "graph.json").write_text(json.dumps(graph))
    return root


def test_exact_names_and_from_account(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = _mini(tmp_path / "app")
    r = cli("import-application", "--account", "777", "--from-account", "12", cwd=app)
    assert r.code == 0, r.err
    graph = json.loads((app / "graphs" / "g" / "graph.json").read_text())["nodeGraph"]
    assert [p["name"] for p in graph["packages"]] == ["777::MODEL_12", "34::CODE_12",
                                                      "panorama::hdmi_data_sink"]
    assert [n.get("interface") for n in graph["nodes"]] == ["777::MODEL_12.interface_12",
                                                            "34::CODE_12.interface", "string"]
    assert graph["nodes"][2]["value"] == "12::not a package"  # parameter values are not references
    assert sorted(p.name for p in (app / "packages").iterdir()) == ["34-CODE_12-1.0", "777-MODEL_12-1.0"]


def test_nothing_changes_when_a_folder_would_clash(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = _mini(tmp_path / "app")
    (app / "packages" / "777-CODE_12-1.0").mkdir()
    graph_before = (app / "graphs" / "g" / "graph.json").read_bytes()
    r = cli("import-application", "--account", "777", cwd=app)
    assert r.code == 1 and "already exists" in r.err
    assert (app / "graphs" / "g" / "graph.json").read_bytes() == graph_before
    assert (app / "packages" / "12-MODEL_12-1.0").is_dir()
    bad = cli("import-application", "--account", "12-3", cwd=app)
    assert bad.code == 1 and "is not a valid account name" in bad.err
