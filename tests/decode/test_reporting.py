"""The chosen decoder reaches the instance's status and /metrics (``panoflow run --control``, a real app)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.decode.decoders import NO_DRI, NO_GPU
from tests.media import make_clip
from tests.support.apps import write_app
from tests.support.cli import control_get

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")


def test_status_and_metrics_name_the_decoder(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=30, fps=10)
    app = write_app(tmp_path / "app", style="subclass")
    sock = tmp_path / "control.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app),
         "--camera", f"camera_node=file://{clip}?loop=1&realtime=1&decode=keyframes&decoder=auto",
         "--state-dir", str(tmp_path / "s"), "--instance-id", "inst-1", "--control", f"unix:{sock}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, "no decoder in the status"
            stream = json.loads(control_get(sock, "/status")).get("streams", {}).get("camera_node", {}) \
                if sock.exists() else {}
            if stream.get("decoder") and stream.get("frames", 0) >= 2:
                break
            time.sleep(0.2)
        assert stream["decode"] == "keyframes" == stream["decoding"]
        metrics = control_get(sock, "/metrics")
        info = [ln for ln in metrics.splitlines() if ln.startswith("panoflow_source_decoder_info{")]
        assert len(info) == 1 and info[0].rsplit(" ", 1)[1] in ("1", "1.0")
        assert 'node="camera_node"' in info[0] and f'decoder="{stream["decoder"]}"' in info[0]
        rate = [ln for ln in metrics.splitlines() if ln.startswith("panoflow_source_effective_fps{")]
        # one keyframe a second of a 10 fps clip (read early: a keyframe is decoded before its pacing wait)
        assert len(rate) == 1 and 'decoding="keyframes"' in rate[0] and float(rate[0].rsplit(" ", 1)[1]) < 5
        if NO_GPU and NO_DRI:
            assert stream["decoder"] == "software" and "nvdec" in stream["decoder_reason"]
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    selected = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{") and "decoder_selected" in ln]
    assert len(selected) == 1 and selected[0]["keyframes_only"] is True
