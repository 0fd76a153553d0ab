"""build-container: the code asset without Docker, in the Dockerfile styles the published samples use."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from panoflow.core.manifest import validate_application
from panoflow.packaging.codeasset import prepare_code_asset
from panoflow.packaging.pyenv import app_environment
from panoflow.packaging.wheels import pip_requests
from tests.packaging.commands import FakeDocker, Result
from tests.packaging.projects import STYLES, build, code_package, new_project, package_json


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


@pytest.mark.parametrize("style", sorted(STYLES))
def test_styles(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path, fake_docker: FakeDocker,
                style: str) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app, style)
    r = build(cli, app, wheelhouse)
    assert r.code == 0, r.err
    assert "without Docker" in r.out and "2 wheels" in r.out
    assert "pip: Saved" in r.err  # progress lines from pip
    assert fake_docker.calls() == []  # nothing here needs Docker, so it is not even asked
    (asset,) = package_json(pkg)["assets"]
    impl = asset["implementations"][0]
    assert asset["name"] == "code_asset" and impl["type"] == "container"
    archive = app / "assets" / impl["assetUri"]
    assert impl["assetUri"] == hashlib.sha256(archive.read_bytes()).hexdigest() + ".tar.gz"
    descriptor = app / "assets" / impl["descriptorUri"]
    assert descriptor.read_bytes() == (pkg / "descriptor.json").read_bytes()
    assert impl["descriptorUri"] == hashlib.sha256(descriptor.read_bytes()).hexdigest() + ".json"
    assert package_json(pkg)["interfaces"][0]["asset"] == "code_asset"
    members = _members(archive)
    names = sorted(members)
    assert "panorama/app.py" in names and "panorama/labels.txt" in names
    assert [n for n in names if n.startswith("wheels/")] == [
        "wheels/pf_test_dep-0.2-py3-none-any.whl", "wheels/pf_test_greeting-1.0-py3-none-any.whl"]
    pinned = [
        line for line in _read(archive, "requirements.txt").decode().splitlines() if not line.startswith("#")
    ]
    assert pinned == ["pf-test-dep==0.2", "pf-test-greeting==1.0"]
    meta = json.loads(_read(archive, "panoflow-asset.json"))
    assert meta["format"] == "panoflow-code-asset/1" and meta["builder"] == "panoflow"
    assert meta["workdir"] == ("/panorama" if style == "workdir-copy-dot" else "/")
    assert meta["left_out"] == []
    # COPY . . takes the package folder, as Docker would, but its package.json
    if style == "workdir-copy-dot":
        assert "panorama/descriptor.json" in names and "panorama/requirements.txt" in names
        assert "panorama/package.json" not in names
    # deterministic: sorted, parents first, no times or owners
    with tarfile.open(archive, "r:gz") as tar:
        order = [m.name for m in tar.getmembers()]
    assert order == sorted(order)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname for m in members.values())
    assert not any(m.issym() or m.islnk() for m in members.values())
    assert [p.severity for p in validate_application(app)] == []


@pytest.mark.parametrize("style", ["copy-src", "workdir-copy-dot"])
def test_deterministic_and_replaces_the_old_asset(cli: Callable[..., Result], tmp_path: Path,
                                                  wheelhouse: Path, style: str) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app, style)
    code = pkg / "src" if style == "copy-src" else pkg
    assert build(cli, app, wheelhouse).code == 0
    first = package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    assert build(cli, app, wheelhouse).code == 0
    # same inputs, same digest
    assert package_json(pkg)["assets"][0]["implementations"][0]["assetUri"] == first
    (code / "app.py").write_text("print('changed')\n")
    r = build(cli, app, wheelhouse)
    assert r.code == 0, r.err
    (asset,) = package_json(pkg)["assets"]
    second = asset["implementations"][0]["assetUri"]
    assert second != first
    assert f"removed the replaced assets/{first}" in r.out
    assert sorted(p.name for p in (app / "assets").iterdir()) == sorted(
        [second, asset["implementations"][0]["descriptorUri"]])


def test_keeps_requirements_and_adds_an_interface_when_none_fits(cli: Callable[..., Result], tmp_path: Path,
                                                                 wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    doc = json.loads((pkg / "package.json").read_text())
    gpu = [{"type": "hardware_access", "inferenceAccelerators": [
        {"deviceType": "nvhost_gpu", "sharedResourcePolicy": {"policy": "allow_all"}}]}]
    doc["nodePackage"]["assets"][0]["implementations"][0]["requirements"] = gpu
    (pkg / "package.json").write_text(json.dumps(doc))
    assert build(cli, app, wheelhouse).code == 0
    assert package_json(pkg)["assets"][0]["implementations"][0]["requirements"] == gpu
    r = build(cli, app, wheelhouse, asset="second_asset")
    assert r.code == 0, r.err
    body = package_json(pkg)
    assert [a["name"] for a in body["assets"]] == ["code_asset", "second_asset"]
    assert body["interfaces"][1] == {"name": "second_asset_interface", "category": "business_logic",
                                     "asset": "second_asset",
                                     "inputs": [{"name": "video_in", "type": "media"}],
                                     "outputs": [{"name": "video_out", "type": "media"}]}
    assert "graph node second_asset_node added" in r.out
    assert [p for p in validate_application(app) if p.severity == "error"] == []


@pytest.mark.parametrize(("dockerfile", "message"), [
    ("FROM public.ecr.aws/panorama/panorama-application\nCOPY code /panorama\n",
     "Dockerfile line 2 copies 'code', which does not exist"),
    ("FROM public.ecr.aws/panorama/panorama-application\nCOPY src/labels.txt /panorama/\n",
     "runs /panorama/app.py, which the Dockerfile does not put in the image"),
    (("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\nRUN pip install -r "
      "requirements.txt\n"),
     "requirements.txt is not in the image (looked for /requirements.txt); COPY it before the RUN line"),
    (("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\nRUN pip install "
      "no-such-thing-here\n"),
     "pip could not collect the requirements"),
    ("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\nRUN pip install -e .\n",
     "editable installs cannot be shipped"),
])
def test_clear_errors(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path, dockerfile: str,
                      message: str) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    (pkg / "Dockerfile").write_text(dockerfile)
    before = (pkg / "package.json").read_bytes()
    r = build(cli, app, wheelhouse)
    assert r.code == 1
    assert message in r.err and "Traceback" not in r.err
    assert (pkg / "package.json").read_bytes() == before
    assert list((app / "assets").iterdir()) == []


def test_bad_asset_name_and_descriptor(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    r = build(cli, app, wheelhouse, asset="code asset")
    assert r.code == 1 and "--container-asset-name 'code asset' is not a valid asset name" in r.err
    (pkg / "descriptor.json").write_text(json.dumps({"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01",
        "entry": {"path": "python3", "name": "/panorama/<entry_file_name>"}}}))
    r = build(cli, app, wheelhouse)
    assert r.code == 1 and "set entry.name to the script to run" in r.err
    r = cli("build-container", "--container-asset-name", "a", "--package-path", "packages/nope", cwd=app)
    assert r.code == 1 and "package folder 'packages/nope' not found" in r.err


def test_add_unpacks_local_archives(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app, "run-pip-install")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("weights/table.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    (pkg / "bundle.tar.gz").write_bytes(buf.getvalue())
    (pkg / "Dockerfile").write_text((pkg / "Dockerfile").read_text() + "ADD bundle.tar.gz /panorama/\n")
    assert build(cli, app, wheelhouse).code == 0
    archive = app / "assets" / package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    names = _members(archive)
    assert "panorama/weights/table.bin" in names and "panorama/bundle.tar.gz" not in names


def test_steps_left_out_without_a_docker_engine(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path,
                                                fake_docker: FakeDocker) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    (pkg / "Dockerfile").write_text((pkg / "Dockerfile").read_text() + "RUN apt-get update && apt-get "
                                    "install -y libgl1\nHEALTHCHECK NONE\n")
    r = build(cli, app, wheelhouse)
    assert r.code == 0, r.err
    assert "building without Docker (no Docker engine answers here)" in r.err
    assert "line 4: apt-get update && apt-get install -y libgl1" in r.err
    assert "1 Dockerfile step(s) left out" in r.out
    assert [c[0] for c in fake_docker.calls()] == ["version"]
    archive = app / "assets" / package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    meta = json.loads(_read(archive, "panoflow-asset.json"))
    assert meta["left_out"] == ["line 4: apt-get update && apt-get install -y libgl1"]
    always = build(cli, app, wheelhouse, "--docker", "always")
    assert always.code == 1 and "--docker always: no Docker engine answers here" in always.err


def test_docker_when_needed_and_an_engine_answers(cli: Callable[..., Result], tmp_path: Path,
                                                  wheelhouse: Path, fake_docker: FakeDocker,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_ENGINE", "1")
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    (pkg / "Dockerfile").write_text((pkg / "Dockerfile").read_text() + "RUN apt-get install -y libgl1\n")
    r = build(cli, app, wheelhouse, "--local-image")
    assert r.code == 0, r.err
    assert "built code asset code_asset with Docker" in r.out and "engine 99.0-fake" in r.err
    calls = fake_docker.calls()
    assert [c[0] for c in calls] == ["version", "build", "create", "export", "rm"]
    assert "--pull" not in calls[1]
    archive = app / "assets" / package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    names = _members(archive)
    assert names["bin/sh"].issym() and names["bin/sh"].linkname == "/usr/bin/dash"  # the image, as exported
    assert "wheels/pf_test_greeting-1.0-py3-none-any.whl" in names and "requirements.txt" in names
    assert json.loads(_read(archive, "panoflow-asset.json"))["builder"] == "docker"
    # panoflow runs it: only panorama/ and the wheels are taken, the image's absolute links stay behind
    asset = prepare_code_asset(archive, tmp_path / "cache" / "code")
    assert asset.host_path("/panorama/app.py").read_text() == (pkg / "src" / "app.py").read_text()
    assert not (asset.root / "bin").exists()
    env = app_environment(asset, envs_dir=tmp_path / "cache" / "envs", requested=None, node_id="code_node")
    assert "pf-test-greeting==1.0" in env.installed


def test_pip_requests(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "panorama").mkdir(parents=True)
    (root / "panorama" / "requirements.txt").write_text("x\n")
    (root / "panorama" / "constraints.txt").write_text("x<2\n")
    request = pip_requests([
        ["--no-cache-dir", "-r", "requirements.txt"],
        ["-cconstraints.txt", "--upgrade", "pip", "boto3==1.2", "opencv-python-headless>=4", "--pre"],
        ["--extra-index-url=https://example.com/simple", "--index-url", "https://pypi.org/simple", "-q",
         "awscrt"],
        ["--target", "/opt/lib", "--user", "numpy"],
    ], root, "/panorama")
    assert request.files == [root / "panorama" / "requirements.txt"]
    assert request.constraints == [root / "panorama" / "constraints.txt"]
    assert request.specs == ["boto3==1.2", "opencv-python-headless>=4", "awscrt", "numpy"]
    assert request.options == ["--pre", "--extra-index-url", "https://example.com/simple", "--index-url",
                               "https://pypi.org/simple"]
    assert not pip_requests([["--upgrade", "pip"]], root, "/")
