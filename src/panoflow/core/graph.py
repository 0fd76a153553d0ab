"""Graph resolution: a validated application + overrides + command-line bindings -> runtime node specs.

The result is plain data (:class:`ResolvedGraph`): which streams feed which code-node port, which parameter
values each code node reads, where each output goes, and which model nodes exist. The runtime turns it into
running objects; nothing here touches files or the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoflow.core.manifest.models import (
    Application,
    GraphNode,
    Interface,
    LoadedPackage,
    ModelDescriptor,
    ParamValue,
    RuntimeDescriptor,
)
from panoflow.core.params import BUILTIN_PARAMETER_TYPES
from panoflow.exceptions import NodeError, PanoflowError

__all__ = [
    "CameraSpec",
    "CodeNodeSpec",
    "ModelSpec",
    "ResolveError",
    "ResolvedGraph",
    "SinkSpec",
    "StreamSpec",
    "resolve",
]


class ResolveError(PanoflowError, ValueError):
    """The graph cannot run as bound (a camera without a stream, an unknown --param node...)."""


@dataclass(frozen=True)
class StreamSpec:
    """One stream of a camera node: ``uri`` may hold credentials (never log it raw)."""

    stream_id: str
    uri: str


@dataclass(frozen=True)
class CameraSpec:
    node_id: str
    streams: tuple[StreamSpec, ...]
    launch: str = "onAppStart"


@dataclass(frozen=True)
class SinkSpec:
    """A media sink node (``panorama::hdmi_data_sink``): the runtime feeds it to the ``display`` sink and any
    extra sinks of the run."""

    node_id: str
    input_port: str = "video_in"


@dataclass(frozen=True)
class ModelSpec:
    node_id: str
    package: LoadedPackage
    asset: str
    descriptor: ModelDescriptor | None
    archive: Path | None


@dataclass(frozen=True)
class CodeNodeSpec:
    """A business-logic node. ``media_inputs`` maps port -> camera node ids feeding it (camera order);
    ``parameters`` maps port -> value; ``outputs`` maps port -> sink node ids."""

    node_id: str
    package: LoadedPackage
    interface: Interface
    runtime: RuntimeDescriptor | None
    media_inputs: Mapping[str, tuple[str, ...]]
    parameters: Mapping[str, ParamValue]
    outputs: Mapping[str, tuple[str, ...]]
    inbound_ports: tuple[tuple[int, int], ...] = ()  # (containerPort, hostPort) confirmed by routing rules


@dataclass(frozen=True)
class ResolvedGraph:
    app: Application
    nodes: Mapping[str, GraphNode]
    cameras: Mapping[str, CameraSpec]
    code_nodes: Mapping[str, CodeNodeSpec]
    sinks: Mapping[str, SinkSpec]
    models: Mapping[str, ModelSpec]
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)

    def streams_of(self, camera_ids: Sequence[str]) -> tuple[StreamSpec, ...]:
        return tuple(s for c in camera_ids for s in self.cameras[c].streams)


def _apply_overrides(app: Application) -> tuple[dict[str, GraphNode], dict[str, list[str]]]:
    """Nodes after overrides, and for every replaced node the names that stand in for it."""
    nodes = {n.name: n for n in app.graph.nodes}
    replaced: dict[str, list[str]] = {}
    if app.overrides is not None:
        extra = {n.name: n for n in app.overrides.nodes}
        for rule in app.overrides.node_overrides:
            old = nodes.pop(rule.replace, None)
            replaced[rule.replace] = list(rule.with_)
            for name in rule.with_:
                new = extra[name]
                if old is not None and old.is_parameter and new.is_parameter:
                    nodes[old.name] = old.__class__(**{**old.__dict__, "value": new.value})
                    replaced[rule.replace] = [old.name]
                else:
                    nodes[name] = new
    return nodes, replaced


def _expand(endpoint_node: str, replaced: Mapping[str, list[str]]) -> list[str]:
    return replaced.get(endpoint_node, [endpoint_node])


def _camera_default_uri(app: Application, node: GraphNode) -> str:
    """A camera package may carry its stream URL as input defaults (username/password/streamUrl)."""
    iface = app.interface_for(node)
    if iface is None:
        return ""
    defaults = {p.name: getattr(p, "default", None) for p in iface.inputs}
    url = defaults.get("streamUrl") or ""
    user, password = defaults.get("username") or "", defaults.get("password") or ""
    if url and user and "://" in url and "@" not in url:
        scheme, rest = url.split("://", 1)
        auth = f"{user}:{password}" if password else user
        url = f"{scheme}://{auth}@{rest}"
    return str(url)


def _registered(camera_lookup: Callable[[str], str | None] | None, node: GraphNode) -> list[str]:
    """The registered camera a camera node names: by node name, else by package (``account::NAME``)."""
    if camera_lookup is None:
        return []
    for key in (node.name, node.package.partition("::")[2]):
        found = camera_lookup(key) if key else None
        if found:
            return [found]
    return []


def resolve(
    app: Application,
    *,
    cameras: Mapping[str, Sequence[str]] | None = None,
    params: Mapping[str, str] | None = None,
    parameter_types: Mapping[str, Any] | None = None,
    camera_lookup: Callable[[str], str | None] | None = None,
) -> ResolvedGraph:
    """Bind ``app`` for running. ``cameras`` maps camera node -> stream URIs (``--camera``), ``params`` maps
    parameter node -> command-line value (``--param``, converted with the node's type). ``camera_lookup`` maps
    a name to a registered camera's URI (or None): a camera node without ``--camera`` streams from the camera
    named like the node, else like its package (an override's ``account::NAME`` camera package), else from the
    package's own ``streamUrl`` default.

    A graph node marked ``overrideMandatory`` that the overrides (if any) do not replace must be bound here,
    the same way with or without an overrides file: a camera by ``cameras`` or ``camera_lookup`` (not its
    package's default), a parameter by ``params``."""
    cameras = dict(cameras or {})
    params = dict(params or {})
    types = parameter_types or BUILTIN_PARAMETER_TYPES
    nodes, replaced = _apply_overrides(app)
    mandatory = {n.name for n in app.graph.nodes if n.override_mandatory and n.name not in replaced}
    for name in sorted(mandatory):
        if nodes[name].is_parameter and name not in params:
            raise ResolveError(f"parameter node {name!r} is overrideMandatory: give it with --param "
                               f"{name}=VALUE or replace it in the overrides")

    # parameter values, with --param applied
    values: dict[str, ParamValue] = {}
    for name, node in nodes.items():
        if node.is_parameter:
            values[name] = node.value  # type: ignore[assignment]
    for name, text in params.items():
        given = nodes.get(name)
        if given is None or not given.is_parameter:
            known = ", ".join(sorted(values)) or "none"
            raise ResolveError(f"--param {name}=...: no parameter node {name!r} (parameter nodes: {known})")
        ptype = types[given.interface]
        try:
            value = ptype.convert(text)
        except (TypeError, ValueError) as exc:
            raise ResolveError(f"--param {name}={text!r}: not a valid {given.interface}: {exc}") from None
        problem = ptype.check(value)
        if problem:
            raise ResolveError(f"--param {name}={text!r}: {problem}")
        values[name] = value

    camera_specs: dict[str, CameraSpec] = {}
    sink_specs: dict[str, SinkSpec] = {}
    model_specs: dict[str, ModelSpec] = {}
    code_ids: list[str] = []
    for name, node in nodes.items():
        if node.is_parameter:
            continue
        pkg = app.package_for(node)
        iface = app.interface_for(node)
        category: str
        if iface is not None:
            category = iface.category
        else:  # an override's camera package is not part of the app: known only by --camera or the registry
            category = "media_source" if name in cameras or _registered(camera_lookup, node) else ""
        if category == "media_source":
            uris = list(cameras.pop(name, [])) or _registered(camera_lookup, node)
            if not uris and name not in mandatory:  # an overrideMandatory camera must be bound, not defaulted
                default = _camera_default_uri(app, node)
                uris = [default] if default else []
            if not uris and (node.launch != "onSignal" or name in mandatory):
                raise ResolveError(
                    f"camera node {name!r} has no stream: bind one with --camera {name}=URI "
                    "(a file path, file:///clip.mp4?loop=1, rtsp://..., testsrc://) or register a camera "
                    f"named {name!r} with `panoflow cameras add`"
                    + (" (the graph marks it overrideMandatory: an overrides file may replace it instead)"
                       if name in mandatory else "")
                )
            ids = [name] if len(uris) == 1 else [f"{name}_{i}" for i in range(len(uris))]
            camera_specs[name] = CameraSpec(
                name, tuple(StreamSpec(i, u) for i, u in zip(ids, uris)), node.launch
            )
        elif category == "media_sink":
            sink_specs[name] = SinkSpec(name)
        elif category == "ml_model" and pkg is not None and iface is not None:
            desc = pkg.descriptors.get(iface.asset)
            model_specs[name] = ModelSpec(
                name, pkg, iface.asset, desc if isinstance(desc, ModelDescriptor) else None,
                pkg.files.get(iface.asset),
            )
        elif category == "business_logic":
            code_ids.append(name)
        else:
            raise NodeError(f"interface {node.interface} cannot be resolved", node_id=name)
    if cameras:
        raise ResolveError(
            f"--camera names unknown camera node(s) {', '.join(sorted(cameras))}; "
            f"camera nodes: {', '.join(sorted(camera_specs)) or 'none'}"
        )

    # wire edges (expanded through overrides)
    media_in: dict[str, dict[str, list[str]]] = {c: {} for c in code_ids}
    param_in: dict[str, dict[str, ParamValue]] = {c: {} for c in code_ids}
    outputs: dict[str, dict[str, list[str]]] = {c: {} for c in code_ids}
    for edge in app.graph.edges:
        for producer in _expand(edge.producer_node, replaced):
            for consumer in _expand(edge.consumer_node, replaced):
                if consumer in media_in:
                    if producer in values:
                        param_in[consumer][edge.consumer_port] = values[producer]
                    elif producer in camera_specs:
                        media_in[consumer].setdefault(edge.consumer_port, []).append(producer)
                if producer in outputs and consumer in sink_specs:
                    outputs[producer].setdefault(edge.producer_port, []).append(consumer)

    rules = list(app.graph.routing_rules) + list(app.overrides.routing_rules if app.overrides else ())
    code_specs: dict[str, CodeNodeSpec] = {}
    for cid in code_ids:
        node = nodes[cid]
        pkg = app.package_for(node)
        iface = app.interface_for(node)
        assert pkg is not None and iface is not None  # validated by the manifest layer
        runtime = pkg.descriptors.get(iface.asset)
        confirmed = tuple(sorted({(r.container_port, r.host_port) for r in rules if r.node == cid}))
        code_specs[cid] = CodeNodeSpec(
            cid, pkg, iface, runtime if isinstance(runtime, RuntimeDescriptor) else None,
            {p: tuple(v) for p, v in media_in[cid].items()}, param_in[cid],
            {p: tuple(v) for p, v in outputs[cid].items()}, confirmed,
        )
    return ResolvedGraph(app, nodes, camera_specs, code_specs, sink_specs, model_specs, values)
