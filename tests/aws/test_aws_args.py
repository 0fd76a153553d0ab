"""The --aws-* flags (panoflow.cli.aws_args) and the settings they come to: defaults (local services on only
without credentials), clear errors for bad values, and the environment an app gets."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from panoflow.aws import AwsError, AwsSettings, app_environment, sandbox_hostnames
from panoflow.cli.aws_args import add_aws_arguments, aws_settings_from_args, parse_size


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="panoflow run")
    add_aws_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_serve_cloudwatch_and_s3_locally_when_offline() -> None:
    settings = aws_settings_from_args(_parse(), "eu-west-1")
    assert settings.local_services == {"cloudwatch", "s3"} and not settings.has_credentials
    assert settings.region == "eu-west-1" and settings.s3_cap_bytes == 1 << 30


def test_credentials_turn_local_services_off_unless_asked(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("[default]\n")
    settings = aws_settings_from_args(_parse("--aws-credentials", str(creds), "--aws-endpoint",
                                             "CloudWatch=http://10.0.0.5:5000/", "--aws-endpoint", "sts=https://x"),
                                      "us-east-1")
    assert settings.local_services == frozenset()
    assert settings.endpoints == {"cloudwatch": "http://10.0.0.5:5000", "sts": "https://x"}
    both = aws_settings_from_args(_parse("--aws-profile", "p", "--aws-local", "s3", "--aws-s3-cap", "512M"),
                                  "r")
    assert both.local_services == {"s3"} and both.s3_cap_bytes == 512 << 20


@pytest.mark.parametrize(("argv", "message"), [
    (["--aws-endpoint", "cloudwatch"], "SERVICE=URL"),
    (["--aws-endpoint", "cloudwatch=ftp://x"], "http(s) URL"),
    (["--aws-endpoint", "s3=http://user:pw@host"], "must not carry credentials"),
    (["--aws-local", "sqs"], "only cloudwatch, s3"),
    (["--aws-s3-cap", "lots"], "512M"),
])
def test_bad_flags_are_usage_errors(argv: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parse(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--aws-role-arn", "app-role"], "is not an IAM role ARN"),
    (["--aws-credentials", "/nonexistent/creds"], "no such file"),
    (["--aws-local", "s3", "--aws-endpoint", "s3=http://x"], "both --aws-local and --aws-endpoint"),
])
def test_bad_combinations_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(AwsError) as raised:
        aws_settings_from_args(_parse(*argv), "us-east-1")
    assert message in str(raised.value)


def test_size_units() -> None:
    assert parse_size("1G") == 1 << 30 and parse_size("1.5k") == 1536 and parse_size("100") == 100


def test_app_environment_and_hostnames() -> None:
    env = app_environment(credentials_url="http://127.0.0.1:4000/panoflow/credentials", token="t",
                          region="r-1", endpoint_url="http://127.0.0.1:4000", endpoint_services=["cloudwatch",
                                                                                   "secretsmanager"],
                          ca_bundle="/run/b.pem")
    assert env["AWS_ENDPOINT_URL_CLOUDWATCH"] == env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "http://127.0.0.1:4000"
    assert "AWS_ENDPOINT_URL" not in env and env["AWS_CA_BUNDLE"] == "/run/b.pem"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "r-1"
    assert sandbox_hostnames("eu-west-1", ["cloudwatch", "s3"], ["snaps"]) == [
        "monitoring.eu-west-1.amazonaws.com", "s3.amazonaws.com", "s3.eu-west-1.amazonaws.com",
        "s3-eu-west-1.amazonaws.com", "s3.dualstack.eu-west-1.amazonaws.com", "snaps.s3.amazonaws.com",
        "snaps.s3.eu-west-1.amazonaws.com"]
    assert AwsSettings(role_arn="arn:aws:iam::123456789012:role/x").local_services == frozenset()
