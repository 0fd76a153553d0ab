"""Packages, versions and nodes (RegisterPackageVersion reads and checks the uploaded package.json and assets,
as Panorama does) and the RTSP camera template job."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from panoflow.controlplane import ControlPlane
from panoflow.core.manifest import load_application
from tests.support.control_plane import error_of

MODEL = b"model archive bytes"
DESCRIPTOR = json.dumps({"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": "PYTORCH",
                                               "inputs": [{"name": "data",
                                                           "shape": [1, 3, 224, 224]}]}}).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_manifest(description: str = "a model", model: bytes = MODEL) -> dict[str, Any]:
    """A model package.json whose asset and descriptor are named by their SHA-256, as panorama-cli writes
    it."""
    return {"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": "SQUEEZENET_PYTORCH", "version": "1.0",
        "description": description, "assets": [{"name": "model_asset", "implementations": [
            {"type": "model", "assetUri": f"{_sha(model)}.tar.gz",
             "descriptorUri": f"{_sha(DESCRIPTOR)}.json"}]}],
        "interfaces": [{"name": "interface", "category": "ml_model", "asset": "model_asset",
                        "inputs": [{"name": "video_in", "type": "media"},
                                   {"name": "threshold", "type": "float32", "default": 0.5,
                                    "description": "minimum score"}],
                        "outputs": [{"name": "video_out", "type": "media"}]}]}}


def upload(plane: ControlPlane, created: dict[str, Any], manifest: dict[str, Any] | bytes,
           files: dict[str, bytes] | None = None) -> str:
    """Put the asset files and package.json where StorageLocation says; the patch version (sha256 of the
    bytes)."""
    loc = created["StorageLocation"]
    for name, data in (files if files is not None else {f"{_sha(MODEL)}.tar.gz": MODEL,
                                                          f"{_sha(DESCRIPTOR)}.json": DESCRIPTOR}).items():
        plane.assets.put(f"{loc['BinaryPrefixLocation']}/{name}", io.BytesIO(data))
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=2).encode()
    patch = _sha(data)
    plane.assets.put(f"{loc['ManifestPrefixLocation']}/{patch}.json", io.BytesIO(data))
    return patch


def version_doc(plane: ControlPlane, package_id: str, patch: str) -> dict[str, Any]:
    with plane.store.transaction() as tx:
        row = tx.get("package_versions", f"{package_id}/1.0/{patch}")
    assert row is not None
    return row.doc


def test_package_lifecycle(pano: Any, plane: ControlPlane) -> None:
    created = pano.create_package(PackageName="SQUEEZENET_PYTORCH", Tags={"team": "cv"})
    pid = created["PackageId"]
    loc = created["StorageLocation"]
    assert loc["Bucket"] == "panoflow-assets" and loc["ManifestPrefixLocation"].endswith(f"{pid}/manifests")
    assert pano.create_package(PackageName="SQUEEZENET_PYTORCH")["PackageId"] == pid  # idempotent by name
    described = pano.describe_package(PackageId=pid)
    assert (described["PackageName"], described["Tags"]) == ("SQUEEZENET_PYTORCH", {"team": "cv"})
    assert [p["PackageId"] for p in pano.list_packages()["Packages"]] == [pid]

    first = upload(plane, created, model_manifest("first"))
    second = upload(plane, created, model_manifest("second"))
    pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=first, MarkLatest=True)
    pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=second)
    latest = pano.describe_package_version(PackageId=pid, PackageVersion="1.0")
    assert (latest["PatchVersion"], latest["IsLatestPatch"], latest["Status"]) == (first, True,
                                                                                   "REGISTER_COMPLETED")
    other = pano.describe_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=second)
    assert other["IsLatestPatch"] is False

    with pytest.raises(ClientError) as err:
        pano.delete_package(PackageId=pid)
    assert error_of(err.value)[:2] == ("ConflictException", 409)

    pano.deregister_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=first,
                                    UpdatedLatestPatchVersion=second)
    assert pano.describe_package_version(PackageId=pid, PackageVersion="1.0")["PatchVersion"] == second
    with pytest.raises(ClientError) as err:
        pano.describe_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=first)
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
    assert {n["PatchVersion"] for n in pano.list_nodes(PackageName="SQUEEZENET_PYTORCH")["Nodes"]} == {second}

    pano.delete_package(PackageId=pid, ForceDelete=True)
    assert pano.list_packages()["Packages"] == []
    with pytest.raises(ClientError) as err:
        pano.describe_package(PackageId=pid)
    assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)


def test_register_records_manifest_assets_and_nodes(pano: Any, plane: ControlPlane) -> None:
    created = pano.create_package(PackageName="SQUEEZENET_PYTORCH")
    pid, loc = created["PackageId"], created["StorageLocation"]
    manifest = model_manifest()
    patch = upload(plane, created, manifest)
    for _ in range(2):  # re-registering a patch replaces its nodes
        pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=patch,
                                      MarkLatest=True)
    nodes = pano.list_nodes(PackageName="SQUEEZENET_PYTORCH")["Nodes"]
    assert [(n["Name"], n["Category"], n["PatchVersion"]) for n in nodes] == \
        [("interface", "ML_MODEL", patch)]
    node = pano.describe_node(NodeId=nodes[0]["NodeId"])
    assert (node["AssetName"], node["Description"], node["PackageVersion"]) == ("model_asset", "a model",
                                                                                "1.0")
    assert node["NodeInterface"] == {
        "Inputs": [{"Name": "video_in", "Type": "MEDIA"},
                   {"Name": "threshold", "Type": "FLOAT32", "Description": "minimum score",
                    "DefaultValue": "0.5"}],
        "Outputs": [{"Name": "video_out", "Type": "MEDIA"}]}
    assert pano.list_nodes(Category="ML_MODEL")["Nodes"][0]["NodeId"] == node["NodeId"]

    doc = version_doc(plane, pid, patch)
    assert doc["Manifest"] == manifest
    binaries = loc["BinaryPrefixLocation"]
    assert doc["Assets"] == [
        {"Key": f"{binaries}/{_sha(MODEL)}.tar.gz", "FileName": f"{_sha(MODEL)}.tar.gz",
         "Sha256": _sha(MODEL), "Size": len(MODEL)},
        {"Key": f"{binaries}/{_sha(DESCRIPTOR)}.json", "FileName": f"{_sha(DESCRIPTOR)}.json",
         "Sha256": _sha(DESCRIPTOR), "Size": len(DESCRIPTOR)}]


def _refused(pano: Any, pid: str, patch: str) -> str:
    with pytest.raises(ClientError) as err:
        pano.register_package_version(PackageId=pid, PackageVersion="1.0", PatchVersion=patch)
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400)
    return message


def test_register_refuses_what_panorama_refuses(pano: Any, plane: ControlPlane) -> None:
    created = pano.create_package(PackageName="SQUEEZENET_PYTORCH")
    pid, loc = created["PackageId"], created["StorageLocation"]
    # no manifest uploaded: the message names the key
    message = _refused(pano, pid, "abc123")
    assert f"{loc['ManifestPrefixLocation']}/abc123.json" in message and "not in the asset store" in message
    # a manifest whose SHA-256 is not the patch version
    plane.assets.put(f"{loc['ManifestPrefixLocation']}/abc123.json", io.BytesIO(b"{}"))
    assert "is not the SHA-256 of the package manifest" in _refused(pano, pid, "abc123")
    # an invalid manifest: the JSON pointer
    bad = model_manifest()
    bad["nodePackage"]["interfaces"][0]["category"] = "toaster"
    message = _refused(pano, pid, upload(plane, created, bad))
    assert "JSON pointer '/nodePackage/interfaces/0/category" in message
    assert "JSON pointer '/'" in _refused(pano, pid, upload(plane, created, b"{not json"))
    # another version than the one registered
    other = model_manifest()
    other["nodePackage"]["version"] = "2.0"
    assert "/nodePackage/version" in _refused(pano, pid, upload(plane, created, other))
    # a missing asset file
    message = _refused(pano, pid, upload(plane, created, model_manifest(model=b"never uploaded"), files={}))
    assert f"{loc['BinaryPrefixLocation']}/{_sha(b'never uploaded')}.tar.gz" in message
    assert "not in the asset store" in message
    # an asset whose bytes are not what its name claims
    plane.assets.put(f"{loc['BinaryPrefixLocation']}/{_sha(MODEL)}.tar.gz", io.BytesIO(b"tampered"))
    message = _refused(pano, pid, upload(plane, created, model_manifest("x"), files={}))
    assert f"not the {_sha(MODEL)} its name claims" in message
    assert pano.list_nodes()["Nodes"] == []
    with pytest.raises(ClientError):
        pano.describe_package_version(PackageId=pid, PackageVersion="1.0")


def test_camera_template_job_creates_a_media_source_node(pano: Any, plane: ControlPlane,
                                                         tmp_path: Path) -> None:
    job = pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="lobby_cam", OutputPackageVersion="1.0",
        NodeName="lobby", NodeDescription="Lobby camera",
        TemplateParameters={"Username": "admin", "Password": "hunter2", "StreamUrl": "rtsp://10.0.0.5/live"})
    described = pano.describe_node_from_template_job(JobId=job["JobId"])
    assert described["Status"] == "SUCCEEDED"
    assert described["TemplateParameters"] == {"Username": "SAVED_AS_SECRET", "Password": "SAVED_AS_SECRET",
                                               "StreamUrl": "rtsp://10.0.0.5/live"}
    assert [j["JobId"] for j in pano.list_node_from_template_jobs()["NodeFromTemplateJobs"]] == [job["JobId"]]

    nodes = pano.list_nodes(Category="MEDIA_SOURCE")["Nodes"]
    assert [(n["Name"], n["PackageName"], n["PackageVersion"]) for n in nodes] == [("lobby", "lobby_cam",
                                                                                    "1.0")]
    node = pano.describe_node(NodeId=nodes[0]["NodeId"])
    assert node["NodeInterface"] == {"Inputs": [], "Outputs": [
        {"Name": "video_out", "Type": "MEDIA", "Description": "The camera's RTSP stream"}]}
    assert "hunter2" not in repr(node)
    assert pano.list_nodes(Category="ML_MODEL")["Nodes"] == []
    version = pano.describe_package_version(PackageId=nodes[0]["PackageId"], PackageVersion="1.0")
    assert version["PatchVersion"] == nodes[0]["PatchVersion"]

    # the generated package.json (for the device): a camera package that panoflow's loader accepts
    doc = version_doc(plane, nodes[0]["PackageId"], version["PatchVersion"])
    assert doc["Assets"] == [] and "hunter2" not in json.dumps(doc["Manifest"])
    iface = doc["Manifest"]["nodePackage"]["interfaces"][0]
    assert (iface["name"], iface["category"], iface["outputs"][0]["name"]) == ("lobby", "media_source",
                                                                               "video_out")
    app = tmp_path / "app"
    (app / "graphs" / "app").mkdir(parents=True)
    (app / "packages" / "123456789012-lobby_cam-1.0").mkdir(parents=True)
    (app / "packages" / "123456789012-lobby_cam-1.0" / "package.json").write_text(json.dumps(doc["Manifest"]))
    (app / "graphs" / "app" / "graph.json").write_text(json.dumps({"nodeGraph": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": "123456789012::lobby_cam", "version": "1.0"},
                     {"name": "panorama::hdmi_data_sink", "version": "1.0"}],
        "nodes": [{"name": "camera_node", "interface": "123456789012::lobby_cam.lobby"},
                  {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"}],
        "edges": [{"producer": "camera_node.video_out", "consumer": "output_node.video_in"}]}}))
    loaded = load_application(app)
    assert loaded is not None


def test_camera_template_needs_a_stream_url(pano: Any) -> None:
    with pytest.raises(ClientError) as err:
        pano.create_node_from_template_job(
            TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="cam", OutputPackageVersion="1.0",
            NodeName="n", TemplateParameters={"Username": "u"})
    code, status, message = error_of(err.value)
    assert (code, status) == ("ValidationException", 400) and "StreamUrl" in message
    with pytest.raises(ClientError) as err:
        pano.create_node_from_template_job(
            TemplateType="ONVIF", OutputPackageName="cam", OutputPackageVersion="1.0", NodeName="n",
            TemplateParameters={"StreamUrl": "rtsp://x"})
    assert "TemplateType" in error_of(err.value)[2]


def test_missing_node_and_job(pano: Any) -> None:
    for call, kwargs in ((pano.describe_node, {"NodeId": "nope"}),
                         (pano.describe_node_from_template_job, {"JobId": "nope"})):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err.value)[:2] == ("ResourceNotFoundException", 404)
