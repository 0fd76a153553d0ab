"""Panorama-layout applications with a model node, for the inference tests (same layout as
``tests/runtime/apptemplate.py``: graph.json, a code package with its descriptor and Dockerfile, plus a model
package from :mod:`tests.inference.modelpkg`)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.inference.modelpkg import conv_model, tar_gz, write_model_package

__all__ = ["write_model_app"]


def write_model_app(root: Path, code: str, *, model: bytes | None = None, shape: tuple[int, ...] = (1, 3, 16, 16),
                    entry_path: str = "python3", model_node: str = "model_node", **package: Any) -> Path:
    """An app: ``camera_node`` -> ``code_node`` -> ``output_node``, and ``model_node`` (an ONNX model package whose
    input ``data`` has the descriptor shape ``shape``). ``code`` is the code node's ``app.py`` (``entry_path``
    ``native`` makes it a native async node)."""
    model = model if model is not None else conv_model(size=shape[2:])  # type: ignore[arg-type]
    pkg_model = write_model_package(root, tar_gz({"model.onnx": model}), shape=shape, **package)
    graph_dir = root / "graphs" / "model_app"
    graph_dir.mkdir(parents=True)
    graph = {"nodeGraph": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": "123456789012::MODEL_CODE", "version": "1.0"}, pkg_model["ref"],
                     {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
                     {"name": "panorama::hdmi_data_sink", "version": "1.0"}],
        "nodes": [
            {"name": "code_node", "interface": "123456789012::MODEL_CODE.interface"},
            {"name": model_node, "interface": pkg_model["interface"]},
            {"name": "camera_node", "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
             "overridable": True, "overrideMandatory": True},
            {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"},
        ],
        "edges": [
            {"producer": "camera_node.video_out", "consumer": "code_node.video_in"},
            {"producer": "code_node.video_out", "consumer": "output_node.video_in"},
        ]}}
    (graph_dir / "graph.json").write_text(json.dumps(graph, indent=2))
    pkg = root / "packages" / "123456789012-MODEL_CODE-1.0"
    (pkg / "src").mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": "MODEL_CODE", "version": "1.0", "assets": [],
        "interfaces": [{"name": "interface", "category": "business_logic", "asset": "code_asset",
                        "inputs": [{"name": "video_in", "type": "media"}],
                        "outputs": [{"name": "video_out", "type": "media"}]}]}}, indent=2))
    (pkg / "descriptor.json").write_text(json.dumps({"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01", "entry": {"path": entry_path, "name": "/panorama/app.py"}}}))
    (pkg / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n")
    (pkg / "src" / "app.py").write_text(textwrap.dedent(code))
    return root
