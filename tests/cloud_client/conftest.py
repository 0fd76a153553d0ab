"""Fixtures for the device-side integration tests: a real control plane (in a thread, restartable on the same
port and database; :mod:`tests.support.fleet`) and the counter app built with a template-job camera to
register on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import ACCOUNT, built_counter_app
from tests.support.fleet import ControlPlaneServer


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlaneServer]:
    server = ControlPlaneServer(tmp_path).start()
    yield server
    server.stop()
    server.store.close()


@pytest.fixture(scope="session")
def cloud_app(tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]) -> dict[str, Any]:
    """The built counter app, its camera node a template-job camera package ``CAM`` that streams a test
    clip."""
    root, pkg = built_counter_app(tmp_path_factory.mktemp("cloud-app") / "app")
    graph_file = root / "graphs" / "test_app" / "graph.json"
    graph = json.loads(graph_file.read_text())["nodeGraph"]
    graph["packages"] = [p for p in graph["packages"] if p["name"] != "panorama::abstract_rtsp_media_source"]
    graph["packages"].append({"name": f"{ACCOUNT}::CAM", "version": "1.0"})
    for node in graph["nodes"]:
        if node["name"] == "camera_node":
            node.clear()
            node.update({"name": "camera_node", "interface": f"{ACCOUNT}::CAM.camera_node"})
    return {"root": root, "package": pkg, "graph": json.dumps({"nodeGraph": graph}, indent=2),
            "stream": f"file://localhost{clips['a']}?loop=1&realtime=1"}
