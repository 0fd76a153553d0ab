"""The Panorama application layout a test writes to disk: ``graphs/<name>/graph.json``, code packages
(``packages/<account>-<NAME>-<version>/`` with package.json, descriptor.json, Dockerfile and code) and
``assets/``; and the three apps built on it: :func:`write_app` (camera -> code -> HDMI with four parameters,
in the three construction styles published Panorama apps use), :func:`write_model_app` (the same with a model
node) and :func:`server_app` (one code node serving HTTP on an inbound port)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.models import conv_model, tar_gz, write_model_package

ACCOUNT = "123456789012"
BASE_IMAGE = "FROM public.ecr.aws/panorama/panorama-application\n"
CAMERA = {"name": "camera_node", "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
          "overridable": True, "overrideMandatory": True}
HDMI = {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"}
CAMERA_PACKAGES = [{"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
                   {"name": "panorama::hdmi_data_sink", "version": "1.0"}]
#: camera -> code -> HDMI
VIDEO_EDGES = [{"producer": "camera_node.video_out", "consumer": "code_node.video_in"},
               {"producer": "code_node.video_out", "consumer": "output_node.video_in"}]

PARAMS = {
    "p_bool": ("boolean", True),
    "p_int": ("int32", 3),
    "p_float": ("float32", 0.5),
    "p_str": ("string", "hello"),
}

# What every style does once it has a node object `n` (self or the composed node).
_LOOP = """
def record(n, results):
    import hashlib
    streams = n.inputs.video_in.get()
    assert streams and not all(s.is_cached for s in streams)
    for s in streams:
        if s.is_cached:
            continue
        results.setdefault(s.stream_id, []).append(hashlib.sha256(s.image.tobytes()).hexdigest())
        s.add_rect(0.1, 0.1, 0.5, 0.5)
        s.add_label("frame", 0.1, 0.1)
    n.outputs.video_out.put(streams)


def params(n):
    return {k: getattr(n.inputs, k).get() for k in PARAM_NAMES}


def finish(results, values):
    import json
    with open("/opt/aws/panorama/storage/result.json", "w") as f:
        json.dump({"frames": results, "params": values,
                   "types": {k: type(v).__name__ for k, v in values.items()},
                   "data": open("/panorama/data.txt").read().strip()}, f)
""".replace("PARAM_NAMES", repr(list(PARAMS)))

STYLES = {
    # subclass, never calls super().__init__(); module-level main()
    "subclass": _LOOP + """
import logging
logging.basicConfig(filename="/opt/aws/panorama/logs/app.log", level=logging.INFO)

class App(panoramasdk.node):
    def __init__(self):
        self.values = params(self)
        self.results = {}

def main():
    app = App()
    logging.info("started with %s", app.values)
    print("app started", flush=True)
    try:
        while True:
            record(app, app.results)
    finally:
        finish(app.results, app.values)

main()
""",
    # subclass calling super().__init__(); __main__ guard
    "super": _LOOP + """
