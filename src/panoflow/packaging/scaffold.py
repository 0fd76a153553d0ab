"""``init-project``, ``create-package`` and ``add-panorama-package``: new projects and packages from
templates.

Unlike panorama-cli, every step leaves a project that ``panoflow validate`` accepts (once the descriptors that
need the user's values are filled in): the starting graph has the HDMI output, and each package gets one
interface from the start, which ``build-container``/``add-raw-model`` point at the asset they add.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from panoflow.packaging import manifests as m
from panoflow.packaging.project import (
    PackageFolder,
    PackagingError,
    Project,
    check_name,
    dump_json,
    write_bytes_atomic,
)

__all__ = ["PACKAGE_TYPES", "Created", "add_panorama_package", "create_package", "init_project"]

PACKAGE_TYPES = ("Container", "Model", "Camera")


@dataclass
class Created:
    path: Path
    files: list[str]
    node: str = ""


def init_project(directory: Path, name: str) -> Created:
    """A new project in ``directory`` (which must not exist or be empty): ``assets/``, ``packages/`` and
    ``graphs/<name>/graph.json``."""
    check_name("project", name, "--name")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise PackagingError(f"{directory} already exists and is not empty; choose another --name or "
                             "--project-dir")
    for sub in ("assets", "packages", f"graphs/{name}"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    graph = directory / "graphs" / name / "graph.json"
    write_bytes_atomic(graph, dump_json(m.starting_graph()))
    return Created(directory, ["assets/", "packages/", f"graphs/{name}/graph.json"])


def create_package(project: Project, kind: str, name: str, version: str, account: str,
                   node_name: str = "") -> Created:
    """``packages/<account>-<name>-<version>/`` with package.json (and for a Container: descriptor.json,
    Dockerfile, src/app.py; a Model: descriptor.json), listed in the graph with a node for its interface."""
    kinds = {k.lower(): k for k in PACKAGE_TYPES}
    if kind.lower() not in kinds:
        raise PackagingError(f"--type {kind!r}: choose {', '.join(PACKAGE_TYPES)}")
    kind = kinds[kind.lower()]
    check_name("package", name, "--name")
    check_name("version", version, "--version")
    check_name("account", account, "--account")
    path = project.root / "packages" / f"{account}-{name}-{version}"
    clash = [f for f in project.package_folders() if f.name == name and f.path != path]
    if path.exists():
        raise PackagingError(f"package {project.display(path)} already exists")
    if clash:
        raise PackagingError(f"a package named {name} already exists ({project.display(clash[0].path)})")
    files = {"Container": {"package.json": dump_json(m.container_package(name, version)),
                           "descriptor.json": dump_json(m.code_descriptor()),
                           "Dockerfile": m.dockerfile().encode(),
                           "src/app.py": m.starter_app().encode()},
             "Model": {"package.json": dump_json(m.model_package(name, version)),
                       "descriptor.json": dump_json(m.model_descriptor())},
             "Camera": {"package.json": dump_json(m.camera_package(name, version))}}[kind]
    path.mkdir(parents=True)
    for rel, data in files.items():
        write_bytes_atomic(path / rel, data)
    folder = PackageFolder(path, account, name, version)
    interface = {"Container": "interface", "Model": "interface", "Camera": "rtsp_interface"}[kind]
    default_node = {"Container": "code_node", "Model": "model_node", "Camera": name}[kind]
    node = node_name or default_node
    check_name("node", node, "--node-name")
    extra = {"overridable": True, "launch": "onAppStart",
             "decorator": {"title": f"Camera {name}",
                           "description": f"Camera {name}"}} if kind == "Camera" else {}
    added = m.add_to_graph(project, folder, interface, node, **extra)
    return Created(path, [f"packages/{path.name}/{rel}" for rel in files], added)


_STOCK = {
    "camera": ("panorama::abstract_rtsp_media_source",
               "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
               {"overridable": True, "launch": "onAppStart"}),
    "data_sink": ("panorama::hdmi_data_sink", "panorama::hdmi_data_sink.hdmi0",
                  {"overridable": False, "launch": "onAppStart"}),
}


def add_panorama_package(project: Project, kind: str, node_name: str) -> Created:
    """Add a node of Panorama's stock abstract camera (``camera``) or HDMI output (``data_sink``) to the
    graph."""
    key = kind.lower().replace("-", "_")
    if key not in _STOCK:
        raise PackagingError(f"--type {kind!r}: choose camera or data_sink")
    check_name("node", node_name, "--name")
    package, interface, extra = _STOCK[key]
    path = project.graph_file()
    graph = project.read_json(path)
    refs = graph["nodeGraph"].setdefault("packages", [])
    if not any(isinstance(r, dict) and r.get("name") == package for r in refs):
        refs.append({"name": package, "version": "1.0"})
    if key == "camera":
        extra = {**extra, "decorator": {"title": f"Camera {node_name}", "description": f"Camera {node_name}"}}
    if not m.graph_add_node(graph, node_name, interface, **extra):
        raise PackagingError(f"the graph already has the node {node_name!r}")
    project.write_json(path, graph)
    return Created(path, [project.display(path)], node_name)
