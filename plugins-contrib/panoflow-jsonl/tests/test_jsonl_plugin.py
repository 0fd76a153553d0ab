"""The example plugin is discovered through its entry point and works like a built-in sink."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from panoflow import Frame, Inbox, Label, Policy, Rect, build_plugins


def test_found_through_entry_point() -> None:
    plugins = build_plugins(entry_points=True)
    assert "jsonl" in plugins.sinks
    info = {i.name: i for i in plugins.info()}
    assert info["jsonl"].version == "0.1.0"
    assert not info["jsonl"].builtin
    assert "panoflow_media_sinks" in info["jsonl"].hooks


def test_listed_by_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "panoflow", "plugins", "--json"], capture_output=True,
                         text=True, check=True).stdout
    data = json.loads(out)
    assert "jsonl" in data["provides"]["sinks"]
    assert any(p["name"] == "jsonl" and not p["builtin"] for p in data["plugins"])


@pytest.mark.anyio
async def test_writes_lines(tmp_path) -> None:
    plugins = build_plugins(entry_points=True)
    sink = plugins.sinks["jsonl"](node_id="out", options={"path": str(tmp_path / "f.jsonl")})
    inbox: Inbox[Frame] = Inbox("t", Policy.parse("block"), ["cam"])
    img = np.zeros((4, 6, 3), np.uint8)
    inbox.put("cam", Frame(img, "cam", 0, (1, 2), overlays=(Label("hi", 0.1, 0.2), Rect(0, 0, 1, 1))))
    inbox.end_stream("cam")
    await sink.run(inbox)
    (line,) = (tmp_path / "f.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert rec["size"] == [6, 4] and rec["overlays"][0] == {"kind": "label", "text": "hi", "x": 0.1, "y": 0.2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
