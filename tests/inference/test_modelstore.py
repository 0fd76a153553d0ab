"""Model packages -> ModelFiles: the manifest loader's asset check, safe extraction, the digest cache,
frameworks."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from panoflow.archives import safe_extract
from panoflow.core.graph import ModelSpec, resolve
from panoflow.core.manifest import load_application
from panoflow.exceptions import ManifestError, ModelError
from panoflow.modelstore import ModelStore
from tests.support.apps import write_model_app
from tests.support.models import conv_model, tar_gz

ONNX = conv_model()


def spec_for(tmp_path: Path, archive: bytes, **package: object) -> ModelSpec:
    app = write_model_app(tmp_path / "app", "", model=ONNX, **package)
    # replace the archive write_model_app made with the one under test, renamed after its own digest
    pkg_json = next((app / "packages").glob("*TEST_MODEL*/package.json"))
    old = next((app / "assets").glob("*.tar.gz"))
    sha = hashlib.sha256(archive).hexdigest()
    old.unlink()
    (app / "assets" / f"{sha}.tar.gz").write_bytes(archive)
    pkg_json.write_text(pkg_json.read_text().replace(old.name, f"{sha}.tar.gz"))
    graph = resolve(load_application(app), cameras={"camera_node": ["/clip.mp4"]})
    return graph.models["model_node"]


def test_loader_verifies_the_archive_and_records_its_path(tmp_path: Path) -> None:
    app = write_model_app(tmp_path / "app", "", model=ONNX)
    archive = next((app / "assets").glob("*.tar.gz"))
    loaded = load_application(app)
    pkg = loaded.packages["123456789012::TEST_MODEL"]
    assert pkg.files["model_asset"] == archive
    assert pkg.descriptors["model_asset"].framework == "ONNX"  # type: ignore[union-attr]
    # a tampered archive is not handed on, and the loader says why
    archive.write_bytes(archive.read_bytes() + b"x")
    with pytest.raises(ManifestError, match="does not match the SHA-256 in its name"):
        load_application(app)


def test_prepare_extracts_once_per_digest_and_finds_the_onnx(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, tar_gz({"export/weights/model.onnx": ONNX, "export/labels.txt": b"a\nb\n"}))
    store = ModelStore(tmp_path / "cache")
    files = store.prepare(spec)
    assert files.path.read_bytes() == ONNX and files.path.name == "model.onnx"
    assert files.digest == spec.archive.name.split(".")[0]  # type: ignore[union-attr]
    assert files.path.is_relative_to(tmp_path / "cache" / files.digest)
    assert files.framework == "ONNX" and files.precision == "FP32"
    assert [(t.name, t.shape) for t in files.inputs] == [("data", (1, 3, 16, 16))]
    (files.path.parent / "marker").write_text("kept")  # the cache is keyed by digest: no second extraction
    again = ModelStore(tmp_path / "cache").prepare(spec)
    assert again == files and (files.path.parent / "marker").read_text() == "kept"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [files.digest]  # no temporary left


def test_precision_mode_is_passed_on(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, tar_gz({"model.onnx": ONNX}), precision="FP16")
    assert ModelStore(tmp_path / "c").prepare(spec).precision == "FP16"


def _tar(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(_file("model.onnx", ONNX), io.BytesIO(ONNX))
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("../evil"), "'..' in its path"),
        (_file("a/../../evil"), "'..' in its path"),
        (_link("up", "../../etc/passwd"), "link leaving the archive"),
        (_link("abs", "/etc/passwd"), "link to an absolute path"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "link leaving the archive"),
        (_device("dev"), "device or FIFO"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path: Path, member: tarfile.TarInfo, reason: str) -> None:
    spec = spec_for(tmp_path, _tar(member))
    with pytest.raises(ModelError, match=f"refusing archive member .*{reason}"):
        ModelStore(tmp_path / "cache").prepare(spec)
    assert not (tmp_path / "evil").exists()
    assert not any((tmp_path / "cache").iterdir())


def test_links_inside_the_archive_are_fine(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz({"real/model.onnx": ONNX}, links={"model.onnx": "real/model.onnx"}))
    safe_extract(archive, target)
    assert (target / "model.onnx").read_bytes() == ONNX


@pytest.mark.parametrize(
    ("framework", "files", "hint"),
    [
        # PYTORCH, MXNET and TENSORFLOW archives without an .onnx are compiled: tests/compiler
        ("ONNX", {"readme.txt": b"no model"}, r"framework ONNX needs an \.onnx file"),
    ],
)
def test_archives_without_onnx_say_how_to_export(tmp_path: Path, framework: str, files: dict[str, bytes],
                                                 hint: str) -> None:
    spec = spec_for(tmp_path, tar_gz(files), framework=framework)
    with pytest.raises(ModelError, match=hint) as info:
        ModelStore(tmp_path / "cache").prepare(spec)
    message = str(info.value)
    assert "model.onnx" in message and next(iter(files)) in message


@pytest.mark.parametrize("framework", ["PYTORCH", "TENSORFLOW", "MXNET"])
def test_panorama_frameworks_run_when_the_archive_holds_an_onnx(tmp_path: Path, framework: str) -> None:
    spec = spec_for(tmp_path, tar_gz({"model.pth": b"pt", "model.onnx": ONNX}), framework=framework)
    files = ModelStore(tmp_path / "cache").prepare(spec)
    assert files.path.read_bytes() == ONNX and files.framework == framework


def test_several_onnx_files_need_a_model_onnx(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, tar_gz({"a.onnx": ONNX, "b.onnx": ONNX}))
    with pytest.raises(ModelError, match=r"several \.onnx files \(a\.onnx, b\.onnx\)"):
        ModelStore(tmp_path / "cache").prepare(spec)
    spec = spec_for(tmp_path / "2", tar_gz({"a.onnx": b"x", "model.onnx": ONNX}))
    assert ModelStore(tmp_path / "cache").prepare(spec).path.name == "model.onnx"


def test_missing_archive_and_damaged_archive(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, tar_gz({"model.onnx": ONNX}))
    missing = ModelSpec(spec.node_id, spec.package, spec.asset, spec.descriptor, None)
    with pytest.raises(ModelError, match=r"model archive of asset 'model_asset' \([0-9a-f]{64}\.tar\.gz\) is "
                                         r"not in"):
        ModelStore(tmp_path / "cache").prepare(missing)
    no_desc = ModelSpec(spec.node_id, spec.package, spec.asset, None, spec.archive)
    with pytest.raises(ModelError, match="has no mlModelDescriptor"):
        ModelStore(tmp_path / "cache").prepare(no_desc)
    bad = spec_for(tmp_path / "bad", b"not a tar archive at all")
    with pytest.raises(ModelError, match="model archive [0-9a-f]{64}.tar.gz: "):
        ModelStore(tmp_path / "cache").prepare(bad)


def test_archive_that_no_longer_matches_its_name_is_refused(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, tar_gz({"model.onnx": ONNX}))
    assert spec.archive is not None
    spec.archive.write_bytes(tar_gz({"model.onnx": conv_model(seed=9)}))  # changed after the manifests loaded
    with pytest.raises(ModelError, match="does not match the SHA-256 in its name"):
        ModelStore(tmp_path / "cache").prepare(spec)
