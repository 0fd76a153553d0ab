"""Semantic checks: what Panorama's JSON schemas cannot say. Every problem names its file and JSON pointer.

* names are unique (nodes, listed packages, a package's interfaces, ports and assets);
* every node's package is listed and found (locally or built in), and declares the node's interface;
* every edge joins existing nodes through declared ports of equal types (a parameter node produces its type);
* parameter values fit their type (:mod:`panoflow.core.params`);
* overrides (:mod:`.overrides`) and network routing rules (:mod:`.routing`).

A package that is listed but not found is an error naming the nodes that need it and the folder looked for,
except a camera created in the Panorama console (an override node standing in for a ``media_source`` node):
that is a warning, the camera is bound at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from panoflow.core.manifest.context import GRAPH_ROOT, Context, NodeAt, listing
from panoflow.core.manifest.models import GraphNode, GraphOverrides, LoadedPackage, NodeGraph, PackageConfig
from panoflow.core.manifest.overrides import check_overrides, replacements
from panoflow.core.manifest.routing import check_routing
from panoflow.core.params import BUILTIN_PARAMETER_TYPES
from panoflow.exceptions import Problem

__all__ = ["check_package", "check_semantics"]


def _unique(names: Iterable[tuple[str, str]], file: str, what: str) -> list[Problem]:
    """``names`` are (name, pointer of its ``name`` key); every repeat is an error at the repeat."""
    seen: dict[str, str] = {}
    problems = []
    for name, pointer in names:
        if name in seen:
            problems.append(Problem(file, pointer, f"{what} {name!r} is used twice (first at {seen[name]})",
                                    f"give each {what} its own name"))
        else:
            seen[name] = pointer
    return problems


def check_package(config: PackageConfig, file: str) -> list[Problem]:
    """Checks inside one package.json: unique names, interfaces naming existing assets, port defaults."""
    root = "/nodePackage"
    problems = _unique(((a.name, f"{root}/assets/{i}/name") for i, a in enumerate(config.assets)), file,
                       "asset")
    problems += _unique(((f.name, f"{root}/interfaces/{i}/name") for i, f in enumerate(config.interfaces)),
                        file, "interface")
    assets = [a.name for a in config.assets]
    for i, iface in enumerate(config.interfaces):
        at = f"{root}/interfaces/{i}"
        for side, ports in (("inputs", iface.inputs), ("outputs", iface.outputs)):
            problems += _unique(((p.name, f"{at}/{side}/{k}/name") for k, p in enumerate(ports)), file,
                                "port")
            for k, port in enumerate(ports):
                ptype = BUILTIN_PARAMETER_TYPES.get(port.type)
                message = ptype.check(port.default) if ptype and port.default is not None else ""
                if message:
                    problems.append(Problem(file, f"{at}/{side}/{k}/default", message,
                                            f"give a {port.type} value"))
        problems += _unique(((str(p.port), f"{at}/network/inboundPorts/{k}/port")
                             for k, p in enumerate(iface.inbound_ports)), file, "inbound port")
        if assets and iface.asset and iface.asset not in assets:
            problems.append(Problem(file, f"{at}/asset", f"interface {iface.name!r} names asset "
                                    f"{iface.asset!r}, which the package does not "
                                    "define", f"assets here: {listing(assets)}"))
    return problems


def _check_names(ctx: Context) -> None:
    g = ctx.graph
    ctx.problems += _unique(((n.name, f"{GRAPH_ROOT}/nodes/{i}/name") for i, n in enumerate(g.nodes)),
                            ctx.graph_file, "node name")
    ctx.problems += _unique(((r.qualified, f"{GRAPH_ROOT}/packages/{i}/name") for i,
                             r in enumerate(g.packages)),
                            ctx.graph_file, "package")
    if ctx.overrides is None:
        return
    o = ctx.overrides
    ctx.problems += _unique(((n.name, f"/nodeGraphOverrides/nodes/{i}/name") for i, n in enumerate(o.nodes)),
                            ctx.overrides_file, "node name")
    ctx.problems += _unique(((r.qualified, f"/nodeGraphOverrides/packages/{i}/name")
                             for i, r in enumerate(o.packages)), ctx.overrides_file, "package")
    for at in ctx.override_nodes.values():
        if at.node.name in ctx.graph_nodes:
            ctx.error(at.file, f"{at.pointer}/name", f"override node {at.node.name!r} has the name of a "
                                                     "graph node",
                      "give override nodes new names and replace graph nodes with nodeOverrides")
    for name, listed in ctx.override_listed.items():
        other = ctx.graph_listed.get(name)
        if other is not None and other.ref.version != listed.ref.version:
            ctx.error(listed.file, f"{listed.pointer}/version", f"package {name} is version "
                      f"{listed.ref.version} here but {other.ref.version} in "
                      f"{other.file}", "use one version of each package")


def _nodes(ctx: Context) -> list[NodeAt]:
    return [*ctx.graph_nodes.values(), *ctx.override_nodes.values()]


def _check_node_packages(ctx: Context) -> dict[str, list[NodeAt]]:
    """Each interface node's package is listed and declares its interface; returns package -> nodes needing it
    for the packages that were not found."""
    missing: dict[str, list[NodeAt]] = {}
    for at in _nodes(ctx):
        node = at.node
        if node.is_parameter:
            continue
        listed = node.package in ctx.graph_listed or (at.in_overrides and node.package in ctx.override_listed)
        if not listed:
            where = "nodeGraphOverrides.packages" if at.in_overrides else "nodeGraph.packages"
            ctx.error(at.file, f"{at.pointer}/interface", f"node {node.name!r} uses package {node.package}, "
                      f"which {where} does not list", f'add {{"name": "{node.package}", "version": ...}} to '
                                                      f'{where}')
            continue
        package = ctx.packages.get(node.package)
        if package is None:
            if node.package not in ctx.broken:
                missing.setdefault(node.package, []).append(at)
            continue
        if ctx.interface_of(node) is None:
            names = listing(i.name for i in package.config.interfaces)
            ctx.error(at.file, f"{at.pointer}/interface", f"package {node.package} has no interface "
                      f"{node.interface_name!r}", f"its interfaces: {names}")
    return missing


def _check_missing_packages(ctx: Context, missing: Mapping[str, list[NodeAt]]) -> None:
    stand_ins = replacements(ctx)  # override node -> the graph node it replaces
    for name, listed in {**ctx.override_listed, **ctx.graph_listed}.items():
        if name in ctx.packages or name in ctx.broken:
            continue
        folder = f"packages/{listed.ref.folder_name}/"
        needers = missing.get(name, [])
        node_names = listing(repr(at.node.name) for at in needers)
        if not needers:
            ctx.warn(listed.file, listed.pointer, f"package {name} {listed.ref.version} is listed but not "
                     f"found (looked for {folder}) and no node uses "
                     "it", "remove it from packages, or add the folder")
            continue
        cameras = [
            at for at in needers if at.in_overrides and _replaces_camera(ctx, stand_ins.get(at.node.name))
        ]
        if len(cameras) == len(needers):
            binds = listing(f"--camera {at.node.name}=URI" for at in needers).replace(", ", " ")
            ctx.warn(listed.file, listed.pointer, f"camera package {name} (node {node_names}) is not in "
                     f"{folder}: it is created in the Panorama console, so panoflow binds the camera at run "
                     "time",
                     f"bind it when running: {binds}")
            continue
        ctx.error(listed.file, listed.pointer, f"package {name} {listed.ref.version}, needed by node "
                  f"{node_names}, is not in "
                  f"{folder}", f"add the package folder {folder} or fix the package name/version")


def _replaces_camera(ctx: Context, replaced: str | None) -> bool:
    at = ctx.graph_nodes.get(replaced or "")
    iface = ctx.interface_of(at.node) if at else None
    return iface is not None and iface.category == "media_source"


def _check_edges(ctx: Context) -> None:
    for i, edge in enumerate(ctx.graph.edges):
        at = f"{GRAPH_ROOT}/edges/{i}"
        types = []
        for end, output in (("producer", True), ("consumer", False)):
            name, port = ((edge.producer_node, edge.producer_port) if output
                          else (edge.consumer_node, edge.consumer_port))
            found = ctx.graph_nodes.get(name)
            if found is None:
                ctx.error(ctx.graph_file, f"{at}/{end}", f"edge {end} names node {name!r}, which the graph "
                          "does not have", "use the name of a node in nodeGraph.nodes")
                continue
            types.append(_endpoint_type(ctx, found.node, port, output, f"{at}/{end}"))
        if len(types) == 2 and types[0] and types[1] and types[0] != types[1]:
            ctx.error(ctx.graph_file, at, f"{edge.producer} gives {types[0]} but {edge.consumer} takes "
                                          f"{types[1]}",
                      "connect ports of the same type (media to media, a parameter to an input of its type)")


def _endpoint_type(ctx: Context, node: GraphNode, port: str, output: bool, pointer: str) -> str | None:
    """The type at one end of an edge, reporting a missing or wrong port; ``None`` when unknown or wrong."""
    side = "output" if output else "input"
    if node.is_parameter:
        if output and not port:
            return node.interface
        hint = f'use "{node.name}" as the producer' if output else "parameter nodes only produce values"
        ctx.error(ctx.graph_file, pointer, f"parameter node {node.name!r} has no {side} port {port!r}"
                  if port else f"parameter node {node.name!r} has no inputs", hint)
        return None
    iface = ctx.interface_of(node)
    found = ctx.port(node, port, output=output) if port else None
    if found is not None:
        return found.type
    names = listing(p.name for p in ((iface.outputs if output else iface.inputs) if iface else ()))
    if not port:
        ctx.error(ctx.graph_file, pointer,
                  f"node {node.name!r} is not a parameter node: name its {side} port",
                  f'write "{node.name}.PORT" ({side}s: {names})')
    elif iface is not None:  # else the package or interface is missing: reported elsewhere
        other = ctx.port(node, port, output=not output)
        extra = f"; {port!r} is an {'input' if output else 'output'}" if other else ""
        ctx.error(ctx.graph_file, pointer, f"interface {node.interface} has no {side} port {port!r}{extra}",
                  f"{side}s: {names}")
    return None


def _check_values(ctx: Context) -> None:
    for at in _nodes(ctx):
        node = at.node
        ptype = BUILTIN_PARAMETER_TYPES.get(node.interface)
        if ptype is None or node.value is None:
            continue
        message = ptype.check(node.value)
        if message:
            where = "/".join(at.pointer.split("/")[-2:])  # nodes/5
            ctx.error(at.file, f"{at.pointer}/value", f"node {node.name!r} ({where}) value: {message}",
                      f"give a {node.interface} value")


def check_semantics(
    graph: NodeGraph,
    packages: Mapping[str, LoadedPackage],
    *,
    graph_file: str = "graph.json",
    overrides: GraphOverrides | None = None,
    overrides_file: str = "override.json",
    broken: Iterable[str] = (),
) -> list[Problem]:
    """Every semantic problem of ``graph`` (and ``overrides``) given the ``packages`` found, keyed by
    ``account::NAME``. ``broken`` names packages whose folder exists but did not load (already reported)."""
    ctx = Context(graph, graph_file, packages, overrides, overrides_file, frozenset(broken))
    _check_names(ctx)
    missing = _check_node_packages(ctx)
    _check_missing_packages(ctx, missing)
    _check_edges(ctx)
    _check_values(ctx)
    check_overrides(ctx)
    check_routing(ctx)
    return list(dict.fromkeys(ctx.problems))
