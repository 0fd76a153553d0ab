"""Real, small ONNX models built with ``onnx.helper`` and packed as real Panorama model packages.

``conv_model`` is a deterministic conv net: input ``data`` [N,3,H,W] (``batch=None`` makes N a dynamic axis),
outputs ``logits`` [N,classes] and ``features`` [N,channels,H/2,W/2]. ``write_model_package`` writes
``packages/<acct>-<NAME>-<ver>/package.json`` plus ``assets/<sha256>.tar.gz`` and ``assets/<sha256>.json``, as
``panorama-cli add-raw-model`` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["conv_model", "tar_gz", "write_model_package"]


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def conv_model(*, batch: int | None = None, size: tuple[int, int] = (16, 16), channels: int = 8,
               classes: int = 5, seed: int = 0, input_name: str = "data", depth: int = 1) -> bytes:
    """A serialized ONNX model (opset 17): ``depth`` x [Conv3x3 + Relu], a stride-2 Conv3x3 ``features``
    output, then GlobalAveragePool + Flatten + Gemm -> ``logits``. Weights from
    ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    h, w = size
    n: int | str = "N" if batch is None else batch
    nodes, inits = [], []
    prev, cin = input_name, 3
    for i in range(depth):
        inits += [_init(f"w{i}", rng.standard_normal((channels, cin, 3, 3)) * 0.2),
                  _init(f"b{i}", rng.standard_normal(channels) * 0.1)]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev, cin = f"r{i}", channels
    inits += [_init("ws", rng.standard_normal((channels, channels, 3, 3)) * 0.2),
              _init("bs", rng.standard_normal(channels) * 0.1),
              _init("fc_w", rng.standard_normal((classes, channels)) * 0.3),
              _init("fc_b", rng.standard_normal(classes) * 0.1)]
    nodes += [
        helper.make_node("Conv", [prev, "ws", "bs"], ["features"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "panoflow_test_conv",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, classes]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                       [n, channels, (h + 1) // 2, (w + 1) // 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="panoflow-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def tar_gz(files: Mapping[str, bytes], *, links: Mapping[str, str] | None = None) -> bytes:
    """A deterministic .tar.gz of ``files`` (name -> bytes) and symbolic ``links`` (name -> target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tar.addfile(info)
    return buf.getvalue()


def write_model_package(root: Path, archive: bytes, *, name: str = "TEST_MODEL",
                        account: str = "123456789012", version: str = "1.0", framework: str = "ONNX",
                        input_name: str = "data",
                        shape: Sequence[int] = (1, 3, 16, 16), precision: str | None = None,
                        asset: str = "model_asset") -> dict[str, Any]:
    """Write a model package under the application folder ``root``; returns its graph ``packages`` entry and
    the archive path (``{"ref": ..., "archive": Path, "interface": "acct::NAME.interface"}``)."""
    assets = root / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(archive).hexdigest()
    (assets / f"{sha}.tar.gz").write_bytes(archive)
    desc: dict[str, Any] = {"envelopeVersion": "2021-01-01", "framework": framework,
                            "inputs": [{"name": input_name, "shape": list(shape)}]}
    if precision:
        desc["precisionMode"] = precision
    desc_bytes = json.dumps({"mlModelDescriptor": desc}, indent=2).encode()
    desc_sha = hashlib.sha256(desc_bytes).hexdigest()
    (assets / f"{desc_sha}.json").write_bytes(desc_bytes)
    pkg = root / "packages" / f"{account}-{name}-{version}"
    pkg.mkdir(parents=True, exist_ok=True)
    package = {"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": name, "version": version, "description": "test model",
        "assets": [{"name": asset, "implementations": [
            {"type": "model", "assetUri": f"{sha}.tar.gz", "descriptorUri": f"{desc_sha}.json"}]}],
        "interfaces": [{"name": "interface", "category": "ml_model", "asset": asset,
                        "inputs": [{"name": "video_in", "type": "media"}],
                        "outputs": [{"name": "video_out", "type": "media"}]}],
    }}
    (pkg / "package.json").write_text(json.dumps(package, indent=2))
    return {"ref": {"name": f"{account}::{name}", "version": version}, "archive": assets / f"{sha}.tar.gz",
            "interface": f"{account}::{name}.interface"}
