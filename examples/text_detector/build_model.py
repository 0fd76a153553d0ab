"""Build the PPOCR_DET model package from the PP-OCRv4 detector that ships inside the rapidocr-onnxruntime
wheel.

    python examples/text_detector/build_model.py path/to/rapidocr_onnxruntime-1.4.4-py3-none-any.whl

Writes ``assets/<sha256>.tar.gz`` (the model archive, byte-for-byte reproducible) and ``assets/<sha256>.json``
(its descriptor) and points the package's model asset at them, as ``panorama-cli add-raw-model`` did. Nothing
is downloaded here: ``scripts/demo`` fetches the wheel with pip, like any other dependency.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEMBER = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
PACKAGE = HERE / "packages" / "123456789012-PPOCR_DET-1.0"


def main(wheel: Path) -> None:
    model = zipfile.ZipFile(wheel).read(MEMBER)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("ppocr_det.onnx")
        info.size, info.mtime, info.mode = len(model), 0, 0o644
        tar.addfile(info, io.BytesIO(model))
    # gzip stores a timestamp: zero it so the archive (and its name) is the same on every machine
    archive = bytearray(buf.getvalue())
    archive[4:8] = b"\0\0\0\0"
    descriptor = (PACKAGE / "descriptor.json").read_bytes()
    assets = HERE / "assets"
    assets.mkdir(exist_ok=True)
    names = {}
    for data, ext in ((bytes(archive), "tar.gz"), (descriptor, "json")):
        name = f"{hashlib.sha256(data).hexdigest()}.{ext}"
        (assets / name).write_bytes(data)
        names[ext] = name
    package = {"nodePackage": {
        "envelopeVersion": "2021-01-01",
        "name": "PPOCR_DET",
        "version": "1.0",
        "description": "PP-OCRv4 text detector (DBNet), ONNX, from the rapidocr-onnxruntime wheel",
        "assets": [{"name": "model_asset", "implementations": [
            {"type": "model", "assetUri": names["tar.gz"], "descriptorUri": names["json"]}]}],
        "interfaces": [{
            "name": "interface", "category": "ml_model", "asset": "model_asset",
            "inputs": [{"name": "video_in", "type": "media"}],
            "outputs": [{"name": "video_out", "type": "media"}],
        }],
    }}
    (PACKAGE / "package.json").write_text(json.dumps(package, indent=4) + "\n")
    print(f"model package ready: assets/{names['tar.gz']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
