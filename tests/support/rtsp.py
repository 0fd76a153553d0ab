"""The real test camera: GStreamer's RTSP server (tests/fixtures/gst_rtsp_server.py) as a child process, the
fixtures that start it (``gst`` skips where it cannot run, ``servers`` starts and stops them) and the H.265
clip it serves (``hevc_clip``).

The server runs under Debian's ``/usr/bin/python3`` (``gi`` does not import in a virtual environment). Every
mount gets its own pipeline per client, so a new client starts at the file's first frame.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from tests.support.ports import free_port

__all__ = ["GstServer", "gst_unavailable", "h264_launch", "h265_launch", "make_hevc_clip", "vp8_launch"]

SCRIPT = Path(__file__).resolve().parent.parent / "fixtures" / "gst_rtsp_server.py"
SYSTEM_PYTHON = os.environ.get("PANOFLOW_GST_PYTHON", "/usr/bin/python3")  # Debian's, where gi imports
GI_CHECK = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"


def gst_unavailable() -> str:
    """Why the GStreamer RTSP server cannot run here ("" when it can)."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found (the RTSP tests need Debian's python3-gi and gst-rtsp-server)"
    proc = subprocess.run([SYSTEM_PYTHON, "-c", GI_CHECK], check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        return ("GStreamer RTSP server not installed (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-rtsp gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
                f"gstreamer1.0-plugins-bad; scripts/test does this): {last}")
    return ""


def h264_launch(path: Path) -> str:
    return (f"( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 "
            "config-interval=-1 )")


def h265_launch(path: Path) -> str:
    return (f"( filesrc location={path} ! qtdemux ! h265parse ! rtph265pay name=pay0 pt=96 "
            "config-interval=-1 )")


def vp8_launch(size: tuple[int, int] = (320, 240)) -> str:
    return (f"( videotestsrc is-live=true ! video/x-raw,width={size[0]},height={size[1]},framerate=30/1 ! "
            "vp8enc deadline=1 ! rtpvp8pay name=pay0 pt=96 )")


@dataclass
class GstServer:
    """One server process on ``port`` serving ``mounts`` (path -> gst-launch bin)."""

    mounts: dict[str, str]
    port: int = field(default_factory=free_port)
    auth: tuple[str, str, str] | None = None  # (basic|digest, user, password)
    shared: bool = False  # one pipeline for every client of a mount (joins mid-stream)
    proc: subprocess.Popen[str] | None = None
    starts: int = 0

    def url(self, mount: str, *, user: str | None = None, password: str | None = None, scheme: str = "rtsp",
            query: str = "") -> str:
        auth = (f"{user}:{password}@" if user is not None and password is not None
                else (f"{user}@" if user else ""))
        return f"{scheme}://{auth}127.0.0.1:{self.port}{mount}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 15.0) -> float:
        """Start (or restart on the same port); returns ``time.monotonic()`` when it printed READY."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [SYSTEM_PYTHON, str(SCRIPT), str(self.port)]
        if self.auth:
            cmd += ["--auth", self.auth[0], "--user", self.auth[1], "--password", self.auth[2]]
        if self.shared:
            cmd.append("--shared")
        cmd += [f"{mount}={launch}" for mount, launch in self.mounts.items()]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            line = self._first_line(deadline)
            if line.startswith("READY"):
                self.starts += 1
                return time.monotonic()
            self.stop()
            if time.monotonic() > deadline:  # pragma: no cover - the port stayed busy
                raise RuntimeError(f"RTSP test server did not start on port {self.port}: {line!r}")
            time.sleep(0.05)  # the port is still held by the previous process: retry

    def _first_line(self, deadline: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if ready:
                return self.proc.stdout.readline().strip()
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}"
        return "timed out"

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture(scope="session")
def gst() -> None:
    """Skips the test (with the reason) where the GStreamer RTSP server cannot run."""
    reason = gst_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def servers(gst: None) -> Iterator[Callable[..., GstServer]]:
    """``servers(mounts, auth=None)`` starts a server; every one is stopped at the end of the test."""
    started: list[GstServer] = []

    def start(mounts: dict[str, str], **kw: object) -> GstServer:
        server = GstServer(mounts, **kw)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


def make_hevc_clip(path: Path, *, frames: int, size: tuple[int, int], fps: int = 30, seed: int = 0) -> Path:
    """H.265 (libx265, no B-frames, closed GOP of ``fps``) in MP4, from the same pattern as ``make_clip``."""
    import av  # PyAV only where a test makes a clip

    from panoflow.plugins.sources import TestPattern

    pattern = TestPattern(size, seed=seed)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx265", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "veryfast", "tune": "zerolatency",
            "x265-params": (f"log-level=error:bframes=0:keyint={fps}:min-keyint={fps}:scenecut=0:"
                            "repeat-headers=1"),
        }
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern.render(i), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def hevc_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames of 320x240 H.265 in MP4."""
    path = tmp_path_factory.mktemp("rtsp-hevc") / "hevc.mp4"
    return make_hevc_clip(path, frames=60, size=(320, 240), seed=14)
