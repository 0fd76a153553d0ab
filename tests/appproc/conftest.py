"""Fixtures for the application-container acceptance tests: the daemon harness of tests/daemon (a real root
``panoflow serve``, its clips and the suite-wide check that no secret reaches a log file), and the sample's pinned
wheels (opencv 4.6, numpy 1.x, boto3 1.24) from the shared cache tests/packaging fills."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoflow.packaging.interpreters import default_interpreter
from tests.daemon.conftest import _no_secrets_in_logs, clips, make_daemon  # noqa: F401  (fixtures)
from tests.packaging.test_pyenv import PINNED, WHEEL_CACHE, _fetch


@pytest.fixture(scope="session")
def sample_wheels() -> Path:
    """The wheels aws-panorama-sample's requirements pin (fetched once from PyPI into .cache/wheels/app-env)."""
    _fetch(WHEEL_CACHE, default_interpreter().short_version, PINNED)
    return WHEEL_CACHE
