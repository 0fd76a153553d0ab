"""Writes small Panorama-layout applications for runtime tests (graph.json, package.json, descriptor, Dockerfile,
code), in the three construction styles published Panorama apps use."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

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
    return {k: getattr(n.inputs, k).get() for k in %(params)r}


def finish(results, values):
    import json
    with open("/opt/aws/panorama/storage/result.json", "w") as f:
        json.dump({"frames": results, "params": values,
                   "types": {k: type(v).__name__ for k, v in values.items()},
                   "data": open("/panorama/data.txt").read().strip()}, f)
""" % {"params": list(PARAMS)}

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


def write_app(root: Path, *, style: str = "subclass", dockerfile: str = "src", code: str | None = None) -> Path:
    """Create an app under ``root``; ``dockerfile`` is ``src`` (COPY src /panorama) or ``workdir``
    (WORKDIR /panorama + COPY . .). ``code`` replaces the generated app.py body."""
    graph_dir = root / "graphs" / "test_app"
    pkg = root / "packages" / "123456789012-TEST_CODE-1.0"
    graph_dir.mkdir(parents=True)
    (root / "assets").mkdir()
    nodes = [
        {"name": "code_node", "interface": "123456789012::TEST_CODE.interface"},
        {"name": "camera_node", "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
         "overridable": True, "overrideMandatory": True},
        {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"},
    ] + [{"name": k, "interface": t, "value": v, "overridable": True} for k, (t, v) in PARAMS.items()]
    edges = [
        {"producer": "camera_node.video_out", "consumer": "code_node.video_in"},
        {"producer": "code_node.video_out", "consumer": "output_node.video_in"},
    ] + [{"producer": k, "consumer": f"code_node.{k}"} for k in PARAMS]
    graph = {"nodeGraph": {
        "envelopeVersion": "2021-01-01",
        "packages": [{"name": "123456789012::TEST_CODE", "version": "1.0"},
                     {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
                     {"name": "panorama::hdmi_data_sink", "version": "1.0"}],
        "nodes": nodes, "edges": edges}}
    (graph_dir / "graph.json").write_text(json.dumps(graph, indent=2))
    package = {"nodePackage": {
        "envelopeVersion": "2021-01-01", "name": "TEST_CODE", "version": "1.0", "assets": [],
        "interfaces": [{
            "name": "interface", "category": "business_logic", "asset": "code_asset",
            "inputs": [{"name": "video_in", "type": "media"}] + [{"name": k, "type": t} for k, (t, _) in PARAMS.items()],
            "outputs": [{"name": "video_out", "type": "media"}],
        }]}}
    code_dir = pkg / "src" if dockerfile == "src" else pkg
    code_dir.mkdir(parents=True, exist_ok=True)
    (pkg / "package.json").write_text(json.dumps(package, indent=2))
    (pkg / "descriptor.json").write_text(json.dumps(
        {"runtimeDescriptor": {"envelopeVersion": "2021-01-01", "entry": {"path": "python3", "name": "/panorama/app.py"}}}
    ))
    (pkg / "Dockerfile").write_text(
        "FROM public.ecr.aws/panorama/panorama-application\n"
        + ("COPY src /panorama\n" if dockerfile == "src" else "WORKDIR /panorama\nCOPY . .\n")
        + "RUN pip3 install numpy\n"
    )
    body = code if code is not None else STYLES[style]
    (code_dir / "app.py").write_text("import panoramasdk\n" + textwrap.dedent(body))
    (code_dir / "data.txt").write_text("payload from /panorama\n")
    return root
