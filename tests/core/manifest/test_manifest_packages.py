"""Packages on disk: where descriptors come from, asset files and their SHA-256, the assumed model package."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from panoflow.core.manifest import (
    PackageRef,
    RuntimeDescriptor,
    builtin_package,
    builtin_packages,
    load_package,
)

MODEL = {"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": "MXNET",
                               "inputs": [{"name": "data", "shape": [1, 3, 8, 8]}]}}
CODE = {"runtimeDescriptor": {"envelopeVersion": "2021-01-01", "entry": {"path": "python3",
                                                                         "name": "/panorama/a.py"}}}
REF = PackageRef("123456789012", "PKG", "1.0")


def _package(app: Path, assets: list[dict[str, object]], interfaces: list[dict[str, object]]) -> Path:
    folder = app / "packages" / REF.folder_name
    folder.mkdir(parents=True)
    doc = {"nodePackage": {"envelopeVersion": "2021-01-01", "name": "PKG", "version": "1.0", "assets": assets,
                           "interfaces": interfaces}}
    (folder / "package.json").write_text(json.dumps(doc))
    return folder


def _model_iface(name: str, asset: str) -> dict[str, object]:
    return {"name": name, "category": "ml_model", "asset": asset, "inputs": [{"name": "video_in",
                                                                              "type": "media"}],
            "outputs": [{"name": "video_out", "type": "media"}]}


def _model_asset(name: str, uri: str = "x.tar.gz", descriptor: str = "") -> dict[str, object]:
    impl: dict[str, object] = {"type": "model", "assetUri": uri}
    if descriptor:
        impl["descriptorUri"] = descriptor
    return {"name": name, "implementations": [impl]}


def test_missing_folder_is_not_loaded_and_not_reported_here(tmp_path: Path) -> None:
    loaded = load_package(tmp_path, REF)
    assert loaded.package is None and loaded.problems == [] and not loaded.folder_exists


def test_descriptor_with_most_matching_words_wins(tmp_path: Path) -> None:
    folder = _package(tmp_path, [_model_asset("people_detection_model"), _model_asset("pose_model_4")],
                      [_model_iface("a", "people_detection_model"), _model_iface("b", "pose_model_4")])
    shapes = {"descriptor_people.json": 1, "descriptor_people_detection.json": 2, "descriptor_pose_4.json": 3}
    for name, batch in shapes.items():
        doc = json.loads(json.dumps(MODEL))
        doc["mlModelDescriptor"]["inputs"][0]["shape"][0] = batch
        (folder / name).write_text(json.dumps(doc))
    loaded = load_package(tmp_path, REF)
    assert loaded.problems == []
    assert loaded.package is not None
    batches = {k: v.inputs[0].shape[0] for k, v in loaded.package.descriptors.items()}  # type: ignore[union-attr]
    assert batches == {"people_detection_model": 2, "pose_model_4": 3}


def test_descriptor_json_is_the_fallback_and_assets_win_over_the_folder(tmp_path: Path) -> None:
    content = json.dumps(CODE).encode()
    sha = hashlib.sha256(content).hexdigest()
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / f"{sha}.json").write_bytes(content)
    folder = _package(tmp_path, [{"name": "code", "implementations": [
        {"type": "container", "assetUri": "c.tar.gz", "descriptorUri": f"{sha}.json"}]},
                                 _model_asset("model_asset")],
        [{"name": "i", "category": "business_logic", "asset": "code"}, _model_iface("m", "model_asset")])
    (folder / "descriptor.json").write_text(json.dumps(MODEL))
    loaded = load_package(tmp_path, REF)
    assert loaded.problems == [] and loaded.package is not None
    assert loaded.package.descriptors["code"] == RuntimeDescriptor("2021-01-01", "python3", "/panorama/a.py")
    assert loaded.package.descriptors["model_asset"].framework == "MXNET"  # type: ignore[union-attr]
    assert dict(loaded.package.files) == {}


def test_descriptor_with_wrong_sha_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    bogus = "0" * 64 + ".json"
    (tmp_path / "assets" / bogus).write_text(json.dumps(MODEL))
    _package(tmp_path, [_model_asset("m", descriptor=bogus)], [_model_iface("i", "m")])
    loaded = load_package(tmp_path, REF)
    assert [(p.file, p.pointer) for p in loaded.problems] == [(f"assets/{bogus}", "")]


def test_uris_that_leave_assets_are_never_opened(tmp_path: Path) -> None:
    (tmp_path / "secret.json").write_text(json.dumps(MODEL))
    _package(tmp_path, [_model_asset("m", uri="../secret.json", descriptor="../secret.json")],
             [_model_iface("i", "m")])
    loaded = load_package(tmp_path, REF)
    assert loaded.problems == [] and loaded.package is not None
    assert dict(loaded.package.descriptors) == {} and dict(loaded.package.files) == {}


def test_model_package_without_package_json_is_assumed_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "packages" / REF.folder_name
    folder.mkdir(parents=True)
    (folder / "descriptor.json").write_text(json.dumps(MODEL))
    loaded = load_package(tmp_path, REF, interfaces=["model_interface"])
    (warning,) = loaded.problems
    assert (warning.file, warning.pointer, warning.severity) == (f"packages/{REF.folder_name}/package.json",
                                                                 "",
                                                                  "warning")
    assert loaded.package is not None
    iface = loaded.package.config.interface("model_interface")
    assert iface is not None and iface.category == "ml_model" and iface.input("video_in") is not None
    assert loaded.package.descriptors["model_asset"].framework == "MXNET"  # type: ignore[union-attr]


def test_code_package_without_package_json_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "packages" / REF.folder_name
    folder.mkdir(parents=True)
    (folder / "descriptor.json").write_text(json.dumps(CODE))
    loaded = load_package(tmp_path, REF)
    assert loaded.package is None and loaded.folder_exists
    assert [(p.file, p.message) for p in loaded.problems] == [(f"packages/{REF.folder_name}/package.json",
                                                               "file not found")]


def test_descriptor_problems_are_reported_in_the_descriptor_file(tmp_path: Path,
                                                                 edit_json: Callable[..., None]) -> None:
    folder = _package(tmp_path, [], [_model_iface("i", "model_asset")])
    (folder / "descriptor.json").write_text('{"mlModelDescriptor": {"framework": "MXNET"}}')
    loaded = load_package(tmp_path, REF)
    assert {(p.file, p.pointer) for p in loaded.problems} == {(f"packages/{REF.folder_name}/descriptor.json",
                                                               "/mlModelDescriptor")}


def test_builtin_packages() -> None:
    names = sorted(p.ref.qualified for p in builtin_packages())
    assert names == ["panorama::abstract_rtsp_media_source", "panorama::hdmi_data_sink"]
    assert builtin_package(PackageRef("panorama", "hdmi_data_sink", "2.0")) is None
    assert builtin_package(PackageRef("123456789012", "hdmi_data_sink", "1.0")) is None
