"""Applications the daemon tests deploy (Panorama layout, written with :mod:`tests.runtime.apptemplate`)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runtime.apptemplate import write_app

#: counts its starts in its storage, reports whether its temporary directory came back empty, then passes frames on
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

#: serves HTTP on CONTAINER_PORT inside its own network namespace
SERVER = """
import http.server, threading, time

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from NAME"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()

App()
server = http.server.ThreadingHTTPServer(("0.0.0.0", CONTAINER_PORT), Hello)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("listening", flush=True)
while True:
    time.sleep(0.2)
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


def server_app(root: Path, name: str, container_port: int) -> Path:
    """An app with one code node that declares ``container_port`` as an inbound port and serves HTTP on it."""
    graph_dir = root / "graphs" / "srv"
    pkg = root / "packages" / "123456789012-SRV-1.0"
    (pkg / "src").mkdir(parents=True)
    graph_dir.mkdir(parents=True)
    (root / "assets").mkdir()
    (graph_dir / "graph.json").write_text(json.dumps({"nodeGraph": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": "123456789012::SRV", "version": "1.0"}],
        "nodes": [{"name": "code_node", "interface": "123456789012::SRV.interface"}],
        "edges": []}}))
    (pkg / "package.json").write_text(json.dumps({"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": "SRV", "version": "1.0", "assets": [],
        "interfaces": [{"name": "interface", "category": "business_logic", "asset": "code_asset",
                        "inputs": [], "outputs": [],
                        "network": {"inboundPorts": [{"port": container_port, "description": "http"}]}}]}}))
    (pkg / "descriptor.json").write_text(json.dumps({"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01", "entry": {"path": "python3", "name": "/panorama/app.py"}}}))
    code = SERVER.replace("CONTAINER_PORT", str(container_port)).replace("NAME", name)
    (pkg / "src" / "app.py").write_text("import panoramasdk\n" + code)
    return root


def routing_overrides(path: Path, container_port: int, host_port: int) -> Path:
    """Overrides confirming one networkRoutingRule for the server app."""
    path.write_text(json.dumps({"nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01", "nodes": [], "packages": [], "nodeOverrides": [],
        "networkRoutingRules": [{"node": "code_node", "containerPort": container_port, "hostPort": host_port}]}}))
    return path
