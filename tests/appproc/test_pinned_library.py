"""aws-panorama-sample's traits: a code package pinning a numpy-1 library (opencv 4.6, numpy<2, boto3 1.24) in
its own requirements.txt, built with ``panoflow build-container``, drawing with cv2 in place on
``stream.image``; run with ``panoflow run --record`` on a real H.264 clip and deployed to a real root
``panoflow serve``."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.media import decode_bgr, make_clip
from tests.support.apps import RECT, RECT_BGR, TEXT_ORIGIN, pinned_app, read_json, wait_json
from tests.support.daemons import Daemon, live

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

FRAMES = 150  # the sample's first metrics epoch


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, pinned_wheels: Path) -> Path:
    return pinned_app(tmp_path_factory.mktemp("pinned") / "app", pinned_wheels)


@pytest.fixture(scope="module")
def clip150(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip150") / "clip.mp4", frames=FRAMES, seed=5)


def _drawn(frame: np.ndarray) -> tuple[bool, bool]:
    """Whether ``frame`` shows the app's filled rectangle (below the text, where only the fill is) and its
    white text (inside the rectangle), after H.264 compression."""
    x0, y0, x1, y1 = RECT
    fill = frame[y0 + 70:y1 - 4, x0 + 4:x1 - 4].reshape(-1, 3).astype(float)
    rect = bool(
        np.abs(fill.mean(axis=0) - RECT_BGR).max() < 25 and np.abs(fill - RECT_BGR).max(axis=1).mean() < 30
    )
    tx, ty = TEXT_ORIGIN
    text_area = frame[ty - 35:ty + 2, tx:tx + 70].reshape(-1, 3)
    text = bool((text_area.min(axis=1) > 190).sum() > 100)
    return rect, text


@pytest.mark.slow
@pytest.mark.timeout(240)  # a fresh 75 MB environment is installed once per state folder
def test_pinned_numpy1_app_draws_in_place_under_run(sample: Path, clip150: Path, tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "panoflow", "run", str(sample), "--camera", f"camera_node={clip150}",
         "--record", str(out), "--state-dir", str(state)],
        capture_output=True, text=True, timeout=220, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # the app's own environment: the pinned libraries, while panoflow keeps numpy 2
    seen = read_json(state / "storage" / "frames.json")
    assert seen is not None, proc.stderr[-3000:]
    assert seen["frames"] == FRAMES
    assert seen["cv2"] == "4.6.0" and seen["numpy"].startswith("1.") and seen["boto3"].startswith("1.24.")
    assert importlib.metadata.version("numpy").startswith("2.")
    assert subprocess.run([sys.executable, "-c", "import numpy; print(numpy.__version__)"],
                          capture_output=True, text=True, check=True).stdout.startswith("2.")
    console = (state / "logs" / "code_node" / "console_output").read_text()
    assert f"libraries 4.6.0 {seen['numpy']} {seen['boto3']}" in console and f"frames {FRAMES}" in console
    assert f"{FRAMES} frames, {FRAMES} to the app, 0 dropped" in proc.stdout + proc.stderr
    # the drawing made in place on stream.image reached the recorded output, on every frame
    recorded, source = decode_bgr(out), decode_bgr(clip150)
    assert len(recorded) == FRAMES
    assert [_drawn(f) for f in recorded] == [(True, True)] * FRAMES
    assert not any(any(_drawn(f)) for f in source)  # the source itself shows neither
    y1 = RECT[3]  # and outside the drawing the picture is the source's
    below = (slice(y1 + 8, 240), slice(0, 320))
    assert np.abs(recorded[75][below].astype(int) - source[75][below].astype(int)).mean() < 6


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.slow
@pytest.mark.timeout(360)  # a loaded CI machine (stress-ng beside the suite) ran the app at 2 frames/s
def test_pinned_numpy1_app_processes_its_frames_under_serve(sample: Path, clip150: Path,
                                                            make_daemon: Any) -> None:
    d: Daemon = make_daemon("state", "--start-timeout", "180")
    r = d.cli("deploy", str(sample), "--name", "pinned", "--camera", f"camera_node={live(clip150)}",
              timeout=200)
    assert r.returncode == 0, r.stderr + d.stderr()[-3000:]
    storage = d.state_dir / "apps" / "pinned" / "storage" / "frames.json"
    seen = wait_json(storage, lambda s: s["frames"] >= FRAMES, 240,
                     lambda s: f"the app processed {s} frames; {d.instance('pinned')}")
    assert seen["cv2"] == "4.6.0" and seen["numpy"].startswith("1.") and seen["boto3"].startswith("1.24.")
    inst = d.instance("pinned")
    assert (inst["status"], inst["health_status"]) == ("DEPLOYMENT_SUCCEEDED", "RUNNING"), inst
    assert inst["streams"]["camera_node"]["frames"] >= FRAMES, inst
    status = Path(f"/proc/{inst['process']['pid']}/status").read_text()
    if os.geteuid() == 0:  # a root daemon runs the instance's runtime as the sandbox's uid
        assert "\nUid:\t64000\t64000\t64000\t64000\n" in status, status
