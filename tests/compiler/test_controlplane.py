"""The control plane compiles at RegisterPackageVersion, as Panorama did with SageMaker Neo: the compiled
model is a generated asset of the version (listed in its Assets, so devices download it), and a device's model
store runs it without compiling; a model that cannot be compiled is recorded in StatusDescription and left to
the device."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from panoflow.compiler import CompileOptions, ModelCompiler, PipSource
from panoflow.controlplane import ControlPlane, open_store
from panoflow.core.graph import resolve
from panoflow.core.manifest import load_application
from panoflow.modelstore import ModelStore
from tests.compiler.models import Model, Packaged, fixed_input, package_model, tar_folder

# the first test may create the converter environments
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _register(plane: ControlPlane, packaged: Packaged) -> tuple[str, str]:
    """Upload the package's files where StorageLocation says and register it (as package-application does)."""
    created = plane.call("CreatePackage", {"PackageName": "TEST_MODEL"})
    loc = created["StorageLocation"]
    manifest = (packaged.package / "package.json").read_bytes()
    for path in (packaged.archive, packaged.descriptor):
        plane.assets.put(f"{loc['BinaryPrefixLocation']}/{path.name}", io.BytesIO(path.read_bytes()))
    patch = hashlib.sha256(manifest).hexdigest()
    plane.assets.put(f"{loc['ManifestPrefixLocation']}/{patch}.json", io.BytesIO(manifest))
    plane.call("RegisterPackageVersion", {"PackageId": created["PackageId"], "PackageVersion": "1.0",
                                          "PatchVersion": patch, "MarkLatest": True})
    return created["PackageId"], patch


def _doc(plane: ControlPlane, package_id: str, patch: str) -> dict[str, object]:
    with plane.store.transaction() as tx:
        row = tx.get("package_versions", f"{package_id}/1.0/{patch}")
    assert row is not None
    return dict(row.doc)


def test_register_stores_the_compiled_model_and_devices_run_it(models: dict[str, Model],
                                                               tmp_path: Path) -> None:
    model = models["gluon"]
    packaged = package_model(model, tmp_path / "app")
    plane = ControlPlane(open_store(f"sqlite:///{tmp_path / 'cp.db'}"), assets=tmp_path / "store")
    package_id, patch = _register(plane, packaged)
    doc = _doc(plane, package_id, patch)
    generated = [a for a in doc["Assets"] if a["FileName"].startswith("compiled-")]  # type: ignore[union-attr,index]
    assert len(generated) == 1
    entry = generated[0]
    digest = packaged.archive.name[:64]
    assert entry["FileName"] == f"compiled-{digest}-{packaged.descriptor.name[:16]}.onnx"
    assert entry["Key"].startswith(f"123456789012/nodePackages/{package_id}/generated/")
    [record] = doc["CompiledModels"]  # type: ignore[misc]
    assert record["Status"] == "COMPILED" and record["Framework"] == "MXNET" and record["MaxAbsDiff"] < 1e-4
    described = plane.call("DescribePackageVersion", {"PackageId": package_id, "PackageVersion": "1.0"})
    assert described["Status"] == "REGISTER_COMPLETED" and "StatusDescription" not in described

    # the device: the assembled application folder holds every asset of the version, the generated one too
    device_assets = packaged.project / "assets"
    with plane.assets.open(entry["Key"]) as src, open(device_assets / entry["FileName"], "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert hashlib.sha256((device_assets / entry["FileName"]).read_bytes()).hexdigest() == entry["Sha256"]
    app = packaged.project
    spec = resolve(load_application(app), cameras={"camera_node": ["/clip.mp4"]}).models["model_node"]
    offline = ModelCompiler(CompileOptions(converters_dir=tmp_path / "no-converters",
                                           pip=PipSource(no_index=True)))
    files = ModelStore(tmp_path / "device-models", compiler=offline).prepare(spec)
    assert files.path == device_assets / entry["FileName"]  # nothing compiled on the device
    # engines go there
    assert files.cache_dir is not None and tmp_path / "device-models" in files.cache_dir.parents
    assert not (tmp_path / "no-converters").exists()
    session = ort.InferenceSession(str(files.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": fixed_input(model)})
    np.testing.assert_allclose(got[0], model.fixed_output[0], rtol=0, atol=1e-4)


def test_a_model_that_cannot_be_compiled_is_left_to_the_device(models: dict[str, Model],
                                                               tmp_path: Path) -> None:
    model = models["gluon"]
    only_symbol = tmp_path / "symbol-only"
    only_symbol.mkdir()
    shutil.copy(model.folder / "net-symbol.json", only_symbol)
    packaged = package_model(model, tmp_path / "app", archive=tar_folder(only_symbol, tmp_path / "m.tar.gz"))
    plane = ControlPlane(open_store(f"sqlite:///{tmp_path / 'cp.db'}"), assets=tmp_path / "store")
    package_id, patch = _register(plane, packaged)
    doc = _doc(plane, package_id, patch)
    assert not [a for a in doc["Assets"] if a["FileName"].startswith("compiled-")]  # type: ignore[union-attr,index]
    [record] = doc["CompiledModels"]  # type: ignore[misc]
    assert record["Status"] == "FAILED" and "net-<epoch>.params" in record["Reason"]
    described = plane.call("DescribePackageVersion", {"PackageId": package_id, "PackageVersion": "1.0"})
    assert described["Status"] == "REGISTER_COMPLETED"
    assert described["StatusDescription"].startswith("model asset model_asset was not compiled: model "
                                                     "archive ")
    assert packaged.descriptor.name in described["StatusDescription"]
    assert json.dumps(doc["Assets"])  # the package's own files are still registered
