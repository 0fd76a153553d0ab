"""The inference issue's acceptance, end to end: ``panoflow run`` on Panorama-layout apps with an ONNX model
package, in child processes (the sandbox needs a process of its own), two file cameras."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from panoflow import ops
from tests.inference.panorama_app import PANORAMA_APP, frame_hashes
from tests.media import decode_bgr
from tests.support.apps import write_model_app
from tests.support.cli import run_panoflow
from tests.support.models import conv_model

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (1, 3, 24, 32)  # 320x240 frames, every 10th pixel

def test_panorama_app_gets_what_onnxruntime_returns_for_every_frame(tmp_path: Path,
                                                                    clips: dict[str, Path]) -> None:
    model = conv_model(size=SHAPE[2:], seed=7)
    app = write_model_app(tmp_path / "app", PANORAMA_APP, model=model, shape=SHAPE)
    state = tmp_path / "state"
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clips['a']}", "--camera",
                        f"camera_node={clips['b']}", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads((state / "storage" / "result.json").read_text())
    # every frame of both cameras reached the app, in order
    assert result["frames"]["camera_node_0"] == frame_hashes(clips["a"])
    assert result["frames"]["camera_node_1"] == frame_hashes(clips["b"])
    # node.call returned a tuple of numpy arrays, in the model's output order
    assert result["kinds"] == [["tuple", 2, "ndarray", "ndarray"]]
    assert result["unknown"].startswith("KeyError: ") and "no_such_model" in result["unknown"]
    assert "model_node" in result["unknown"]  # the message lists the model nodes there are
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    saved = np.load(state / "storage" / "io.npz")
    counted = 0
    for stream, frames in result["frames"].items():
        for n in range(len(frames)):
            x = saved[f"{stream}/{n}/in"]
            assert x.shape == SHAPE and x.dtype == np.float32
            want_logits, want_features = session.run(None, {"data": x})
            np.testing.assert_allclose(saved[f"{stream}/{n}/logits"], want_logits, rtol=0, atol=1e-5)
            np.testing.assert_allclose(saved[f"{stream}/{n}/features"], want_features, rtol=0, atol=1e-5)
            counted += 1
    assert counted == 40 + 25


def test_model_node_that_cannot_load_fails_the_run_with_one_clear_line(tmp_path: Path,
                                                                        clips: dict[str, Path]) -> None:
    app = write_model_app(tmp_path / "app", "import panoramasdk\n", model=conv_model(), shape=(1, 3, 32, 32))
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clips['a']}", "--state-dir",
                        str(tmp_path / "s"))
    assert proc.returncode != 0
    assert "node model_node: input 'data': the descriptor says shape [1, 3, 32, 32]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_native_counter_example_counts_and_measures_every_frame(tmp_path: Path,
                                                                clips: dict[str, Path]) -> None:
    state = tmp_path / "state"
    proc = run_panoflow("run", str(ROOT / "examples" / "native_counter"), "--camera",
                        f"camera_node={clips['a']}",
                        "--camera", f"camera_node={clips['b']}", "--state-dir", str(state),
                        "--record", str(tmp_path / "out.mp4"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((state / "storage" / "native_counter.json").read_text())
    assert result["counts"] == {"camera_node_0": 40, "camera_node_1": 25}
    for stream, clip in (("camera_node_0", clips["a"]), ("camera_node_1", clips["b"])):
        want = [ops.resize(img, (64, 64)).mean(axis=(0, 1)) for img in decode_bgr(clip)]
        np.testing.assert_allclose(result["means"][stream], want, rtol=0, atol=1e-3)
    assert (tmp_path / "out.mp4").stat().st_size > 0
