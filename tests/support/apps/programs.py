"""Apps whose code does one thing a test watches for, written on :mod:`tests.support.apps.layout`. Each
reproduces one trait of a published Panorama sample (never its code) or of an app a device runs:

* :func:`counter_app`: counts its starts in its storage and passes frames on (:func:`broken_app`: the same
  with an edge into a port it lacks; :func:`built_counter_app`: the same with its code asset built);
* :func:`pinned_app`: aws-panorama-sample's pinned numpy-1 library (opencv 4.6, numpy<2, boto3 1.24) in its
  own requirements.txt, built with ``panoflow build-container``, drawing with cv2 in place on
  ``stream.image``;
* :func:`status_app`: debug-server's HTTP server on containerPort 80 and its own client thread calling the
  device's hostPort;
* :func:`attack_app`: a hostile app trying every way out of its sandbox that issue 13 lists, recording each
  answer;
* :func:`param_app`: keeps a digest of a parameter's value (proof that it arrived) and counts its frames;
* :func:`greeter_app`: the console's deploy-wizard app: parameter nodes with Panorama ``decorator`` titles and
  descriptions, code that logs the greeting it was deployed with, its code asset built.

The last four write what they saw as JSON into ``/opt/aws/panorama/storage``; :func:`wait_json` reads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.apps.layout import ACCOUNT, server_app, write_app
from tests.support.cli import panoflow_argv

#: counts its starts in its storage, reports whether its temporary directory came back empty, then passes
#: frames on
COUNTER = """
import os, tempfile

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

app = App()
path = "/opt/aws/panorama/storage/counter.txt"
n = int(open(path).read()) + 1 if os.path.exists(path) else 1
with open(path, "w") as f:
    f.write(str(n))
scratch = os.path.join(tempfile.gettempdir(), "scratch.txt")
state = "leftover" if os.path.exists(scratch) else "clean"
open(scratch, "w").write("x")
print(f"start {n} version {app.inputs.p_str.get()} tmp {state}", flush=True)
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""


def counter_app(root: Path, *, on_signal: bool = False) -> Path:
    """The counter app; ``on_signal``: its camera node waits for a RESUME signal (``launch: onSignal``)."""
    write_app(root, code=COUNTER)
    if on_signal:
        graph_file = root / "graphs" / "test_app" / "graph.json"
        graph = json.loads(graph_file.read_text())
        for node in graph["nodeGraph"]["nodes"]:
            if node["name"] == "camera_node":
                node["launch"] = "onSignal"
        graph_file.write_text(json.dumps(graph, indent=2))
    return root


def broken_app(root: Path) -> Path:
    """The counter app with an edge into an input port its code node does not have."""
    counter_app(root)
    graph_file = root / "graphs" / "test_app" / "graph.json"
    graph_file.write_text(graph_file.read_text().replace('"code_node.video_in"', '"code_node.nope_in"'))
    return root


