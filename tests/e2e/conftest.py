"""Fixtures for the end-to-end fleet test: the daemon tests' helpers (real `panoflow serve` processes), the RTSP
tests' GStreamer server, and the secrets check that runs after the whole suite."""

from __future__ import annotations

from tests.daemon.conftest import _no_secrets_in_logs, clips, make_daemon  # noqa: F401 - fixtures
from tests.rtsp.conftest import gst, servers  # noqa: F401 - fixtures
