"""The packaging issue's acceptance: an application built from nothing with the packaging commands (a code
package with a requirement, an ONNX model package, a camera), validated, run with ``panoflow run`` and
deployed to a daemon, with no Docker engine (a ``docker`` that cannot reach one is first on PATH, and is never
called)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.packaging.commands import FakeDocker, Result
from tests.packaging.projects import ACCOUNT, CODE
from tests.support.cli import run_panoflow
from tests.support.models import conv_model

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")

APP = '''
import json

import numpy as np
import panoramasdk
import pf_greeting  # a requirement, shipped as a wheel in the code asset


class Application(panoramasdk.node):
    def __init__(self):
        self.frames = 0
        self.shapes = set()

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            x = (stream.image[::10, ::10, ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
            logits, features = self.call({"data": np.ascontiguousarray(x)}, "model_node")
            self.shapes.add(repr(logits.shape))
            self.frames += 1
            stream.add_label(pf_greeting.GREETING, 0.1, 0.1)
        self.outputs.video_out.put(streams)


app = Application()
try:
    while True:
        app.process()
finally:
    with open("/opt/aws/panorama/storage/result.json", "w") as f:
        json.dump({"greeting": pf_greeting.GREETING, "module": pf_greeting.__file__, "frames": app.frames,
                   "shapes": sorted(app.shapes), "labels": open("/panorama/labels.txt").read().split()}, f)
'''


def _ok(r: Result) -> Result:
    assert r.code == 0, r.err
    return r


def build_app(cli: Callable[..., Result], root: Path, wheelhouse: Path) -> Path:
    """The application, from nothing, with panoflow's packaging commands (and the edits a developer makes)."""
    _ok(cli("init-project", "--name", "packaged_app", cwd=root))
    app = root / "packaged_app"
    # the code package: Dockerfile, code, a requirement
    _ok(cli("create-package", "--type", "Container", "--name", "CODE", "--account", ACCOUNT, cwd=app))
    code = app / "packages" / CODE
    (code / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n"
                                     "RUN pip3 install -r /panorama/requirements.txt\n")
    (code / "src" / "app.py").write_text(APP)
    (code / "src" / "labels.txt").write_text("person car\n")
    (code / "src" / "requirements.txt").write_text("pf-test-greeting==1.0\n")
    # the model package: an ONNX model and its descriptor
    _ok(cli("create-package", "--type", "Model", "--name", "MODEL", cwd=app))
    model_pkg = app / "packages" / f"{ACCOUNT}-MODEL-1.0"
    (model_pkg / "descriptor.json").write_text(json.dumps({"mlModelDescriptor": {
        "envelopeVersion": "2021-01-01", "framework": "ONNX",
        "inputs": [{"name": "data", "shape": [1, 3, 24, 32]}]}}))
    (root / "model.onnx").write_bytes(conv_model(size=(24, 32)))
    _ok(cli("add-raw-model", "--model-asset-name", "model_asset", "--model-local-path", root / "model.onnx",
            "--descriptor-path", model_pkg / "descriptor.json", "--packages-path", model_pkg, cwd=app))
    # the camera
    _ok(cli("create-package", "--type", "Camera", "--name", "front_door", cwd=app))
    # the edges, as a developer writes them
    graph_file = app / "graphs" / "packaged_app" / "graph.json"
    graph = json.loads(graph_file.read_text())
    graph["nodeGraph"]["edges"] = [{"producer": "front_door.video_out", "consumer": "code_node.video_in"},
                                   {"producer": "code_node.video_out", "consumer": "output_node.video_in"}]
    graph_file.write_text(json.dumps(graph, indent=4))
    # the code asset, without Docker
    r = _ok(cli("build-container", "--container-asset-name", "code_asset", "--package-path", code,
                "--no-index", "--find-links", wheelhouse, cwd=app))
    assert "without Docker" in r.out and "2 wheels" in r.out
    r = _ok(cli("validate", app))
    assert r.out.strip().endswith("valid: 4 nodes, 2 edges, 0 warnings")
    # a packaged application: the code package keeps only its manifests, the code is in assets/
    shutil.rmtree(code / "src")
    (code / "Dockerfile").unlink()
    return app


def _check_result(result: dict[str, object], env_root: Path) -> None:
    assert result["greeting"] == "hello from a wheel"
    assert Path(str(result["module"])).is_relative_to(env_root)  # from the package's own environment
    assert result["frames"] == 12 and result["shapes"] == ["(1, 5)"] and result["labels"] == ["person", "car"]


def test_build_from_nothing_validate_and_run(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path,
                                             clip: Path, fake_docker: FakeDocker) -> None:
    app = build_app(cli, tmp_path, wheelhouse)
    assert fake_docker.calls() == []  # no Docker engine here, and none was needed
    state = tmp_path / "state"
    proc = run_panoflow("run", str(app), "--camera", f"front_door={clip}", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    _check_result(json.loads((state / "storage" / "result.json").read_text()), state / "envs")
    assert not list(Path(sysconfig.get_paths()["purelib"]).glob("pf_test_*"))  # panoflow's own env untouched
    again = run_panoflow("run", str(app), "--camera", f"front_door={clip}", "--state-dir", str(state))
    assert again.returncode == 0 and "app_env_created" not in again.stderr  # the environment is cached


def test_deploy_to_a_daemon(cli: Callable[..., Result], tmp_path: Path, wheelhouse: Path, clip: Path) -> None:
    app = build_app(cli, tmp_path, wheelhouse)
    daemon = tmp_path / "daemon"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    serve = subprocess.Popen([sys.executable, "-m", "panoflow", "serve", "--state-dir", str(daemon),
                              "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (daemon / "daemon.json").is_file():
            assert serve.poll() is None and time.monotonic() < deadline, "panoflow serve did not start"
            time.sleep(0.1)
        common = ["--token-file", str(daemon / "token")]
        proc = run_panoflow("deploy", str(app), "--name", "packaged", "--camera", f"front_door={clip}",
                            *common, "--timeout", "60", timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "DEPLOYMENT_SUCCEEDED" in proc.stdout
        result_file = daemon / "apps" / "packaged" / "storage" / "result.json"
        while not result_file.is_file():
            assert time.monotonic() < deadline + 60, "the deployed app wrote no result"
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go at the end of the clip; let it be closed
        _check_result(json.loads(result_file.read_text()), daemon / "instances")
        removed = run_panoflow("remove", "packaged", *common)
        assert removed.returncode == 0, removed.stderr
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
