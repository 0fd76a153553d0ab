"""add-raw-model: the model and its descriptor into assets/ by SHA-256, recorded in the model package."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from panoflow.core.manifest import load_application
from tests.packaging.commands import Result
from tests.packaging.projects import new_project, package_json
from tests.support.models import conv_model, tar_gz

MODEL = "123456789012-MODEL-1.0"


def _model_package(cli: Callable[..., Result], app: Path) -> Path:
    assert cli("create-package", "--type", "Model", "--name", "MODEL", cwd=app).code == 0
    pkg = app / "packages" / MODEL
    (pkg / "descriptor.json").write_text(json.dumps({"mlModelDescriptor": {
        "envelopeVersion": "2021-01-01", "framework": "ONNX",
        "inputs": [{"name": "data", "shape": [1, 3, 16, 16]}]}}))
    return pkg


def _add(cli: Callable[..., Result], app: Path, model: Path, *more: str, name: str = "model_asset") -> Result:
    return cli("add-raw-model", "--model-asset-name", name, "--model-local-path", model,
               "--descriptor-path", f"packages/{MODEL}/descriptor.json", *more, cwd=app)


def test_archive(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = _model_package(cli, app)
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(tar_gz({"model.onnx": conv_model()}))
    r = _add(cli, app, archive, "--packages-path", f"packages/{MODEL}")
    assert r.code == 0, r.err
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    desc_sha = hashlib.sha256((pkg / "descriptor.json").read_bytes()).hexdigest()
    assert (app / "assets" / f"{sha}.tar.gz").read_bytes() == archive.read_bytes()
    assert (app / "assets" / f"{desc_sha}.json").read_bytes() == (pkg / "descriptor.json").read_bytes()
    assert package_json(pkg)["assets"] == [{"name": "model_asset", "implementations": [
        {"type": "model", "assetUri": f"{sha}.tar.gz", "descriptorUri": f"{desc_sha}.json"}]}]
    loaded = load_application(app).packages["123456789012::MODEL"]
    assert loaded.files["model_asset"] == app / "assets" / f"{sha}.tar.gz"
    assert loaded.descriptors["model_asset"].framework == "ONNX"  # type: ignore[union-attr]


def test_onnx_file_is_packed_and_replaces(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = _model_package(cli, app)
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(conv_model(seed=1))
    assert _add(cli, app, onnx, "--packages-path", pkg).code == 0
    first = package_json(pkg)["assets"][0]["implementations"][0]["assetUri"]
    with tarfile.open(app / "assets" / first) as tar:
        assert tar.getnames() == ["net.onnx"]
    assert _add(cli, app, onnx, "--packages-path", pkg).code == 0  # the same bytes again: same digest
    assert package_json(pkg)["assets"][0]["implementations"][0]["assetUri"] == first
    onnx.write_bytes(conv_model(seed=2))
    r = _add(cli, app, onnx, "--packages-path", pkg)
    assert r.code == 0 and f"removed the replaced assets/{first}" in r.out
    assert len(package_json(pkg)["assets"]) == 1


def test_new_asset_gets_an_interface_and_node(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = _model_package(cli, app)
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_model())
    assert _add(cli, app, model, "--packages-path", pkg).code == 0
    r = _add(cli, app, model, "--packages-path", pkg, name="second_model")
    assert r.code == 0, r.err
    assert "graph node second_model added" in r.out
    assert [i["asset"] for i in package_json(pkg)["interfaces"]] == ["model_asset", "second_model"]
    load_application(app)


def test_without_packages_prints_the_asset(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = new_project(cli, tmp_path)
    _model_package(cli, app)
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_model())
    r = _add(cli, app, model)
    assert r.code == 0 and "add this to the assets" in r.out and '"type": "model"' in r.out


@pytest.mark.parametrize(("args", "message"), [
    (["--model-local-path", "nope.tar.gz"], "no such file or folder"),
    (["--model-local-path", "graphs/app/graph.json"], "not a model archive (.tar.gz), .onnx file or folder"),
    (["--model-s3-uri", "s3://bucket/m.tar.gz"], "panoflow does not download from S3"),
])
def test_errors(cli: Callable[..., Result], tmp_path: Path, args: list[str], message: str) -> None:
    app = new_project(cli, tmp_path)
    _model_package(cli, app)
    r = cli("add-raw-model", "--model-asset-name", "m", *args, "--descriptor-path",
            f"packages/{MODEL}/descriptor.json", cwd=app)
    assert r.code == 1 and message in r.err and "Traceback" not in r.err


def test_code_descriptor_is_refused(cli: Callable[..., Result], tmp_path: Path) -> None:
    app = new_project(cli, tmp_path)
    _model_package(cli, app)
    assert cli("create-package", "--name", "CODE", cwd=app).code == 0
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_model())
    r = cli("add-raw-model", "--model-asset-name", "m", "--model-local-path", model, "--descriptor-path",
            "packages/123456789012-CODE-1.0/descriptor.json", cwd=app)
    assert r.code == 1 and "a model needs an mlModelDescriptor" in r.err
