"""The control plane fixtures of tests/controlplane (a real server on loopback over each store backend)."""

from __future__ import annotations

from tests.controlplane.conftest import (  # noqa: F401 - fixtures
    device,
    endpoint,
    graph_text,
    key,
    pano,
    plane,
    store,
    store_url,
)
