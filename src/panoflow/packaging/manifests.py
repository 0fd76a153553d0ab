"""What the packaging commands write into manifests: the templates of ``init-project``/``create-package`` and
the edits of ``package.json`` (assets, interfaces) and ``graph.json`` (packages, nodes) they share.

Edits work on the JSON documents themselves (not on :mod:`panoflow.core.manifest` models), so keys panoflow
does not model survive; each edited ``package.json`` is checked with panoflow's validator before it is
written, and an edit that would add an error is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from panoflow.core.manifest import check_package, parse_package
from panoflow.exceptions import ManifestError, Problem
from panoflow.packaging.project import PackageFolder, PackagingError, Project, dump_json

__all__ = [
    "ENVELOPE",
    "PANORAMA_BASE_IMAGE",
    "AssetChange",
    "add_to_graph",
    "camera_package",
    "checked_package",
    "code_descriptor",
    "container_package",
    "dockerfile",
    "graph_add_node",
    "graph_add_package",
    "model_descriptor",
    "model_package",
    "set_asset",
    "starter_app",
    "starting_graph",
]

ENVELOPE = "2021-01-01"
PANORAMA_BASE_IMAGE = "public.ecr.aws/panorama/panorama-application"
_MEDIA_IN = [{"name": "video_in", "type": "media"}]
_MEDIA_OUT = [{"name": "video_out", "type": "media"}]


def starting_graph() -> dict[str, Any]:
    """A graph that validates: the HDMI output node, to which the code node's ``video_out`` will connect."""
    return {"nodeGraph": {
        "envelopeVersion": ENVELOPE,
        "packages": [{"name": "panorama::hdmi_data_sink", "version": "1.0"}],
        "nodes": [{"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0",
                   "overridable": False, "launch": "onAppStart"}],
        "edges": [],
    }}


def _package(name: str, version: str, description: str, assets: list[Any], interface: dict[str, Any]) -> Any:
    return {"nodePackage": {"envelopeVersion": ENVELOPE, "name": name, "version": version,
                            "description": description, "assets": assets, "interfaces": [interface]}}


def container_package(name: str, version: str) -> dict[str, Any]:
    """A code package: one ``business_logic`` interface whose asset ``build-container`` will build."""
    return _package(name, version, f"Code package {name}", [], {
        "name": "interface", "category": "business_logic", "asset": "code_asset",
        "inputs": copy.deepcopy(_MEDIA_IN), "outputs": copy.deepcopy(_MEDIA_OUT)})


def model_package(name: str, version: str) -> dict[str, Any]:
    """A model package: one ``ml_model`` interface whose asset ``add-raw-model`` will add."""
    return _package(name, version, f"Model package {name}", [], {
        "name": "interface", "category": "ml_model", "asset": "model_asset",
        "inputs": copy.deepcopy(_MEDIA_IN), "outputs": copy.deepcopy(_MEDIA_OUT)})


def camera_package(name: str, version: str) -> dict[str, Any]:
    """An RTSP camera package (as panorama-cli's template): its stream comes from the input defaults, or from
    ``panoflow run --camera NODE=URI``."""
    return _package(name, version, "RTSP/ONVIF camera data source node package",
                    [{"name": "rtsp_camera", "implementations": [
                        {"type": "system", "assetUri": "source/video/camera/rtsp/source_rtsp"}]}],
                    {"name": "rtsp_interface", "category": "media_source", "asset": "rtsp_camera",
                     "inputs": [
                         {"name": "username", "type": "string", "default": "",
                          "description": "Camera username"},
                         {"name": "password", "type": "string", "default": "",
                          "description": "Camera password. Use empty string if there's no password"},
                         {"name": "streamUrl", "type": "string", "default": "",
                          "description": "Camera streamUrl, e.g. rtsp://192.168.0.10:554/stream1"}],
                     "outputs": [{"name": "video_out", "type": "media",
                                  "description": "Video stream output"}]})


def code_descriptor() -> dict[str, Any]:
    entry = {"path": "python3", "name": "/panorama/app.py"}
    return {"runtimeDescriptor": {"envelopeVersion": ENVELOPE, "entry": entry}}


def model_descriptor() -> dict[str, Any]:
    return {"mlModelDescriptor": {"envelopeVersion": ENVELOPE, "framework": "ONNX",
                                  "inputs": [{"name": "data", "shape": [1, 3, 224, 224]}]}}


def dockerfile() -> str:
    return (
        "# panoflow build-container reads FROM, COPY/ADD, WORKDIR, ENV and RUN pip install; it needs no "
        "Docker.\n# Pin the base image (e.g. :1.2.0-py3.8) for the AWS Panorama appliance if you deploy "
        f"there too.\nFROM {PANORAMA_BASE_IMAGE}\nCOPY src /panorama\n# RUN pip3 install -r "
        "/panorama/requirements.txt\n"
    )


def starter_app() -> str:
    return '''"""Starter Panorama application: passes every camera frame to the output, with a label."""

import panoramasdk


class Application(panoramasdk.node):
    def process_streams(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            stream.add_label("panoflow", 0.05, 0.05)
        self.outputs.video_out.put(streams)


def main():
    app = Application()
    while True:
        app.process_streams()


main()
'''


