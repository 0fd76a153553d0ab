"""An unmodified-style Panorama app calling CloudWatch from its own sandboxed process, under ``panoflow run``
and ``panoflow serve``: offline, its metrics show on the instance's and the device's ``/metrics``; with a
profile and ``--aws-endpoint cloudwatch=URL``, they land in a real moto server; no secret key reaches the
app's environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.aws.cloudwatch_app import PUT_METRIC, metric_line, wait_for
from tests.media import make_clip
from tests.support.apps import write_app
from tests.support.cli import control_get

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

APP = PUT_METRIC + """
import os
import boto3

cloudwatch = boto3.client("cloudwatch")
app = panoramasdk.node()
frames = 0
while True:
    frames += len(app.inputs.video_in.get())
    if frames % 10 == 0:
        put_metric(cloudwatch)
        secrets = sorted(k for k in os.environ if "SECRET" in k or k == "AWS_ACCESS_KEY_ID")
        with open("/opt/aws/panorama/storage/env.json", "w") as f:
            json.dump(secrets, f)
"""
@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "app", code="import json\n" + APP)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4", frames=30)


def _run(app: Path, clip: Path, state: Path, *flags: str) -> tuple[subprocess.Popen[str], Path]:
    sock = state / "control.sock"
    state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
         f"camera_node=file://{clip}?loop=1&realtime=1", "--state-dir", str(state), "--control",
         f"unix:{sock}", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, sock


def test_offline_metrics_on_the_instance_metrics(app: Path, clip: Path, tmp_path: Path) -> None:
    proc, sock = _run(app, clip, tmp_path / "s")
    try:
        line = wait_for("the app's metric on /metrics", lambda: metric_line(control_get(sock, "/metrics")),
                        proc)
        assert 'unit="Milliseconds"' in line and line.endswith(" 12.5")
        env_file = tmp_path / "s/storage/env.json"
        env = json.loads(wait_for("the app's environment", env_file.read_text, proc))
        assert env == []  # offline: the SDK gets credentials from the endpoint, no key in the environment
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "refused" not in out + err


def test_offline_metrics_on_the_device_metrics(app: Path, clip: Path, make_daemon: Any) -> None:
    d = make_daemon()
    r = d.cli("deploy", str(app), "--name", "sample", "--camera", f"camera_node=file://{clip}?loop=1&realtime=1")
    assert r.returncode == 0, r.stderr

    def metrics() -> str | None:
        code, text = d.request("GET", "/metrics")
        return metric_line(text.decode()) if code == 200 else None

    try:
        line = wait_for("the app's metric on the daemon's /metrics", metrics)
    except AssertionError:
        print(d.cli("logs", "sample", "--node", "code_node").stdout[-3000:], d.stderr()[-3000:])
        raise
    assert 'application="sample"' in line and "instance_id=" in line


def test_profile_and_endpoint_land_the_metric_in_moto(app: Path, clip: Path, tmp_path: Path,
                                                      moto_url: str) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[edge]\naws_access_key_id = AKIDEXAMPLE1\naws_secret_access_key = s3cr3t-never-shown\n")
    proc, _sock = _run(app, clip, tmp_path / "s", "--aws-credentials", str(creds), "--aws-profile", "edge",
                       "--aws-endpoint", f"cloudwatch={moto_url}")

    def landed() -> bool:
        import boto3

        cw = boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="AKIDEXAMPLE1", aws_secret_access_key="x")
        names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWSPanoramaApplication")["Metrics"]}
        return "AverageInferenceTime" in names

    try:
        wait_for("the metric in moto", landed, proc)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "s3cr3t-never-shown" not in out + err
    assert "refused" not in out
