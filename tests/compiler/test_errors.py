"""Bad model packages give one clear error naming the archive and the descriptor (no traceback), from
``compile-model`` and from ``panoflow run``; a model the converter cannot reproduce within the tolerance is
refused with both numbers; an offline machine without a wheelhouse is told what to do."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.compiler.models import Model, Packaged, package_model, panoflow, run_app, tar_folder

# the first test may create the converter environments
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _compile(packaged: Packaged, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return panoflow("compile-model", "--model-local-path", str(packaged.archive), "--descriptor-path",
                    str(packaged.descriptor), "--output", str(tmp_path / "out.onnx"), "--cache-dir",
                    str(tmp_path / "cache"), *extra)


def _one_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("panoflow: error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    return errors[0]


def _replace_archive(packaged: Packaged, data: bytes) -> Path:
    """Swap the package's archive for ``data`` (named by its SHA-256, as add-raw-model names files)."""
    name = f"{hashlib.sha256(data).hexdigest()}.tar.gz"
    (packaged.project / "assets" / name).write_bytes(data)
    manifest = packaged.package / "package.json"
    doc = json.loads(manifest.read_text())
    doc["nodePackage"]["assets"][0]["implementations"][0]["assetUri"] = name
    manifest.write_text(json.dumps(doc, indent=2))
    return packaged.project / "assets" / name


def test_corrupt_archive(models: dict[str, Model], clip: Path, tmp_path: Path) -> None:
    model = models["gluon"]
    packaged = package_model(model, tmp_path / "app")
    bad = _replace_archive(packaged, b"\x1f\x8b this is not a gzip stream at all")
    line = _one_error(_compile(Packaged(packaged.project, packaged.package, bad, packaged.descriptor),
                               tmp_path).stderr)
    assert str(bad) in line and str(packaged.descriptor) in line and "not a readable model archive" in line
    proc = run_app(packaged.project, clip, tmp_path / "state")
    assert proc.returncode == 1
    line = _one_error(proc.stderr)
    assert "node model_node" in line and bad.name in line and packaged.descriptor.name in line


def test_missing_params_file(models: dict[str, Model], clip: Path, tmp_path: Path) -> None:
    model = models["gluon"]
    only_symbol = tmp_path / "symbol-only"
    only_symbol.mkdir()
    shutil.copy(model.folder / "net-symbol.json", only_symbol)
    archive = tar_folder(only_symbol, tmp_path / "model.tar.gz")
    packaged = package_model(model, tmp_path / "app", archive=archive)
    line = _one_error(_compile(packaged, tmp_path).stderr)
    assert "the params file of net-symbol.json is missing: expected net-<epoch>.params" in line
    assert str(packaged.archive) in line and str(packaged.descriptor) in line
    proc = run_app(packaged.project, clip, tmp_path / "state")
    assert proc.returncode == 1
    line = _one_error(proc.stderr)
    assert "net-<epoch>.params" in line and packaged.archive.name in line and packaged.descriptor.name in line


def test_wrong_input_name(models: dict[str, Model], clip: Path, tmp_path: Path) -> None:
    model = models["gluon"]
    desc = {"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": "MXNET",
                                  "inputs": [{"name": "image", "shape": [1, 3, 64, 64]}]}}
    packaged = package_model(model, tmp_path / "app", descriptor=desc)
    line = _one_error(_compile(packaged, tmp_path).stderr)
    assert "the model has no input named 'image'; its inputs are 'data'" in line
    assert str(packaged.archive) in line and str(packaged.descriptor) in line
    proc = run_app(packaged.project, clip, tmp_path / "state")
    assert proc.returncode == 1
    line = _one_error(proc.stderr)
    assert (
        "no input named 'image'" in line
        and packaged.archive.name in line
        and packaged.descriptor.name in line
    )


def test_not_a_torchscript_file_and_a_wrong_tensorflow_input(models: dict[str, Model],
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "state_dict"
    folder.mkdir()
    (folder / "model.pth").write_bytes(b"\x80\x02}q\x00.")  # a pickle, as torch.save(state_dict) writes
    packaged = package_model(
        models["squeezenet"], tmp_path / "torch", archive=tar_folder(folder, tmp_path / "t.tar.gz")
    )
    line = _one_error(_compile(packaged, tmp_path / "a").stderr)
    assert "model.pth is not a TorchScript file" in line and str(packaged.descriptor) in line
    desc = models["ssd_tf"].descriptor(inputs=[{"name": "images", "shape": [1, 96, 96, 3]}])
    packaged = package_model(models["ssd_tf"], tmp_path / "tf", descriptor=desc)
    line = _one_error(_compile(packaged, tmp_path / "b").stderr)
    assert "no input named 'images'; its inputs are 'image_tensor'" in line and str(packaged.archive) in line


def test_beyond_the_tolerance_is_refused_with_both_numbers(models: dict[str, Model], tmp_path: Path) -> None:
    packaged = package_model(models["ssd_mxnet"], tmp_path / "app")
    done = _compile(packaged, tmp_path, "--tolerance", "1e-12")  # MXNet's own float rounding is larger
    line = _one_error(done.stderr)
    assert "differs from the MXNET model by " in line and " absolute and " in line and " relative " in line
    assert "beyond the tolerance of 1e-12 relative" in line and str(packaged.descriptor) in line
    assert not (tmp_path / "out.onnx").exists()
    assert list((tmp_path / "cache").glob("*/model/ssd-symbol.json"))  # it was extracted ...
    cached = [p for p in (tmp_path / "cache").glob("*/compiled/*") if not p.name.endswith(".lock")]
    assert not cached  # ... and nothing refused is cached


@pytest.mark.skipif(sys.platform != "linux", reason="venv layout")
def test_offline_without_a_wheelhouse_says_what_to_do(models: dict[str, Model], tmp_path: Path) -> None:
    packaged = package_model(models["gluon"], tmp_path / "app")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    done = _compile(packaged, tmp_path, "--converters-dir", str(tmp_path / "converters"), "--find-links",
                    str(wheelhouse), "--no-index")
    line = _one_error(done.stderr)
    assert "creating the MXNET converter environment failed: pip install mxnet==1.9.1" in line
    assert f"from the wheelhouse {wheelhouse}" in line and "pip download -d WHEELHOUSE" in line
    assert "control plane" in line
    assert "creating the MXNET converter environment" in done.stderr.splitlines()[0]  # progress said so first
    assert not [p for p in (tmp_path / "converters").iterdir() if not p.name.endswith(".lock")]


def test_operators_the_mxnet_exporter_lacks_are_named(models: dict[str, Model], tmp_path: Path) -> None:
    model = models["gluon"]
    folder = tmp_path / "rounded"
    shutil.copytree(model.folder, folder)
    symbol = json.loads((folder / "net-symbol.json").read_text())
    head = symbol["heads"][0][0]
    symbol["nodes"].append({"op": "round", "name": "rounded", "inputs": [[head, 0, 0]]})
    symbol["heads"] = [[len(symbol["nodes"]) - 1, 0, 0]]
    symbol["node_row_ptr"].append(symbol["node_row_ptr"][-1] + 1)
    (folder / "net-symbol.json").write_text(json.dumps(symbol))
    packaged = package_model(model, tmp_path / "app", archive=tar_folder(folder, tmp_path / "r.tar.gz"))
    line = _one_error(_compile(packaged, tmp_path).stderr)
    assert line.endswith("the MXNET converter refused the model: MXNet's ONNX exporter has no converter for "
                         "operator(s) round")
    assert str(packaged.archive) in line and str(packaged.descriptor) in line
