"""Models back to JSON documents: ``to_json(model)`` for a graph, overrides, package or descriptor.

The output validates against Panorama's schemas and parses back to an equal model (load -> dump -> load is the
identity on models). Optional keys are written only when they differ from the schema's default, and keys the
models do not keep (``description`` of a graph, ``maxConnections``, ``patchVersion``, descriptor
``events``...) are not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch
from typing import Any

from panoflow.core.manifest.models import (
    Decorator,
    GraphNode,
    GraphOverrides,
    Interface,
    ModelDescriptor,
    NodeGraph,
    PackageConfig,
    PackageRef,
    Port,
    RoutingRule,
    RuntimeDescriptor,
)

__all__ = ["to_json"]


def _thaw(value: Any) -> Any:
    """Plain JSON values from frozen ones (mappingproxy -> dict, tuple -> list)."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _decorator(dec: Decorator) -> dict[str, str]:
    out = {}
    if dec.title:
        out["title"] = dec.title
    if dec.description:
        out["description"] = dec.description
    return out


def _ref(ref: PackageRef) -> dict[str, str]:
    return {"name": ref.qualified, "version": ref.version}


def _node(node: GraphNode) -> dict[str, Any]:
    out: dict[str, Any] = {"name": node.name, "interface": node.interface}
    if node.value is not None:
        out["value"] = node.value
    if node.overridable:
        out["overridable"] = True
    if node.override_mandatory:
        out["overrideMandatory"] = True
    if not node.is_parameter and node.launch != "onAppStart":
        out["launch"] = node.launch
    if node.decorator is not None:
        out["decorator"] = _decorator(node.decorator)
    return out


def _rule(rule: RoutingRule) -> dict[str, Any]:
    out: dict[str, Any] = {"node": rule.node, "containerPort": rule.container_port}
    if rule.host_port:
        out["hostPort"] = rule.host_port
    if rule.decorator is not None:
        out["decorator"] = _decorator(rule.decorator)
    return out


def _port(port: Port) -> dict[str, Any]:
    out: dict[str, Any] = {"name": port.name, "type": port.type}
    if port.description:
        out["description"] = port.description
    if port.default is not None:
        out["default"] = port.default
    return out


def _interface(iface: Interface) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name, "category": iface.category}
    if iface.asset:
        out["asset"] = iface.asset
    if iface.inputs:
        out["inputs"] = [_port(p) for p in iface.inputs]
    if iface.outputs:
        out["outputs"] = [_port(p) for p in iface.outputs]
    if iface.inbound_ports:
        ports = [{"port": p.port, **({"description": p.description} if p.description else {})}
                 for p in iface.inbound_ports]
        out["network"] = {"inboundPorts": ports}
    return out


@singledispatch
def to_json(model: Any) -> dict[str, Any]:
    """The JSON document (a ``dict`` ready for :func:`json.dumps`) of a :class:`NodeGraph`,
    :class:`GraphOverrides`, :class:`PackageConfig`, :class:`ModelDescriptor` or
    :class:`RuntimeDescriptor`."""
    raise TypeError(f"to_json() does not know {type(model).__name__}")


@to_json.register
def _(graph: NodeGraph) -> dict[str, Any]:
    body: dict[str, Any] = {
        "envelopeVersion": graph.envelope_version,
        "packages": [_ref(r) for r in graph.packages],
        "nodes": [_node(n) for n in graph.nodes],
        "edges": [{"producer": e.producer, "consumer": e.consumer} for e in graph.edges],
    }
    if graph.routing_rules:
        body["networkRoutingRules"] = [_rule(r) for r in graph.routing_rules]
    return {"nodeGraph": body}


@to_json.register
def _(overrides: GraphOverrides) -> dict[str, Any]:
    body: dict[str, Any] = {
        "envelopeVersion": overrides.envelope_version,
        "packages": [_ref(r) for r in overrides.packages],
        "nodes": [_node(n) for n in overrides.nodes],
        "nodeOverrides": [
            {"replace": o.replace,
             "with": [{"name": name} for name in o.with_]} for o in overrides.node_overrides
        ],
    }
    if overrides.routing_rules:
        body["networkRoutingRules"] = [_rule(r) for r in overrides.routing_rules]
    return {"nodeGraphOverrides": body}


@to_json.register
def _(package: PackageConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"envelopeVersion": package.envelope_version}
    if package.name:
        body["name"] = package.name
    if package.version:
        body["version"] = package.version
    if package.description:
        body["description"] = package.description
    body["assets"] = [
        {
            "name": asset.name,
            "implementations": [
                {
                    "type": impl.type,
                    "assetUri": impl.asset_uri,
                    **({"descriptorUri": impl.descriptor_uri} if impl.descriptor_uri else {}),
                    **({"requirements": _thaw(impl.requirements)} if impl.requirements else {}),
                }
                for impl in asset.implementations
            ],
        }
        for asset in package.assets
    ]
    body["interfaces"] = [_interface(i) for i in package.interfaces]
    return {"nodePackage": body}


@to_json.register
def _(desc: ModelDescriptor) -> dict[str, Any]:
    body: dict[str, Any] = {"envelopeVersion": desc.envelope_version, "framework": desc.framework}
    if desc.framework_version:
        body["frameworkVersion"] = desc.framework_version
    body["inputs"] = [
        {"name": t.name, "shape": list(t.shape), **({"type": t.type} if t.type else {})} for t in desc.inputs
    ]
    if desc.precision_mode != "FP32":
        body["precisionMode"] = desc.precision_mode
    return {"mlModelDescriptor": body}


@to_json.register
def _(desc: RuntimeDescriptor) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if desc.entry_path:
        entry["path"] = desc.entry_path
    if desc.entry_name:
        entry["name"] = desc.entry_name
    if desc.arguments:
        entry["arguments"] = list(desc.arguments)
    if desc.environment:
        entry["environment"] = [{"name": k, "value": v} for k, v in desc.environment]
    body: dict[str, Any] = {"envelopeVersion": desc.envelope_version}
    if entry:
        body["entry"] = entry
    return {"runtimeDescriptor": body}
