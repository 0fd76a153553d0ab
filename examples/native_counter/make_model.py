"""Builds the example's model package: an ONNX model that returns each image's mean colour, packed as
``assets/<sha256>.tar.gz`` with its descriptor ``assets/<sha256>.json``, as ``panorama-cli add-raw-model``
would.

    .venv/bin/python examples/native_counter/make_model.py     # needs the onnx package (pip install onnx)

The output is byte-for-byte reproducible; the files it writes are committed, so running the example needs no
onnx.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "packages" / "123456789012-MEAN_COLOUR-1.0"
SIZE = 64


def build_onnx() -> bytes:
    """``data`` [N,3,64,64] float32 -> ``mean`` [N,3] (per-channel mean) and ``brightness`` [N,1]."""
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["pooled"], axes=[2, 3], keepdims=0),
        helper.make_node("ReduceMean", ["pooled"], ["brightness"], axes=[1], keepdims=1),
        helper.make_node("Identity", ["pooled"], ["mean"]),
    ]
    graph = helper.make_graph(
        nodes, "mean_colour",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("brightness", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="panoflow-example")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def archive(onnx_bytes: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size, info.mtime, info.mode = len(onnx_bytes), 0, 0o644
        tar.addfile(info, io.BytesIO(onnx_bytes))
    return gzip.compress(raw.getvalue(), mtime=0)


def main() -> None:
    assets = HERE / "assets"
    for old in assets.glob("*.*"):
        if old.name != ".gitkeep":
            old.unlink()
    data = archive(build_onnx())
    sha = hashlib.sha256(data).hexdigest()
    (assets / f"{sha}.tar.gz").write_bytes(data)
    descriptor = json.dumps({"mlModelDescriptor": {
        "envelopeVersion": "2021-01-01", "framework": "ONNX", "precisionMode": "FP32",
        "inputs": [{"name": "data", "shape": [1, 3, SIZE, SIZE]}]}}, indent=4).encode() + b"\n"
    desc_sha = hashlib.sha256(descriptor).hexdigest()
    (assets / f"{desc_sha}.json").write_bytes(descriptor)
    package = {"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": "MEAN_COLOUR", "version": "1.0",
        "description": "Mean colour of an image (an ONNX model)",
        "assets": [{"name": "model_asset", "implementations": [
            {"type": "model", "assetUri": f"{sha}.tar.gz", "descriptorUri": f"{desc_sha}.json"}]}],
        "interfaces": [{"name": "interface", "category": "ml_model", "asset": "model_asset",
                        "inputs": [{"name": "video_in", "type": "media"}],
                        "outputs": [{"name": "video_out", "type": "media"}]}]}}
    (PACKAGE / "package.json").write_text(json.dumps(package, indent=4) + "\n")
    print(f"wrote assets/{sha}.tar.gz and assets/{desc_sha}.json")


if __name__ == "__main__":
    main()
