"""Fixtures for the AWS gateway tests: boto3 1.24 (what aws-panorama-sample pins) installed at test time into
its own folder, and log capture through panoflow's own structlog set-up (the app runner:
:mod:`tests.aws.runner`)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from panoflow.log import configure_logging

ROOT = Path(__file__).parents[2]
WHEELS = ROOT / ".cache" / "wheels"
OLD_BOTO3 = ("boto3==1.24.96", "botocore==1.27.96", "urllib3<1.27")


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def old_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding boto3 1.24 and its dependencies (wheels cached under .cache/wheels; PyPI on a
    miss)."""
    target = tmp_path_factory.mktemp("boto3-1.24")
    WHEELS.mkdir(parents=True, exist_ok=True)
    install = ("install", "--no-index", "--find-links", str(WHEELS), "--target", str(target), *OLD_BOTO3)
    if _pip(*install).returncode != 0:
        fetched = _pip("download", "--only-binary=:all:", "--dest", str(WHEELS), *OLD_BOTO3)
        if fetched.returncode != 0:
            pytest.fail(f"cannot download boto3 1.24 wheels into {WHEELS}: {fetched.stderr[-500:]}")
        done = _pip(*install)
        assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything panoflow logs during the test, rendered as JSON lines (with the production redaction)."""
    buffer = io.StringIO()
    configure_logging("json", "debug", stream=buffer)
    yield buffer
