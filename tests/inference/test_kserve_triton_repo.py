"""``panoflow export-triton-repo APP_DIR OUT/``: a Triton model repository from an app's model nodes; the
generated ``config.pbtxt`` is parsed with Triton's own ModelConfig protobuf (from tritonclient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from panoflow.cli import main
from tests.support.apps import write_model_app
from tests.support.models import conv_model


def _config(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def _dims(tensors: object) -> dict[str, tuple[str, list[int]]]:
    return {t.name: (model_config_pb2.DataType.Name(t.data_type), list(t.dims)) for t in tensors}  # type: ignore


def test_dynamic_batch_model_becomes_a_batching_onnx_model(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = conv_model(size=(24, 32), seed=3)
    app = write_model_app(tmp_path / "app", "import panoramasdk\n", model=model, shape=(1, 3, 24, 32))
    out = tmp_path / "repo"
    assert main(["export-triton-repo", str(app), str(out), "--max-batch", "8", "--host", "gpu-1"]) == 0
    printed = capsys.readouterr().out
    assert "--model-backend model_node=kserve+grpc://gpu-1:8001/model_node" in printed
    assert (out / "model_node" / "1" / "model.onnx").read_bytes() == model
    config = _config(out / "model_node")
    assert (config.name, config.platform, config.max_batch_size) == ("model_node", "onnxruntime_onnx", 8)
    assert _dims(config.input) == {"data": ("TYPE_FP32", [3, 24, 32])}
    assert _dims(config.output) == {"logits": ("TYPE_FP32", [5]), "features": ("TYPE_FP32", [8, 12, 16])}
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000


def test_fixed_batch_model_is_not_batched_and_keeps_full_shapes(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = conv_model(batch=1, size=(16, 16), input_name="image")
    app = write_model_app(tmp_path / "app", "import panoramasdk\n", model=model, shape=(1, 3, 16, 16),
                          input_name="image")
    assert main(["export-triton-repo", str(app), str(tmp_path / "repo")]) == 0
    assert "(no batching)" in capsys.readouterr().out
    config = _config(tmp_path / "repo" / "model_node")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert _dims(config.input) == {"image": ("TYPE_FP32", [1, 3, 16, 16])}
    assert _dims(config.output)["logits"] == ("TYPE_FP32", [1, 5])


def test_app_without_model_nodes_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = write_model_app(tmp_path / "app", "import panoramasdk\n")
    graph = app / "graphs" / "model_app" / "graph.json"
    data = json.loads(graph.read_text())
    data["nodeGraph"]["nodes"] = [n for n in data["nodeGraph"]["nodes"] if n["name"] != "model_node"]
    data["nodeGraph"]["packages"] = [
        p for p in data["nodeGraph"]["packages"] if "TEST_MODEL" not in p["name"]
    ]
    graph.write_text(json.dumps(data))
    assert main(["export-triton-repo", str(app), str(tmp_path / "repo")]) == 1
    assert "has no model nodes to export" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
