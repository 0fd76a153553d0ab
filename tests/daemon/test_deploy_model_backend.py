"""``panoflow deploy --model-backend NODE=BACKEND`` reaches the instance: the named backend runs the model
node (or, unknown, the deployment fails saying which backends exist)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import write_model_app
from tests.support.daemons import Daemon

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

CODE = """
import numpy as np
import panoramasdk
app = panoramasdk.node()
while True:
    for s in app.inputs.video_in.get():
        app.call({"data": np.zeros((1, 3, 16, 16), np.float32)}, "model_node")
"""


def test_deploy_chooses_the_model_nodes_backend(make_daemon: Any, tmp_path: Path,
                                                clips: dict[str, Path]) -> None:
    d: Daemon = make_daemon()
    app = write_model_app(tmp_path / "app", CODE)
    camera = f"camera_node=file://{clips['a']}?loop=1&realtime=1"
    r = d.cli("deploy", str(app), "--name", "bad", "--camera", camera, "--model-backend",
              "model_node=no_such_one")
    assert r.returncode == 1
    assert "no_such_one" in r.stderr and "onnxruntime" in r.stderr  # what was asked, and what exists
    r = d.cli("deploy", str(app), "--name", "good", "--camera", camera, "--model-backend",
              "model_node=onnxruntime")
    assert r.returncode == 0, r.stderr
    log = d.cli("logs", "good", "--tail", "500").stdout
    assert '"backend": "onnxruntime"' in log and '"model_loaded"' in log