class App(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.values = params(self)
        self.results = {}

if __name__ == "__main__":
    app = App()
    with open("/opt/aws/panorama/logs/app.log", "w") as log:
        log.write("started\\n")
    try:
        while True:
            record(app, app.results)
    finally:
        finish(app.results, app.values)
""",
    # composition: panoramasdk.node() handed to a plain class; both call() orders exercised elsewhere
    "composition": _LOOP + """
class Wrapper:
    def __init__(self, node):
        self.node = node
        self.values = params(node)
        self.results = {}

node = panoramasdk.node()
w = Wrapper(node)
open("/opt/aws/panorama/logs/app.log", "w").write("started\\n")
try:
    while True:
        record(w.node, w.results)
finally:
    finish(w.results, w.values)
""",
}


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


def write_graph(root: Path, name: str, packages: Sequence[dict[str, Any]], nodes: Sequence[dict[str, Any]],
                edges: Sequence[dict[str, Any]]) -> Path:
    """``root/graphs/NAME/graph.json`` (and an empty ``root/assets``); returns the graph file."""
    graph_dir = root / "graphs" / name
    graph_dir.mkdir(parents=True)
    (root / "assets").mkdir(exist_ok=True)
    graph = {"nodeGraph": {"envelopeVersion": "2021-01-01", "packages": list(packages), "nodes": list(nodes),
                           "edges": list(edges)}}
    (graph_dir / "graph.json").write_text(json.dumps(graph, indent=2))
    return graph_dir / "graph.json"


def write_code_package(root: Path, name: str, code: str, *, inputs: Sequence[dict[str, str]] = (),
                       outputs: Sequence[dict[str, str]] = (), network: dict[str, Any] | None = None,
                       entry_path: str = "python3", dockerfile: str | None = "src", pip: str = "") -> Path:
    """The code package ``ACCOUNT-NAME-1.0`` under ``root/packages`` with one interface ``interface`` (asset
    ``code_asset``) and ``code`` as its ``/panorama/app.py``. ``dockerfile``: ``src`` (COPY src /panorama),
    ``workdir`` (WORKDIR /panorama + COPY . ., the code beside the Dockerfile) or None (no Dockerfile);
    ``pip`` is appended to it as a RUN line. Returns the package folder."""
    pkg = root / "packages" / f"{ACCOUNT}-{name}-1.0"
    code_dir = pkg if dockerfile == "workdir" else pkg / "src"
    code_dir.mkdir(parents=True, exist_ok=True)
    interface: dict[str, Any] = {"name": "interface", "category": "business_logic", "asset": "code_asset",
                                 "inputs": list(inputs), "outputs": list(outputs)}
    if network is not None:
        interface["network"] = network
    (pkg / "package.json").write_text(json.dumps({"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": name, "version": "1.0", "assets": [],
        "interfaces": [interface]}}, indent=2))
    (pkg / "descriptor.json").write_text(json.dumps({"runtimeDescriptor": {
        "envelopeVersion": "2021-01-01", "entry": {"path": entry_path, "name": "/panorama/app.py"}}}))
    if dockerfile is not None:
        copy = "COPY src /panorama\n" if dockerfile == "src" else "WORKDIR /panorama\nCOPY . .\n"
        (pkg / "Dockerfile").write_text(BASE_IMAGE + copy + (f"RUN {pip}\n" if pip else ""))
    (code_dir / "app.py").write_text(code)
    return pkg


def write_app(root: Path, *, style: str = "subclass", dockerfile: str = "src",
              code: str | None = None) -> Path:
    """Create an app under ``root``: camera -> ``code_node`` (package TEST_CODE) -> HDMI, and the parameters
    :data:`PARAMS` wired into the code node; ``dockerfile`` is ``src`` (COPY src /panorama) or ``workdir``
    (WORKDIR /panorama + COPY . .). ``code`` replaces the generated app.py body (``import panoramasdk`` is
    prepended)."""
    nodes = [{"name": "code_node", "interface": f"{ACCOUNT}::TEST_CODE.interface"}, CAMERA, HDMI]
    nodes += [{"name": k, "interface": t, "value": v, "overridable": True} for k, (t, v) in PARAMS.items()]
    edges = VIDEO_EDGES + [{"producer": k, "consumer": f"code_node.{k}"} for k in PARAMS]
    packages = [{"name": f"{ACCOUNT}::TEST_CODE", "version": "1.0"}, *CAMERA_PACKAGES]
    write_graph(root, "test_app", packages, nodes, edges)
    body = code if code is not None else STYLES[style]
    pkg = write_code_package(
        root, "TEST_CODE", "import panoramasdk\n" + textwrap.dedent(body),
        inputs=[{"name": "video_in", "type": "media"}]
        + [{"name": k, "type": t} for k, (t, _) in PARAMS.items()],
        outputs=[{"name": "video_out", "type": "media"}], dockerfile=dockerfile, pip="pip3 install numpy")
    code_dir = pkg / "src" if dockerfile == "src" else pkg
    (code_dir / "data.txt").write_text("payload from /panorama\n")
    return root


def write_model_app(root: Path, code: str, *, model: bytes | None = None,
                    shape: tuple[int, ...] = (1, 3, 16, 16), entry_path: str = "python3",
                    model_node: str = "model_node", **package: Any) -> Path:
    """An app: ``camera_node`` -> ``code_node`` (package MODEL_CODE) -> ``output_node``, and ``model_node``
    (an ONNX model package from :mod:`tests.support.models` whose input ``data`` has the descriptor shape
    ``shape``; ``package``: more of ``write_model_package``'s arguments). ``code`` is the code node's whole
    ``app.py`` (``entry_path`` ``native`` makes it a native async node)."""
    model = model if model is not None else conv_model(size=shape[2:])  # type: ignore[arg-type]
    pkg_model = write_model_package(root, tar_gz({"model.onnx": model}), shape=shape, **package)
    nodes = [{"name": "code_node", "interface": f"{ACCOUNT}::MODEL_CODE.interface"},
             {"name": model_node, "interface": pkg_model["interface"]}, CAMERA, HDMI]
    write_graph(root, "model_app", [{"name": f"{ACCOUNT}::MODEL_CODE", "version": "1.0"}, pkg_model["ref"],
                                    *CAMERA_PACKAGES], nodes, VIDEO_EDGES)
    write_code_package(root, "MODEL_CODE", textwrap.dedent(code),
                       inputs=[{"name": "video_in", "type": "media"}],
                       outputs=[{"name": "video_out", "type": "media"}], entry_path=entry_path)
    return root


def server_app(root: Path, name: str, container_port: int) -> Path:
    """An app with one code node (package SRV) that declares ``container_port`` as an inbound port and serves
    HTTP on it, answering ``hello from NAME``."""
    write_graph(root, "srv", [{"name": f"{ACCOUNT}::SRV", "version": "1.0"}],
                [{"name": "code_node", "interface": f"{ACCOUNT}::SRV.interface"}], [])
    code = SERVER.replace("CONTAINER_PORT", str(container_port)).replace("NAME", name)
    write_code_package(root, "SRV", "import panoramasdk\n" + code, dockerfile=None,
                       network={"inboundPorts": [{"port": container_port, "description": "http"}]})
    return root


def routing_overrides(path: Path, container_port: int, host_port: int) -> Path:
    """Overrides confirming one networkRoutingRule for :func:`server_app`."""
    path.write_text(json.dumps({"nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01", "nodes": [], "packages": [], "nodeOverrides": [],
        "networkRoutingRules": [{"node": "code_node", "containerPort": container_port,
                                 "hostPort": host_port}]}}))
    return path
