"""An offline instance (no credentials): the app's own boto3, current and 1.24, with only the gateway's
environment, puts CloudWatch metrics that show as Prometheus families, uses the local S3 folder (size cap,
traversal refused), and gets a fast ClientError from every service panoflow does not serve. boto3 1.24 reaches
the gateway through AWS hostnames resolved in a bubblewrap sandbox's /etc/hosts and the device CA
(AWS_CA_BUNDLE)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from panoflow.aws import AwsGateway, AwsSettings
from panoflow.core.metrics import render
from tests.aws.runner import base_env, need_bwrap, run_app, running

LABELS = 'namespace="PanoflowTestApp",metric="AverageInferenceTime",unit="Milliseconds",' \
         'application_name="aws-panorama-sample",device_id="dev-1"'


def _gateway(tmp_path: Path, **settings: object) -> AwsGateway:
    return AwsGateway(AwsSettings(**settings), instance_id="app-1", state_dir=tmp_path / "state")  # type: ignore[arg-type]


def test_metrics_from_current_boto3_show_on_metrics(tmp_path: Path) -> None:
    with running(_gateway(tmp_path)) as gw:
        env = {**base_env(tmp_path / "home"), **gw.environment(ca_bundle=None, config_file=None)}
        out = run_app("put_metrics.py", env, "3")
    text = render(gw.families())
    assert out["rounds"] == 3
    assert f"panoflow_cloudwatch_metric{{{LABELS}}} 12" in text
    assert f"panoflow_cloudwatch_metric_samples_total{{{LABELS}}} 3" in text
    assert 'metric="FramesProcessed",unit="Count"' in text  # the resource API's put_data


def test_boto3_1_24_offline_in_a_sandbox(tmp_path: Path, old_boto3: Path) -> None:
    """aws-panorama-sample's pinned SDK: CloudWatch over the query protocol via the TLS listener, S3
    path-style through the config file, unserved services fail fast; nothing but the gateway is reachable."""
    need_bwrap()
    gw = AwsGateway(AwsSettings(s3_cap_bytes=2000), instance_id="app-1", state_dir=tmp_path / "state")
    with running(gw):
        box = gw.sandbox()
        env = {**base_env(tmp_path / "home"), **box.env}
        assert "AWS_ENDPOINT_URL" in env and env["AWS_CA_BUNDLE"].startswith("/run/panoflow/aws/")
        metrics = run_app("put_metrics.py", env, "3", pythonpath=old_boto3, sandbox=box, work=tmp_path)
        s3 = run_app("s3_calls.py", env, "snaps", pythonpath=old_boto3, sandbox=box, work=tmp_path)
        unserved = run_app("unserved.py", env, pythonpath=old_boto3, sandbox=box, work=tmp_path)
    assert metrics["boto3"].startswith("1.24.")
    assert f"panoflow_cloudwatch_metric{{{LABELS}}} 12" in render(gw.families())
    _check_s3(s3, tmp_path)
    _check_unserved(unserved)


def test_s3_and_unserved_services_with_current_boto3(tmp_path: Path, logs: io.StringIO) -> None:
    gw = AwsGateway(AwsSettings(s3_cap_bytes=2000), instance_id="app-1", state_dir=tmp_path / "state")
    with running(gw):
        env = {**base_env(tmp_path / "home"), **gw.environment(ca_bundle=None, config_file=None)}
        s3 = run_app("s3_calls.py", env, "snaps")
        unserved = run_app("unserved.py", env)
        again = run_app("unserved.py", env)
    _check_s3(s3, tmp_path)
    _check_unserved(unserved)
    _check_unserved(again)
    events = [json.loads(line) for line in logs.getvalue().splitlines()]
    not_served = sorted(e["service"] for e in events if e["event"] == "aws_service_not_served")
    assert not_served == ["firehose", "secretsmanager", "sqs"]  # once per service, however often it is called
    assert [e["operation"] for e in events if e["event"] == "aws_operation_not_served"] == ["GetMetricData"]


def _check_s3(out: dict, tmp_path: Path) -> None:
    assert out["get"] == "jpeg" * 4
    assert out["head"] == 3
    assert out["keys"] == [f"snapshots/frame {i}.jpg" for i in range(5)]
    assert out["top"] == ["top.txt", "snapshots/"]
    assert out["traversal"] == ["InvalidArgument", "InvalidArgument"]
    assert out["missing"] == "NoSuchKey"
    assert out["big"] == "QuotaExceeded"  # 2000-byte cap
    folder = tmp_path / "state" / "aws" / "s3" / "snaps"
    assert (folder / "snapshots" / "frame 0.jpg").read_bytes() == b"jpeg"
    assert not list(tmp_path.rglob("escape.txt"))


def _check_unserved(out: dict) -> None:
    for name, (code, seconds) in out.items():
        assert code == "NotImplemented", (name, code)
        assert seconds < 5, (name, seconds)
