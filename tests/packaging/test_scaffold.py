"""init-project, create-package, add-panorama-package: every step leaves a project that validates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from panoflow.core.manifest import validate_application
from tests.packaging.commands import Result


def _errors(app: Path) -> list[str]:
    return [str(p) for p in validate_application(app) if p.severity == "error"]


def test_init_project_is_valid(cli: Callable[..., Result], tmp_path: Path) -> None:
    r = cli("init-project", "--name", "my_app", cwd=tmp_path)
    assert r.code == 0, r.err
    app = tmp_path / "my_app"
    assert sorted(p.name for p in app.iterdir()) == ["assets", "graphs", "packages"]
    graph = json.loads((app / "graphs" / "my_app" / "graph.json").read_text())
    assert graph["nodeGraph"]["nodes"][0]["interface"] == "panorama::hdmi_data_sink.hdmi0"
    assert _errors(app) == []
    again = cli("init-project", "--name", "my_app", cwd=tmp_path)
    assert again.code == 1 and "already exists" in again.err and "Traceback" not in again.err


def test_init_project_with_project_dir(cli: Callable[..., Result], tmp_path: Path) -> None:
    r = cli("init-project", "--name", "x", "--project-dir", tmp_path / "elsewhere", cwd=tmp_path)
    assert r.code == 0, r.err
    assert (tmp_path / "elsewhere" / "graphs" / "x" / "graph.json").is_file()


@pytest.mark.parametrize(("kind", "files", "node"), [
    ("Container", {"package.json", "descriptor.json", "Dockerfile", "src"}, "code_node"),
    ("model", {"package.json", "descriptor.json"}, "model_node"),
    ("CAMERA", {"package.json"}, "CAM_1"),
])
def test_create_package(cli: Callable[..., Result], tmp_path: Path, kind: str, files: set[str],
                        node: str) -> None:
    cli("init-project", "--name", "app", cwd=tmp_path)
    app = tmp_path / "app"
    name = "CAM_1" if node == "CAM_1" else "PKG"
    r = cli("create-package", "--type", kind, "--name", name, "--version", "2.1", "--account", "111122223333",
            cwd=app)
    assert r.code == 0, r.err
    pkg = app / "packages" / f"111122223333-{name}-2.1"
    assert {p.name for p in pkg.iterdir()} == files
    package = json.loads((pkg / "package.json").read_text())["nodePackage"]
    assert (package["name"], package["version"]) == (name, "2.1")
    graph = json.loads((app / "graphs" / "app" / "graph.json").read_text())["nodeGraph"]
    assert {"name": f"111122223333::{name}", "version": "2.1"} in graph["packages"]
    assert any(
        n["name"] == node and n["interface"].startswith(f"111122223333::{name}.") for n in graph["nodes"]
    )
    assert _errors(app) == []


def test_create_package_uses_the_project_account(cli: Callable[..., Result], tmp_path: Path) -> None:
    cli("init-project", "--name", "app", cwd=tmp_path)
    app = tmp_path / "app"
    first = cli("create-package", "--name", "A", cwd=app)
    assert first.code == 0 and "using account 123456789012" in first.err
    cli("create-package", "--name", "B", "--account", "555566667777", "--project-dir", app, cwd=tmp_path)
    cli("create-package", "--type", "Model", "--name", "C", cwd=app)
    assert sorted(p.name for p in (app / "packages").iterdir()) == [
        "123456789012-A-1.0", "123456789012-C-1.0", "555566667777-B-1.0"]
    nodes = json.loads((app / "graphs" / "app" / "graph.json").read_text())["nodeGraph"]["nodes"]
    assert [n["name"] for n in nodes] == ["output_node", "code_node", "code_node2", "model_node"]


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "bad name"], "'bad name' is not a valid package name"),
    (["--name", "x.y"], "is not a valid package name"),
    (["--name", "OK", "--version", "1"], "'1' is not a valid version name: use <major>.<minor>"),
    (["--name", "OK", "--account", "12-34"], "is not a valid account name"),
    (["--name", "OK", "--account", "panorama"], "stock packages"),
    (["--name", "OK", "--type", "Datasink"], "choose Container, Model, Camera"),
    (["--name", "OK", "--node-name", "a.b"], "is not a valid node name"),
])
def test_create_package_errors(cli: Callable[..., Result], tmp_path: Path, args: list[str],
                               message: str) -> None:
    cli("init-project", "--name", "app", cwd=tmp_path)
    r = cli("create-package", *args, cwd=tmp_path / "app")
    assert r.code == 1
    assert message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_commands_outside_a_project_say_so(cli: Callable[..., Result], tmp_path: Path) -> None:
    r = cli("create-package", "--name", "X", cwd=tmp_path)
    assert r.code == 1 and "is not a Panorama project" in r.err and "--project-dir" in r.err


def test_duplicate_package(cli: Callable[..., Result], tmp_path: Path) -> None:
    cli("init-project", "--name", "app", cwd=tmp_path)
    cli("create-package", "--name", "X", cwd=tmp_path / "app")
    r = cli("create-package", "--name", "X", "--version", "2.0", cwd=tmp_path / "app")
    assert r.code == 1 and "already exists" in r.err


def test_add_panorama_package(cli: Callable[..., Result], tmp_path: Path) -> None:
    cli("init-project", "--name", "app", cwd=tmp_path)
    app = tmp_path / "app"
    assert cli("add-panorama-package", "--type", "camera", "--name", "front_door", cwd=app).code == 0
    r = cli("add-panorama-package", "--type", "data_sink", "--name", "output_node", cwd=app)
    assert r.code == 1 and "already has the node 'output_node'" in r.err
    graph = json.loads((app / "graphs" / "app" / "graph.json").read_text())["nodeGraph"]
    assert {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"} in graph["packages"]
    assert _errors(app) == []
