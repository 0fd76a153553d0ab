"""package-application against a real control plane served in a thread (assets in a folder, and in S3 on a
real moto server): the packages are listed and registered with their nodes, a second run uploads nothing, a
tampered asset and wrong credentials are refused with messages that say what to do."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import AccessKey, ControlPlane, create_access_key, open_store, serve_in_thread
from panoflow.controlplane.assets import AssetStore, LocalAssetStore, S3AssetStore
from panoflow.controlplane.boto import client as panorama_client
from tests.packaging.commands import Result
from tests.packaging.projects import ACCOUNT, CODE, build, code_package, new_project

MODEL = f"{ACCOUNT}-MODEL-1.0"


@dataclass
class Plane:
    url: str
    plane: ControlPlane
    key: AccessKey

    def client(self) -> Any:
        return panorama_client(endpoint_url=self.url, region_name="us-east-1",
                               aws_access_key_id=self.key.access_key_id,
                               aws_secret_access_key=self.key.secret_access_key)


def _s3_store(moto_url: str) -> AssetStore:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    bucket = f"pf-packages-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    return S3AssetStore(bucket, "cp", client=s3)


@pytest.fixture(params=["folder", "s3"])
def control_plane(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    """A control plane over SQLite and the asset store in ``request.param``; the AWS environment holds its
    key."""
    store = open_store(f"sqlite:///{tmp_path / 'cp.db'}")
    assets = (LocalAssetStore(tmp_path / "cp-assets") if request.param == "folder"
              else _s3_store(request.getfixturevalue("moto_url")))
    key = create_access_key(store)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("AWS_ACCESS_KEY_ID", key.access_key_id),
                        ("AWS_SECRET_ACCESS_KEY", key.secret_access_key),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_CONFIG_FILE", str(tmp_path / "none")),
                        ("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))):
        monkeypatch.setenv(name, value)
    plane = ControlPlane(store, assets=assets)
    try:
        with serve_in_thread(plane) as url:
            yield Plane(url, plane, key)
    finally:
        store.close()


def _app(cli: Callable[..., Result], root: Path, wheelhouse: Path) -> Path:
    """A project with a built code package and a model package (add-raw-model), as a developer makes one."""
    app = new_project(cli, root)
    code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    r = cli("create-package", "--type", "Model", "--name", "MODEL", "--account", ACCOUNT, cwd=app)
    assert r.code == 0, r.err
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        weights = os.urandom(50_000)
        info = tarfile.TarInfo("model.pt")
        info.size = len(weights)
        tar.addfile(info, io.BytesIO(weights))
    r = cli("add-raw-model", "--model-asset-name", "model_asset", "--model-local-path", root / "model.tar.gz",
            "--descriptor-path", f"packages/{MODEL}/descriptor.json", "--packages-path", f"packages/{MODEL}",
            cwd=app)
    assert r.code == 0, r.err
    return app


def test_package_application_end_to_end(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path,
                                        control_plane: Plane) -> None:
    app = _app(cli, tmp_path, wheelhouse)
    r = cli("package-application", "--control-plane", control_plane.url, cwd=app)
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    uploaded = [line for line in r.err.splitlines() if line.endswith(": uploaded")]
    assert len(uploaded) == 6  # each package: asset + descriptor + package.json
    assert any(line.strip().startswith("assets/") and "bytes)" in line for line in uploaded)
    registered = {line.split()[1]: line for line in r.out.splitlines() if line.startswith("registered ")}
    assert set(registered) == {"CODE", "MODEL"}

    pano = control_plane.client()
    packages = {p["PackageName"]: p["PackageId"] for p in pano.list_packages()["Packages"]}
    assert set(packages) == {"CODE", "MODEL"}
    assert pano.describe_package(PackageId=packages["MODEL"])["StorageLocation"]["Bucket"] == \
        control_plane.plane.assets.bucket
    for name in ("CODE", "MODEL"):
        manifest = (app / "packages" / f"{ACCOUNT}-{name}-1.0" / "package.json").read_bytes()
        version = pano.describe_package_version(PackageId=packages[name], PackageVersion="1.0")
        assert (version["Status"], version["IsLatestPatch"], version["PatchVersion"]) == (
            "REGISTER_COMPLETED", True, hashlib.sha256(manifest).hexdigest())
    nodes = {n["PackageName"]: n for n in pano.list_nodes()["Nodes"]}
    assert (nodes["CODE"]["Category"], nodes["MODEL"]["Category"]) == ("BUSINESS_LOGIC", "ML_MODEL")
    node = pano.describe_node(NodeId=nodes["MODEL"]["NodeId"])
    assert node["AssetName"] == "model_asset" and node["NodeInterface"]["Inputs"][0]["Type"] == "MEDIA"

    # the recorded assets are the project's files, byte for byte
    with control_plane.plane.store.transaction() as tx:
        rows = tx.select("package_versions", {"package_id": packages["CODE"]})
    recorded = rows[0].doc["Assets"]
    assert {a["FileName"] for a in recorded} == {p.name for p in (app / "assets").iterdir()
                                                 if p.name in json.dumps(rows[0].doc["Manifest"])}
    for item in recorded:
        with control_plane.plane.assets.open(item["Key"]) as f:
            assert hashlib.sha256(f.read()).hexdigest() == item["Sha256"]

    # a second run uploads nothing (content addressed) and registers the same patches
    r = cli("package-application", "--control-plane", control_plane.url, cwd=app)
    assert r.code == 0, r.err
    assert [line for line in r.err.splitlines() if line.endswith(": uploaded")] == []
    assert len([line for line in r.err.splitlines() if "skipped, already uploaded" in line]) == 6
    assert len(pano.list_nodes()["Nodes"]) == 2


def test_tampered_and_refused(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path,
                              control_plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(cli, tmp_path, wheelhouse)
    url = control_plane.url

    # wrong credentials: the message says which key to use
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-of-this-key-xxxxxxxxxxxxxx")
    r = cli("package-application", "--control-plane", url, cwd=app)
    assert r.code == 1 and "Traceback" not in r.err
    assert "AWS_ACCESS_KEY_ID" in r.err and "panoflow control-plane keys create" in r.err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", control_plane.key.secret_access_key)

    # an asset file changed after it was built: refused before anything is uploaded
    model = next(p for p in (app / "assets").iterdir() if p.name.endswith(".tar.gz")
                 and p.name in (app / "packages" / MODEL / "package.json").read_text())
    original = model.read_bytes()
    model.write_bytes(b"tampered" + original)
    r = cli("package-application", "--control-plane", url, cwd=app)
    assert r.code == 1 and "does not match the SHA-256 in its name" in r.err and "Traceback" not in r.err
    model.write_bytes(original)

    # an object damaged in the control plane's store: RegisterPackageVersion refuses it, naming the file
    r = cli("package-application", "--control-plane", url, "--packages-path", f"packages/{MODEL}", cwd=app)
    assert r.code == 0, r.err
    pano = control_plane.client()
    (package,) = pano.list_packages()["Packages"]
    binaries = pano.describe_package(PackageId=package["PackageId"])["StorageLocation"][
        "BinaryPrefixLocation"
    ]
    control_plane.plane.assets.put(f"{binaries}/{model.name}", io.BytesIO(b"damaged" + original[7:]))
    patch = hashlib.sha256((app / "packages" / MODEL / "package.json").read_bytes()).hexdigest()
    with pytest.raises(ClientError) as err:
        pano.register_package_version(PackageId=package["PackageId"], PackageVersion="1.0",
                                      PatchVersion=patch)
    message = err.value.response["Error"]["Message"]
    assert f"{binaries}/{model.name}" in message and "its name claims" in message
    # package-application sees the store's digest differ, so it uploads the file again
    r = cli("package-application", "--control-plane", url, "--packages-path", f"packages/{MODEL}", cwd=app)
    assert r.code == 0, r.err
    assert f"assets/{model.name} ({len(original)} bytes): uploaded" in r.err


def test_unreachable_and_missing_url(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_project(cli, tmp_path)
    code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "PFAKNOTUSED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" * 40)
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cli("package-application", "--control-plane", f"http://127.0.0.1:{port}", cwd=app)
    assert r.code == 1 and "Traceback" not in r.err
    assert f"cannot reach the control plane at http://127.0.0.1:{port}" in r.err
    r = cli("package-application", cwd=app)
    assert r.code == 1 and "needs --control-plane URL" in r.err
    r = cli("package-application", "--control-plane", "ftp://x", cwd=app)
    assert r.code == 1 and "expected http://HOST:PORT" in r.err


def test_dry_run_lists_the_upload(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    pkg = code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    r = cli("package-application", "--dry-run", "--packages-path", f"packages/{CODE}", cwd=app)
    assert r.code == 0, r.err
    patch = hashlib.sha256((pkg / "package.json").read_bytes()).hexdigest()
    assert r.out.splitlines()[0] == f"CODE 1.0 (patch {patch[:12]}): 2 file(s) + package.json"
    assets = sorted(p.name for p in (app / "assets").iterdir())
    assert sorted(line.strip().removeprefix("assets/") for line in r.out.splitlines()[1:]) == assets
    next(p for p in (app / "assets").iterdir() if p.suffix == ".json").write_text("{}")
    r = cli("package-application", "--dry-run", cwd=app)
    assert r.code == 1 and "does not match the SHA-256 in its name" in r.err


def test_an_unbuilt_code_package_is_refused_naming_build_container(cli: Callable[..., Result], tmp_path: Path,
                                                                   wheelhouse: Path) -> None:
    app = new_project(cli, tmp_path)
    code_package(cli, app)
    for extra in (["--dry-run"], ["--control-plane", "http://127.0.0.1:9"]):
        r = cli("package-application", *extra, cwd=app)
        assert r.code == 1 and "Traceback" not in r.err
        assert (f"packages/{CODE}/package.json: interface 'interface' runs code asset 'code_asset', which "
                "was never built or added; run panoflow build-container --container-asset-name code_asset "
                f"--package-path packages/{CODE} first") in r.err, r.err
    r = cli("create-package", "--type", "Model", "--name", "MODEL", "--account", ACCOUNT, cwd=app)
    assert r.code == 0, r.err
    assert build(cli, app, wheelhouse).code == 0
    r = cli("package-application", "--dry-run", cwd=app)
    assert r.code == 1 and "model asset 'model_asset'" in r.err and "panoflow add-raw-model" in r.err, r.err
    r = cli("package-application", "--dry-run", "--packages-path", f"packages/{CODE}", cwd=app)
    assert r.code == 0, r.err


def test_the_project_folder_may_be_given_as_an_argument(cli: Callable[..., Result], tmp_path: Path,
                                                        wheelhouse: Path) -> None:
    """README: ``panoflow package-application ./my_app --control-plane URL``."""
    app = new_project(cli, tmp_path)
    code_package(cli, app)
    assert build(cli, app, wheelhouse).code == 0
    by_flag = cli("package-application", "--dry-run", "--project-dir", app, cwd=tmp_path)
    assert by_flag.code == 0 and by_flag.out.startswith("CODE 1.0"), by_flag.err
    by_argument = cli("package-application", "./app", "--dry-run", cwd=tmp_path)
    assert (by_argument.code, by_argument.out) == (0, by_flag.out), by_argument.err
    both = cli("package-application", "./app", "--dry-run", "--project-dir", "./app", cwd=tmp_path)
    assert both.code == 0, both.err
    r = cli("package-application", str(tmp_path), "--dry-run", "--project-dir", "./app", cwd=tmp_path)
    assert r.code == 1 and "two project folders given" in r.err, r.err
    r = cli("create-package", "./app", "--type", "Camera", "--name", "lobby", "--account", ACCOUNT,
            cwd=tmp_path)
    assert r.code == 0 and (app / "packages" / f"{ACCOUNT}-lobby-1.0").is_dir(), r.err