def graph_add_package(graph: dict[str, Any], account: str, name: str, version: str) -> bool:
    """List ``account::name`` (version) in the graph's packages; False when it already was."""
    refs = graph["nodeGraph"].setdefault("packages", [])
    qualified = f"{account}::{name}"
    for ref in refs:
        if isinstance(ref, dict) and ref.get("name") == qualified:
            if ref.get("version") != version:
                raise PackagingError(f"the graph already lists {qualified} at version {ref.get('version')}; "
                                     f"one version of a package per application")
            return False
    refs.append({"name": qualified, "version": version})
    return True


def graph_add_node(graph: dict[str, Any], name: str, interface: str, **extra: Any) -> bool:
    """Add node ``name`` with ``interface``; False when a node of that name already has it. A node of that
    name with another interface is an error."""
    nodes = graph["nodeGraph"].setdefault("nodes", [])
    for node in nodes:
        if isinstance(node, dict) and node.get("name") == name:
            if node.get("interface") == interface:
                return False
            raise PackagingError(f"the graph already has a node {name!r} (interface "
                                 f"{node.get('interface')}); choose another node name")
    nodes.append({"name": name, "interface": interface, **extra})
    return True


@dataclass
class AssetChange:
    """What :func:`set_asset` did: the ``assets/`` files the replaced asset used, and the interface it added
    (``""`` when an existing interface now uses the asset)."""

    superseded: list[str] = field(default_factory=list)
    new_interface: str = ""
    interface: str = ""


def set_asset(doc: dict[str, Any], asset_name: str, implementation: dict[str, Any],
              category: str) -> AssetChange:
    """Put asset ``asset_name`` with one ``implementation`` into the package document ``doc`` (replacing an
    asset of that name, keeping its ``requirements``) and make an interface of ``category`` use it: the one
    that already names it, else those of that category whose asset the package does not define, else a new
    ``<asset>_interface`` with ``video_in``/``video_out``."""
    body = doc.get("nodePackage")
    if not isinstance(body, dict):
        raise PackagingError("package.json has no nodePackage object")
    assets = body.get("assets")
    if not isinstance(assets, list):
        assets = body["assets"] = []
    change = AssetChange()
    impl = dict(implementation)
    new_asset = {"name": asset_name, "implementations": [impl]}
    for i, asset in enumerate(assets):
        if isinstance(asset, dict) and asset.get("name") == asset_name:
            for old in asset.get("implementations", []):
                if not isinstance(old, dict):
                    continue
                change.superseded += [old[k] for k in ("assetUri",
                                                       "descriptorUri") if isinstance(old.get(k), str)]
                if old.get("requirements") and "requirements" not in impl:
                    impl["requirements"] = old["requirements"]
            assets[i] = new_asset
            break
    else:
        assets.append(new_asset)
    change.superseded = [u for u in change.superseded if u not in (impl.get("assetUri"),
                                                                   impl.get("descriptorUri"))]
    interfaces = body.get("interfaces")
    if not isinstance(interfaces, list):
        interfaces = body["interfaces"] = []
    usable = [i for i in interfaces if isinstance(i, dict)]
    named = [i for i in usable if i.get("asset") == asset_name]
    if named:
        change.interface = str(named[0].get("name", ""))
        return change
    defined = {a.get("name") for a in assets if isinstance(a, dict)}
    loose = [i for i in usable if i.get("category") == category and i.get("asset") not in defined]
    for iface in loose:
        iface["asset"] = asset_name
    if loose:
        change.interface = str(loose[0].get("name", ""))
        return change
    taken = {i.get("name") for i in usable}
    name = f"{asset_name}_interface"
    n = 2
    while name in taken:
        name, n = f"{asset_name}_interface{n}", n + 1
    interfaces.append({"name": name, "category": category, "asset": asset_name,
                       "inputs": copy.deepcopy(_MEDIA_IN), "outputs": copy.deepcopy(_MEDIA_OUT)})
    change.new_interface = change.interface = name
    return change


def _problems(doc: Any, file: str) -> list[Problem]:
    parsed = parse_package(dump_json(doc), file)
    problems = list(parsed.problems)
    if parsed.model is not None:
        problems += check_package(parsed.model, file)
    return [p for p in problems if p.severity == "error"]


def checked_package(before: Any, after: Any, file: str) -> bytes:
    """The bytes to write for the edited package document ``after``: refused (ManifestError) when the edit
    adds an error that ``before`` did not have."""
    old = {(p.pointer, p.message) for p in _problems(before, file)}
    added = [p for p in _problems(after, file) if (p.pointer, p.message) not in old]
    if added:
        raise ManifestError(added)
    return dump_json(after)


def add_to_graph(project: Project, folder: PackageFolder, interface: str = "", node_name: str = "",
                 **node: Any) -> str:
    """List the package in the project's graph and, when ``interface`` is given, add a node for it named
    ``node_name`` (or ``node_name2``... when taken by another interface). Returns the node's name ("" when
    none was added); does nothing when the project has no single graph."""
    try:
        path = project.graph_file()
    except PackagingError:
        return ""
    graph = project.read_json(path)
    changed = graph_add_package(graph, folder.account, folder.name, folder.version)
    added = ""
    if interface:
        qualified = f"{folder.qualified}.{interface}"
        existing = [n for n in graph["nodeGraph"].get("nodes", []) if isinstance(n, dict)]
        if not any(n.get("interface") == qualified for n in existing):
            taken = {n.get("name") for n in existing}
            name, k = node_name, 2
            while name in taken:
                name, k = f"{node_name}{k}", k + 1
            graph_add_node(graph, name, qualified, **node)
            added = name
    if changed or added:
        project.write_json(path, graph)
    return added
