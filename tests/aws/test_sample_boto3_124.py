"""aws-panorama-sample's AWS traits, unmodified-style: its own pinned boto3 1.24 (too old for
AWS_ENDPOINT_URL_*), a CloudWatch ``AverageInferenceTime`` metric with ``Application Name`` and ``Device ID``
dimensions every 150 frames, catching only ``ClientError``. Offline it runs a whole 450-frame clip (three
metric epochs) and the metric is on ``/metrics`` of ``panoflow run --control`` and of ``panoflow serve``; with
a profile and ``--aws-endpoint cloudwatch=URL`` it lands in a real moto server (the old SDK reaches it through
the sandbox's hostnames and the device CA), and its secret key is in no log, command line or process
environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.aws.cloudwatch_app import PUT_METRIC, metric_line, wait_for
from tests.media import make_clip
from tests.support.apps import PACKAGE, build_code_asset, write_app
from tests.support.cli import control_get

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")]

SAMPLE = PUT_METRIC + """
import json, os
import boto3

assert boto3.__version__.startswith("1.24."), boto3.__version__
cloudwatch = boto3.client("cloudwatch")
app = panoramasdk.node()
frames = 0
while True:
    frames += len(app.inputs.video_in.get())
    if frames % 150 == 0:  # the sample's metrics epoch
        put_metric(cloudwatch)
        with open("/opt/aws/panorama/storage/epochs.tmp", "w") as f:
            json.dump({"frames": frames, "boto3": boto3.__version__}, f)
        os.replace("/opt/aws/panorama/storage/epochs.tmp", "/opt/aws/panorama/storage/epochs.json")
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, pinned_wheels: Path) -> Path:
    root = tmp_path_factory.mktemp("sample") / "app"
    write_app(root, code="import json\n" + SAMPLE)
    pkg = root / PACKAGE
    (pkg / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n"
                                    "RUN pip3 install -r /panorama/requirements.txt\n")
    (pkg / "src" / "requirements.txt").write_text("boto3==1.24.*\n")
    build_code_asset(root, pinned_wheels)
    return root


@pytest.fixture(scope="module")
def clip450(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip450") / "clip.mp4", frames=450, size=(320, 240))


def _samples(text: str) -> float:
    line = next((ln for ln in text.splitlines() if ln.startswith("panoflow_cloudwatch_metric_samples_total{")
                 and 'application_name="sample"' in ln), None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


def test_offline_three_epochs_on_run_metrics(sample: Path, clip450: Path, tmp_path: Path) -> None:
    sock, state = tmp_path / "control.sock", tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(sample), "--camera",
         f"camera_node=file://{clip450}?realtime=1&loop=1", "--state-dir", str(state), "--control",
         f"unix:{sock}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("three metric epochs on /metrics", lambda: _samples(control_get(sock, "/metrics")) >= 3,
                 proc, 120)
        line = metric_line(control_get(sock, "/metrics"))
        assert line is not None and line.endswith(" 12.5") and 'unit="Milliseconds"' in line
        epochs = json.loads((state / "storage" / "epochs.json").read_text())
        assert epochs["frames"] >= 450 and epochs["boto3"].startswith("1.24.")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "refused" not in out and "NoCredentialsError" not in out + err


def test_offline_on_serve_metrics(sample: Path, clip450: Path, make_daemon: Any) -> None:
    d = make_daemon()
    r = d.cli("deploy", str(sample), "--name", "sample",
              "--camera", f"camera_node=file://{clip450}?realtime=1&loop=1")
    assert r.returncode == 0, r.stderr

    def samples() -> float:
        code, text = d.request("GET", "/metrics")
        return _samples(text.decode()) if code == 200 else 0.0

    wait_for("three metric epochs on the device's /metrics", lambda: samples() >= 3, timeout=120)
    _, text = d.request("GET", "/metrics")
    assert metric_line(text.decode()) is not None


def test_profile_and_endpoint_land_in_moto(sample: Path, clip450: Path, tmp_path: Path,
                                           moto_url: str) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(
        "[edge]\naws_access_key_id = AKIDSAMPLE124\naws_secret_access_key = never-in-a-log-124\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(sample), "--camera",
         f"camera_node=file://{clip450}?realtime=1&loop=1", "--state-dir", str(tmp_path / "s"),
         "--aws-credentials", str(creds), "--aws-profile", "edge", "--aws-endpoint",
         f"cloudwatch={moto_url}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def landed() -> bool:
        import boto3

        cw = boto3.client("cloudwatch", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="AKIDSAMPLE124", aws_secret_access_key="x")
        metrics = cw.list_metrics(Namespace="AWSPanoramaApplication")["Metrics"]
        return any(m["MetricName"] == "AverageInferenceTime"
                   and {"Name": "Device ID", "Value": "dev1"} in m["Dimensions"] for m in metrics)

    try:
        wait_for("the old SDK's metric in moto", landed, proc, 120)
        # while it runs: the secret key is on no command line and in no environment of any process
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                for name in ("cmdline", "environ"):
                    try:
                        data = (entry / name).read_bytes()
                    except OSError:
                        continue
                    assert b"never-in-a-log-124" not in data, f"the secret key in /proc/{entry.name}/{name}"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "never-in-a-log-124" not in out + err
