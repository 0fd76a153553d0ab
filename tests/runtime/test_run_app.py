"""`panoflow run` on Panorama-layout apps: the runtime issue's acceptance, end to end, in child processes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.media import decode_bgr, make_clip
from tests.support.apps import write_app
from tests.support.cli import run_panoflow

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")


def _hashes(path: Path) -> list[str]:
    return [hashlib.sha256(a.tobytes()).hexdigest() for a in decode_bgr(path)]


@pytest.mark.parametrize(
    ("style", "dockerfile"), [("subclass", "src"), ("super", "workdir"), ("composition", "src")]
)
def test_two_file_cameras_bit_exact(tmp_path: Path, clips: dict[str, Path], style: str,
                                    dockerfile: str) -> None:
    host_had = {p: os.path.exists(p) for p in ("/panorama", "/opt/aws")}
    app = write_app(tmp_path / "app", style=style, dockerfile=dockerfile)
    state = tmp_path / "state"
    proc = run_panoflow(
        "run", str(app), "--camera", f"camera_node={clips['a']}", "--camera", f"camera_node={clips['b']}",
        "--param", "p_int=7", "--state-dir", str(state), "--record", str(tmp_path / "out.mp4"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads((state / "storage" / "result.json").read_text())
    # every frame of both files, in order, bit-exact with PyAV's own BGR decode
    assert result["frames"]["camera_node_0"] == _hashes(clips["a"])
    assert result["frames"]["camera_node_1"] == _hashes(clips["b"])
    # parameters of all four types, one overridden on the command line
    assert result["params"] == {"p_bool": True, "p_int": 7, "p_float": 0.5, "p_str": "hello"}
    assert result["types"] == {"p_bool": "bool", "p_int": "int", "p_float": "float", "p_str": "str"}
    assert result["data"] == "payload from /panorama"
    assert (state / "logs" / "code_node" / "app.log").read_text().strip()
    # nothing appeared on the host
    assert {p: os.path.exists(p) for p in ("/panorama", "/opt/aws")} == host_had
    # the recording holds the output frames (both streams tiled into one picture per output batch)
    assert (tmp_path / "out.mp4").stat().st_size > 0


def test_console_output_captured_and_echoed(tmp_path: Path, clips: dict[str, Path]) -> None:
    app = write_app(tmp_path / "app", style="subclass")
    state = tmp_path / "state"
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clips['a']}", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr
    assert "[code_node] app started" in proc.stdout
    assert "app started" in (state / "logs" / "code_node" / "console_output").read_text()


def test_failing_app_exits_nonzero_with_one_traceback(tmp_path: Path, clips: dict[str, Path]) -> None:
    code = """
def helper():
    return 1 / 0

class App(panoramasdk.node):
    def __init__(self):
        pass

App().inputs.video_in.get()
helper()
"""
    app = write_app(tmp_path / "app", code=code)
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clips['a']}", "--state-dir",
                        str(tmp_path / "s"))
    assert proc.returncode == 1
    assert proc.stderr.count("Traceback") == 1
    assert "ZeroDivisionError" in proc.stderr and "[code_node] application failed" in proc.stderr
    assert "in helper" in proc.stderr


def test_duration_stops_a_looping_run_with_exit_0(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", style="super")
    # a clip of 6 frames: a loaded machine still loops it several times in 2 s
    clip = make_clip(tmp_path / "short.mp4", frames=6, size=(160, 120), seed=3)
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={clip}", "--loop", "--duration", "2",
                        "--state-dir", str(tmp_path / "s"))  # a run that never stopped would time out (60 s)
    assert proc.returncode == 0, proc.stderr
    # it stopped because its 2 s were up (not because the clip ended: it loops), by the run's own clock; the
    # wall clock of this test also counts the interpreter's start, which a loaded machine stretches
    assert [json.loads(line)["seconds"] for line in proc.stderr.splitlines()
            if line.startswith("{") and '"duration_reached"' in line] == [2]
    elapsed = re.search(r"^run duration reached after ([0-9.]+) s$", proc.stderr, re.MULTILINE)
    assert elapsed is not None and float(elapsed[1]) >= 2.0, proc.stderr
    frames = json.loads((tmp_path / "s" / "storage" / "result.json").read_text())["frames"]["camera_node"]
    assert len(frames) > 6  # it looped


def test_sigterm_and_sigint_stop_promptly(tmp_path: Path, clips: dict[str, Path]) -> None:
    app = write_app(tmp_path / "app", style="subclass")
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen(
            [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
             f"camera_node={clips['a']}", "--loop", "--realtime", "--state-dir", str(tmp_path / "s")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 20
            state_log = tmp_path / "s" / "logs" / "code_node" / "console_output"
            while not (state_log.exists() and "app started" in state_log.read_text()):
                assert time.monotonic() < deadline, "app never started"
                time.sleep(0.05)
            proc.send_signal(sig)
            # The stop is prompt when nothing in it waits out a timer: the code returns on its own (no
            # code_abandoned after the 1.5 s grace, no SIGKILL after the runner's 3 s), and the run ends with
            # the signal's own summary. 0.2-0.3 s on a quiet machine; a deadline, not a stopwatch, so a loaded
            # machine (scripts/test --stress) stretches the wait without failing it.
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert f"run received {signal.Signals(sig).name}" in err, err
            events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
            assert "code_abandoned" not in events and "app_killed" not in events, events
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        state_log.unlink()


def test_missing_camera_binding_is_one_clear_line(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    proc = run_panoflow("run", str(app), "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "--camera camera_node=URI" in proc.stderr


def test_unknown_param_and_bad_value(tmp_path: Path, clips: dict[str, Path]) -> None:
    app = write_app(tmp_path / "app")
    cam = f"camera_node={clips['a']}"
    bad = run_panoflow("run", str(app), "--camera", cam, "--param", "nope=1", "--state-dir",
                       str(tmp_path / "s"))
    assert bad.returncode == 1 and "no parameter node 'nope'" in bad.stderr
    bad = run_panoflow("run", str(app), "--camera", cam, "--param", "p_int=x", "--state-dir",
                       str(tmp_path / "s"))
    assert bad.returncode == 1 and "not a valid int32" in bad.stderr and "Traceback" not in bad.stderr


def test_preview_serves_the_display_over_http(tmp_path: Path, clips: dict[str, Path]) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = write_app(tmp_path / "app", style="subclass")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panoflow", "--log-format", "json", "run", str(app), "--camera",
         f"camera_node={clips['a']}", "--loop", "--realtime", "--preview", f"127.0.0.1:{port}",
         "--state-dir", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot.jpg", timeout=2) as resp:
                    body = resp.read()
                    assert resp.headers["Content-Type"] == "image/jpeg"
                if body:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "preview never served a frame"
            time.sleep(0.2)
        assert body[:2] == b"\xff\xd8"  # a JPEG
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            assert b"stream.mjpg" in resp.read()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
