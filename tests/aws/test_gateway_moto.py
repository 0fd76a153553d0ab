"""With credentials, against a real moto server as AWS (STS AssumeRole, CloudWatch): the app's own boto3
(current, and 1.24 inside a bubblewrap sandbox) gets the role's credentials from its instance's gateway, its
PutMetricData lands in moto through ``--aws-endpoint cloudwatch=URL``, credentials expire and are refreshed
mid-run without the app noticing, two instances with different roles see only their own credentials (another's
token: 403), and no secret appears in the gateway's logs or in the app's environment."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import boto3
import pytest

from panoflow.aws import AwsGateway, AwsSettings
from tests.aws.runner import base_env, need_bwrap, run_app, running

ROLE = "arn:aws:iam::123456789012:role/{}"


@pytest.fixture
def device_file(tmp_path: Path) -> tuple[Path, str]:
    """The device's own credentials file (what --aws-credentials names) and its secret key."""
    secret = "device-secret-" + secrets.token_hex(12)
    path = tmp_path / "device-credentials"
    path.write_text(f"[default]\naws_access_key_id = AKIADEVICE{secrets.token_hex(4).upper()}\n"
                    f"aws_secret_access_key = {secret}\n")
    return path, secret


def _gateway(tmp_path: Path, moto: str, device: Path, role: str, **cache: float) -> AwsGateway:
    settings = AwsSettings(credentials_file=device, role_arn=ROLE.format(role),
                           endpoints={"cloudwatch": moto, "sts": moto})
    return AwsGateway(settings, instance_id=f"inst-{role}", state_dir=tmp_path / "state", **cache)  # type: ignore[arg-type]


def _moto_metrics(moto: str, namespace: str) -> list[dict]:
    cw = boto3.client("cloudwatch", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="y")
    return cw.list_metrics(Namespace=namespace)["Metrics"]


def _secrets_of(gw: AwsGateway) -> list[str]:
    creds, _ = gw.cache.get()
    return [creds.secret_access_key, creds.session_token, gw.token]


def test_role_credentials_and_metrics_land_in_moto(tmp_path: Path, moto_url: str,
                                                   device_file: tuple[Path, str], logs: io.StringIO) -> None:
    device, device_secret = device_file
    with running(_gateway(tmp_path, moto_url, device, "app-a")) as gw:
        box = gw.sandbox()
        env = {**base_env(tmp_path / "home"), **gw.environment(ca_bundle=None, config_file=None)}
        out = run_app("put_metrics.py", env, "2", "0", "RoleApp")
        served = _secrets_of(gw)
    assert out["access_keys"][0].startswith("ASIA")  # moto's AssumeRole answer, not the device's key
    names = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
             for m in _moto_metrics(moto_url, "RoleApp")}
    assert ("AverageInferenceTime",
            (("Application Name", "aws-panorama-sample"), ("Device ID", "dev-1"))) in names
    assert "AWS_ENDPOINT_URL" not in env  # with credentials, services not redirected go to AWS itself
    assert set(box.hosts) == {"monitoring.us-east-1.amazonaws.com", "sts.amazonaws.com",
                              "sts.us-east-1.amazonaws.com"}
    text = logs.getvalue()
    assert "aws_credentials_fetched" in text
    for secret in [device_secret, *served]:
        assert secret not in text
        assert all(secret not in value for value in box.env.values() if value != gw.token)


def test_boto3_1_24_role_metrics_land_in_moto_through_the_sandbox(tmp_path: Path, moto_url: str,
                                                                  device_file: tuple[Path, str],
                                                                  old_boto3: Path) -> None:
    """boto3 1.24 cannot be pointed elsewhere: monitoring.us-east-1.amazonaws.com resolves to the gateway's
    TLS listener (device CA via AWS_CA_BUNDLE), which forwards to moto with Host and signature untouched."""
    need_bwrap()
    with running(_gateway(tmp_path, moto_url, device_file[0], "app-a")) as gw:
        box = gw.sandbox()
        out = run_app("put_metrics.py", {**base_env(tmp_path / "home"), **box.env}, "2", "0", "OldSdkApp",
                      pythonpath=old_boto3, sandbox=box, work=tmp_path)
    assert out["boto3"].startswith("1.24.")
    assert {m["MetricName"] for m in _moto_metrics(moto_url, "OldSdkApp")} == {"AverageInferenceTime",
                                                                                "FramesProcessed"}


@pytest.mark.parametrize("sdk", ["current", "1.24"])
def test_credentials_expire_and_refresh_mid_run(tmp_path: Path, moto_url: str, device_file: tuple[Path, str],
                                                sdk: str, request: pytest.FixtureRequest) -> None:
    """The gateway serves an expiry just past the SDK's 15-minute refresh window and renews from STS after
    half a second: over a 6-second run the SDK fetches new role credentials several times and every call
    succeeds (boto3 1.24 inside the sandbox, through the TLS listener)."""
    if sdk == "1.24":
        need_bwrap()
    gw = _gateway(tmp_path, moto_url, device_file[0], "app-a", max_lifetime=902, refresh_margin=901.5)
    args = ("6", "1", f"Refresh{sdk.replace('.', '')}")
    with running(gw):
        if sdk == "1.24":
            box = gw.sandbox()
            out = run_app("put_metrics.py", {**base_env(tmp_path / "home"), **box.env}, *args,
                          pythonpath=request.getfixturevalue("old_boto3"), sandbox=box, work=tmp_path)
        else:
            env = {**base_env(tmp_path / "home"), **gw.environment(ca_bundle=None, config_file=None)}
            out = run_app("put_metrics.py", env, *args)
    assert out["rounds"] == 6
    assert len(out["access_keys"]) >= 2, out
    assert gw.cache.fetches >= 2
    assert {m["MetricName"] for m in _moto_metrics(moto_url, args[2])} == {"AverageInferenceTime",
                                                                            "FramesProcessed"}


def test_two_instances_never_see_each_others_credentials(tmp_path: Path, moto_url: str,
                                                         device_file: tuple[Path, str]) -> None:
    with running(_gateway(tmp_path / "a", moto_url, device_file[0], "app-a")) as a, \
            running(_gateway(tmp_path / "b", moto_url, device_file[0], "app-b")) as b:
        env_a = {**base_env(tmp_path / "home-a"), **a.environment(ca_bundle=None, config_file=None)}
        env_b = {**base_env(tmp_path / "home-b"), **b.environment(ca_bundle=None, config_file=None)}
        out_a = run_app("whoami.py", env_a, b.credentials_url)
        out_b = run_app("whoami.py", env_b, a.credentials_url)
    assert "assumed-role/app-a/" in out_a["arn"] and "assumed-role/app-b/" in out_b["arn"]
    assert out_a["access_key"] != out_b["access_key"]
    assert out_a["other_instance"] == out_b["other_instance"] == 403
    assert a.denied == b.denied == 1