def built_counter_app(root: Path) -> tuple[Path, Path]:
    """The counter app with its code asset built (code asset + descriptor in assets/, as
    RegisterPackageVersion wants); returns the app folder and its code package folder."""
    root = counter_app(root)
    pkg = root / "packages" / f"{ACCOUNT}-TEST_CODE-1.0"
    (pkg / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n")
    r = subprocess.run(panoflow_argv("build-container", "--container-asset-name", "code_asset",
                                     "--package-path", f"packages/{pkg.name}", "--docker", "never",
                                     "--no-index"),
                       cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return root, pkg


PACKAGE = "packages/123456789012-TEST_CODE-1.0"

#: where the rectangle and the text go (x0, y0, x1, y1) in a 320x240 frame, and their BGR colours
RECT = (40, 60, 200, 180)
RECT_BGR = (0, 0, 255)
TEXT_ORIGIN = (52, 110)

PINNED_CODE = """
import json, os
import cv2, numpy, boto3

# the sample's libraries, as its requirements.txt pins them: fail at start if the environment is not its own
assert cv2.__version__.startswith("4.6."), cv2.__version__
assert numpy.__version__.startswith("1."), numpy.__version__
assert boto3.__version__.startswith("1.24."), boto3.__version__
print("libraries", cv2.__version__, numpy.__version__, boto3.__version__, flush=True)

STORAGE = "/opt/aws/panorama/storage/frames.json"

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.frames = 0

    def process(self, stream):
        image = stream.image
        assert isinstance(image, numpy.ndarray) and image.dtype == numpy.uint8, type(image)
        cv2.rectangle(image, (RECT[0], RECT[1]), (RECT[2], RECT[3]), RECT_BGR, -1)
        cv2.putText(image, "PF", TEXT_ORIGIN, cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 4)
        self.frames += 1

    def run(self):
        while True:
            streams = self.inputs.video_in.get()
            for stream in streams:
                self.process(stream)
            self.outputs.video_out.put(streams)
            with open(STORAGE + ".tmp", "w") as f:
                json.dump({"frames": self.frames, "numpy": numpy.__version__, "cv2": cv2.__version__,
                           "boto3": boto3.__version__}, f)
            os.replace(STORAGE + ".tmp", STORAGE)
            if self.frames % 50 == 0:
                print("frames", self.frames, flush=True)

App().run()
"""


def build_code_asset(app: Path, wheels: Path) -> None:
    """``panoflow build-container`` for the app's code package, offline from ``wheels`` (as the tests
    build)."""
    proc = subprocess.run(
        [sys.executable, "-m", "panoflow", "build-container", "--container-asset-name", "code_asset",
         "--package-path", PACKAGE, "--no-index", "--find-links", str(wheels)],
        cwd=app, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "without Docker" in proc.stdout, proc.stdout


def pinned_app(root: Path, wheels: Path) -> Path:
    """The pinned-library app (camera -> code -> HDMI), its requirements.txt pinning the sample's libraries,
    built into a code asset with ``panoflow build-container``."""
    code = PINNED_CODE.replace("RECT_BGR", repr(RECT_BGR)).replace("RECT", repr(RECT))
    code = code.replace("TEXT_ORIGIN", repr(TEXT_ORIGIN))
    write_app(root, code=code)
    pkg = root / PACKAGE
    (pkg / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n"
                                    "RUN pip3 install -r /panorama/requirements.txt\n")
    (pkg / "src" / "requirements.txt").write_text(
        "opencv-python-headless==4.6.0.66\nnumpy<2\nboto3==1.24.*\n")
    build_code_asset(root, wheels)
    return root


STATUS_CODE = """
import http.server, json, os, socket, threading, time, urllib.request

HOST_PORT = {host_port}
RESULT = "/opt/aws/panorama/storage/client.json"

class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"status": "running", "path": self.path, "token": "{token}"}}).encode()
        self.send_response(200 if self.path == "/status" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def device_address():
    # the address of the interface that routes outwards (a UDP connect sends nothing)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]

def ask(host):
    try:
        with urllib.request.urlopen(f"http://{{host}}:{{HOST_PORT}}/status", timeout=3) as resp:
            return {{"answer": json.loads(resp.read())}}
    except Exception as exc:
        return {{"error": type(exc).__name__ + ": " + str(exc)}}

def client():
    while True:
        try:
            address = device_address()
        except OSError as exc:
            address = None
        seen = {{"loopback": ask("127.0.0.1"), "device_address": address}}
        if address:
            seen["device"] = ask(address)
        with open(RESULT + ".tmp", "w") as f:
            json.dump(seen, f)
        os.replace(RESULT + ".tmp", RESULT)
        time.sleep(0.5)

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

App()
server = http.server.ThreadingHTTPServer(("0.0.0.0", 80), Status)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("listening on 80", flush=True)
threading.Thread(target=client, daemon=True).start()
while True:
    time.sleep(0.5)
"""


def status_app(root: Path, host_port: int, token: str) -> Path:
    """An app whose code node serves ``/status`` on containerPort 80 (answering with ``token``) and whose own
    thread asks ``http://127.0.0.1:host_port/status`` (and the device's address) twice a second, into
    ``client.json``."""
    server_app(root, "status", 80)
    code = STATUS_CODE.format(host_port=host_port, token=token)
    (root / "packages" / "123456789012-SRV-1.0" / "src" / "app.py").write_text("import panoramasdk\n" + code)
    return root


ATTACK_CODE = r"""
import json, os, socket, urllib.request

STATE = __STATE__
PORT = __PORT__
MARK = __MARK__
RESULT = "/opt/aws/panorama/storage/attack.json"

def attempt(fn):
    try:
        return {"ok": True, "value": repr(fn())[:300]}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}

def read(path):
    with open(path, "rb") as f:
        return f.read()

def write(path):
    with open(path, "w") as f:
        f.write("pwned")
    return path

def api():
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/instances")
    with urllib.request.urlopen(req, timeout=3) as resp:
        return resp.status

def connect():
    with socket.create_connection(("127.0.0.1", PORT), timeout=3):
        return "connected"

def processes():
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = read(f"/proc/{pid}/cmdline").replace(b"\0", b" ")
                found[pid] = cmdline.decode(errors="replace").strip()
            except OSError as exc:
                found[pid] = "unreadable: " + str(exc)
    return found

results = {
    "read_token": attempt(lambda: read(STATE + "/token")),
    "read_cameras": attempt(lambda: read(STATE + "/cameras.json")),
    "read_cloud_credentials": attempt(lambda: read(STATE + "/cloud.json")),
    "list_state": attempt(lambda: os.listdir(STATE)),
    "read_shadow": attempt(lambda: read("/etc/shadow")),
    "write_etc": attempt(lambda: write("/etc/" + MARK)),
    "write_tmp": attempt(lambda: write("/tmp/" + MARK)),
    "daemon_api": attempt(api),
    "daemon_socket": attempt(connect),
    "processes": processes(),
    "environ": dict(os.environ),
    "ids": [os.getuid(), os.geteuid(), os.getgid()],
    "status": [line.strip() for line in open("/proc/self/status") if line.startswith(("Cap", "NoNewPrivs"))],
}

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

app = App()
print("attempts recorded", flush=True)
frames = 0
while True:
    streams = app.inputs.video_in.get()
    frames += sum(1 for s in streams if not s.is_cached)
    app.outputs.video_out.put(streams)
    results["frames"] = frames
    with open(RESULT + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(RESULT + ".tmp", RESULT)
"""


def attack_app(root: Path, state_dir: Path, daemon_port: int, mark: str) -> Path:
    """The hostile app: ``state_dir`` is the daemon's (the paths it tries), ``mark`` the file name it
    writes."""
    code = ATTACK_CODE.replace("__STATE__", repr(str(state_dir))).replace("__PORT__", str(daemon_port))
    return write_app(root, code=code.replace("__MARK__", repr(mark)))


PARAM_CODE = """
import hashlib, json, os

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

app = App()
digest = hashlib.sha256(app.inputs.p_str.get().encode()).hexdigest()
frames = 0
while True:
    streams = app.inputs.video_in.get()
    frames += sum(1 for s in streams if not s.is_cached)
    app.outputs.video_out.put(streams)
    with open("/opt/aws/panorama/storage/seen.json.tmp", "w") as f:
        json.dump({"p_str_sha256": digest, "frames": frames}, f)
    os.replace("/opt/aws/panorama/storage/seen.json.tmp", "/opt/aws/panorama/storage/seen.json")
"""


def param_app(root: Path) -> Path:
    """Counts its frames and keeps only the SHA-256 of its ``p_str`` parameter (never the value) in
    ``seen.json``."""
    return write_app(root, code=PARAM_CODE)


def read_json(path: Path) -> dict[str, Any] | None:
    """``path``'s JSON, or None while it does not exist yet."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def wait_json(path: Path, done: Callable[[dict[str, Any]], bool], timeout: float,
              why: Callable[[dict[str, Any] | None], str]) -> dict[str, Any]:
    """``path``'s JSON once ``done`` holds for it; fails with ``why(last seen)`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (seen := read_json(path)) is None or not done(seen):
        assert time.monotonic() < deadline, why(seen)
        time.sleep(0.2)
    return seen


#: the greeter's code: logs the greeting it was deployed with, then passes its camera's frames to the display
GREETER = """
class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

app = App()
print(f"greeter says {app.inputs.p_str.get()!r} every {app.inputs.p_int.get()} frames", flush=True)
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""

#: Panorama's UI decorators of the greeter's overridable nodes: what the deploy wizard shows at each field
DECORATORS = {
    "camera_node": {"title": "Camera", "description": "The camera whose video the greeter shows"},
    "p_str": {"title": "Greeting", "description": "The words the greeter logs when it starts"},
    "p_int": {"title": "Frame interval", "description": "How many frames between greetings"},
    "p_float": {"title": "Threshold", "description": "A confidence between 0 and 1"},
    "p_bool": {"title": "Enabled", "description": "Whether the greeter greets at all"},
}


def greeter_app(root: Path) -> Path:
    """The greeter, a Panorama project under ``root`` with its code asset built (ready for
    package-application). Its graph keeps the abstract camera that the wizard's camera choice replaces."""
    write_app(root, code=GREETER)
    graph_file = root / "graphs" / "test_app" / "graph.json"
    graph = json.loads(graph_file.read_text())
    for node in graph["nodeGraph"]["nodes"]:
        if node["name"] in DECORATORS:
            node["decorator"] = DECORATORS[node["name"]]
    graph_file.write_text(json.dumps(graph, indent=2))
    # the greeter needs no library: its image only copies the code (no pip install, so no wheels to offer)
    (root / PACKAGE / "Dockerfile").write_text("FROM public.ecr.aws/panorama/panorama-application\n"
                                               "COPY src /panorama\n")
    no_wheels = root.with_name(f"{root.name}-no-wheels")
    no_wheels.mkdir()
    build_code_asset(root, no_wheels)
    return root
