"""The remote-inference issue's acceptance, end to end: ``panoflow run`` with
``--model-backend model_node=kserve+grpc://...`` (and ``kserve+http://``) against a real KServe V2 server,
every frame's results equal to local ONNX Runtime; and a server killed mid-run while the app keeps calling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.inference.kserve_harness import SHAPE, KServeServer, own_server
from tests.inference.panorama_app import PANORAMA_APP, frame_hashes
from tests.support.apps import write_model_app
from tests.support.cli import run_panoflow
from tests.support.models import conv_model

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")

# An unmodified Panorama app that calls its model on every frame and carries on when a call fails.
RESILIENT_APP = """
import json
import time

import numpy as np
import panoramasdk


class Application(panoramasdk.node):
    def __init__(self):
        self.out = open("/opt/aws/panorama/storage/calls.jsonl", "a", buffering=1)

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            small = stream.image[::10, ::10].astype(np.float32)
            x = np.ascontiguousarray(small.transpose(2, 0, 1)[None] / 255.0)
            t = time.time()
            try:
                logits, _ = self.call({"data": x}, "model_node")
                self.out.write(json.dumps({"t": t, "ok": True, "sum": float(logits.sum())}) + "\\n")
            except Exception as exc:
                error = type(exc).__name__ + ": " + str(exc)
                self.out.write(json.dumps({"t": t, "ok": False, "error": error}) + "\\n")
        self.outputs.video_out.put(streams)


app = Application()
while True:
    app.process()
"""


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_panorama_app_on_a_remote_server_gets_what_onnxruntime_returns_for_every_frame(
        tmp_path: Path, clips: dict[str, Path], kserve_server: KServeServer, transport: str) -> None:
    model = conv_model(size=SHAPE[2:], seed=7)
    assert model == kserve_server.models["conv"].read_bytes()  # the server serves the package's own model
    app = write_model_app(tmp_path / "app", PANORAMA_APP, model=model, shape=SHAPE)
    state = tmp_path / "state"
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clips['a']}", "--camera",
                        f"camera_node={clips['b']}", "--state-dir", str(state),
                        "--model-backend", f"model_node={kserve_server.uri(transport)}")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    loaded = [json.loads(line) for line in proc.stderr.splitlines() if '"model_loaded"' in line]
    assert [e["backend"] for e in loaded] == ["kserve"]
    result = json.loads((state / "storage" / "result.json").read_text())
    assert result["frames"]["camera_node_0"] == frame_hashes(clips["a"])
    assert result["frames"]["camera_node_1"] == frame_hashes(clips["b"])
    assert result["kinds"] == [["tuple", 2, "ndarray", "ndarray"]]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    saved = np.load(state / "storage" / "io.npz")
    counted = 0
    for stream, frames in result["frames"].items():
        for n in range(len(frames)):
            x = saved[f"{stream}/{n}/in"]
            want_logits, want_features = session.run(None, {"data": x})
            np.testing.assert_allclose(saved[f"{stream}/{n}/logits"], want_logits, rtol=0, atol=1e-5)
            np.testing.assert_allclose(saved[f"{stream}/{n}/features"], want_features, rtol=0, atol=1e-5)
            counted += 1
    assert counted == 40 + 25


def _calls(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for(path: Path, what: str, test: object, deadline_s: float = 60.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        calls = _calls(path)
        if test(calls):  # type: ignore[operator]
            return calls
        time.sleep(0.05)  # polling the app's output file
    raise AssertionError(f"timed out waiting for {what}; the app wrote {len(_calls(path))} lines")


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_server_killed_mid_run_the_app_catches_keeps_running_and_resumes(tmp_path: Path,
                                                                         transport: str) -> None:
    app = write_model_app(tmp_path / "app", RESILIENT_APP, model=conv_model(size=SHAPE[2:], seed=7),
                          shape=SHAPE)
    state = tmp_path / "state"
    calls = state / "storage" / "calls.jsonl"
    with own_server(tmp_path / "server") as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
             "camera_node=testsrc://?size=320x240&fps=20", "--state-dir", str(state), "--duration", "90",
             "--model-backend", f"model_node={server.uri(transport, timeout=2)}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_for(calls, "10 answered calls", lambda c: sum(1 for e in c if e["ok"]) >= 10)
            server.kill()
            killed = time.time()
            _wait_for(calls, "10 failed calls",
                      lambda c: sum(1 for e in c if not e["ok"] and e["t"] > killed) >= 10)
            server.start(wait=False)
            server.wait_ready()
            back = time.time()
            seen = _wait_for(calls, "an answered call after the server's return",
                             lambda c: any(e["ok"] and e["t"] >= back for e in c), deadline_s=10)
            _wait_for(calls, "10 more answered calls",
                      lambda c: sum(1 for e in c if e["ok"] and e["t"] >= back) >= 10)
        finally:
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    first_ok = min(float(e["t"]) for e in seen if e["ok"] and e["t"] >= back)  # type: ignore[arg-type]
    assert first_ok - back < 2.0, f"results resumed {first_ok - back:.2f} s after the server's return"
    failed = [e for e in _calls(calls) if not e["ok"]]
    assert failed and all(str(e["error"]).startswith(("ModelError", "RemoteError", "RuntimeError"))
                          and "UNAVAILABLE" in str(e["error"]) for e in failed), failed[:3]
    events = [json.loads(line).get("event") for line in stderr.splitlines() if line.startswith("{")]
    assert events.count("kserve_server_unavailable") == 1, "one log line per outage"
    assert events.count("kserve_server_back") == 1
    assert "model_run_failed" not in events
