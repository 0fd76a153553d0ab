"""Fixtures for the sandbox tests: world-readable scratch directories and a TCP server on the host (the
helpers:
:mod:`tests.isolation.probes`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.isolation.probes import HostServer


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory under /tmp that the sandbox's uid may read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pf-iso-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host_server() -> Iterator[HostServer]:
    server = HostServer()
    yield server
    server.close()
