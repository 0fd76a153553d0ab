"""Bytes in, frozen models out: strict JSON, Panorama's schema, then conversion to :mod:`.models`.

Each ``parse_*`` function takes the raw bytes of one document and the name to report it under, and never
raises: it returns a :class:`Parsed` holding the model (``None`` when the document has errors) and every
problem found. Conversion only runs on schema-valid documents, so it can rely on their shape. Results are
memoised on the exact bytes, which makes re-validating an unchanged application cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from panoflow.core.manifest.jsonio import loads_strict
from panoflow.core.manifest.models import (
    Asset,
    AssetImplementation,
    Decorator,
    Descriptor,
    Edge,
    GraphNode,
    GraphOverrides,
    InboundPort,
    Interface,
    ModelDescriptor,
    NodeGraph,
    NodeOverride,
    PackageConfig,
    PackageRef,
    Port,
    RoutingRule,
    RuntimeDescriptor,
    TensorSpec,
)
from panoflow.core.manifest.schema import DocumentKind, schema_problems
from panoflow.exceptions import ManifestError, Problem

__all__ = ["Parsed", "parse_descriptor", "parse_graph", "parse_overrides", "parse_package"]

T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """The outcome of parsing one document: ``model`` is ``None`` exactly when ``problems`` holds an error."""

    model: T | None
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    def unwrap(self) -> T:
        """The model, or :class:`ManifestError` with every problem when there is none."""
        if self.model is None:
            raise ManifestError(self.problems)
        return self.model


def _freeze(value: Any) -> Any:
    """Read-only deep copy of free-form JSON (asset requirements): objects -> mappingproxy, arrays ->
    tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _decorator(raw: Mapping[str, Any] | None) -> Decorator | None:
    if raw is None:
        return None
    return Decorator(title=raw.get("title", ""), description=raw.get("description", ""))


def _package_ref(raw: Mapping[str, Any]) -> PackageRef:
    account, _, name = raw["name"].partition("::")
    return PackageRef(account=account, name=name, version=raw["version"])


def _node(raw: Mapping[str, Any]) -> GraphNode:
    return GraphNode(
        name=raw["name"],
        interface=raw["interface"],
        value=raw.get("value"),
        overridable=raw.get("overridable", False),
        override_mandatory=raw.get("overrideMandatory", False),
        launch=raw.get("launch", "onAppStart"),
        decorator=_decorator(raw.get("decorator")),
    )


def _routing_rule(raw: Mapping[str, Any]) -> RoutingRule:
    # hostPort is optional in the schema; 0 stands for "not given" (the routing check reports it)
    return RoutingRule(
        node=raw["node"],
        container_port=raw["containerPort"],
        host_port=raw.get("hostPort", 0),
        decorator=_decorator(raw.get("decorator")),
    )


def _graph(raw: Mapping[str, Any]) -> NodeGraph:
    return NodeGraph(
        envelope_version=raw["envelopeVersion"],
        packages=tuple(_package_ref(p) for p in raw["packages"]),
        nodes=tuple(_node(n) for n in raw["nodes"]),
        edges=tuple(Edge(producer=e["producer"], consumer=e["consumer"]) for e in raw.get("edges", ())),
        routing_rules=tuple(_routing_rule(r) for r in raw.get("networkRoutingRules", ())),
    )


def _overrides(raw: Mapping[str, Any]) -> GraphOverrides:
    return GraphOverrides(
        envelope_version=raw["envelopeVersion"],
        packages=tuple(_package_ref(p) for p in raw.get("packages", ())),
        nodes=tuple(_node(n) for n in raw.get("nodes", ())),
        node_overrides=tuple(
            NodeOverride(replace=o["replace"], with_=tuple(w["name"] for w in o["with"]))
            for o in raw.get("nodeOverrides", ())
        ),
        routing_rules=tuple(_routing_rule(r) for r in raw.get("networkRoutingRules", ())),
    )


def _port(raw: Mapping[str, Any]) -> Port:
    return Port(name=raw["name"], type=raw["type"], description=raw.get("description", ""),
                default=raw.get("default"))


def _interface(raw: Mapping[str, Any]) -> Interface:
    return Interface(
        name=raw["name"],
        category=raw["category"],
        asset=raw.get("asset", ""),
        inputs=tuple(_port(p) for p in raw.get("inputs", ())),
        outputs=tuple(_port(p) for p in raw.get("outputs", ())),
        inbound_ports=tuple(
            InboundPort(port=p["port"], description=p.get("description", ""))
            for p in raw.get("network", {}).get("inboundPorts", ())
        ),
    )


def _package(raw: Mapping[str, Any]) -> PackageConfig:
    return PackageConfig(
        envelope_version=raw["envelopeVersion"],
        name=raw.get("name", ""),
        version=raw.get("version", ""),
        description=raw.get("description", ""),
        assets=tuple(
            Asset(
                name=a["name"],
                implementations=tuple(
                    AssetImplementation(
                        type=i["type"],
                        asset_uri=i["assetUri"],
                        descriptor_uri=i.get("descriptorUri", ""),
                        requirements=tuple(_freeze(r) for r in i.get("requirements", ())),
                    )
                    for i in a.get("implementations", ())
                ),
            )
            for a in raw.get("assets", ())
        ),
        interfaces=tuple(_interface(i) for i in raw["interfaces"]),
    )


def _descriptor(doc: Mapping[str, Any]) -> Descriptor:
    if "mlModelDescriptor" in doc:
        raw = doc["mlModelDescriptor"]
        return ModelDescriptor(
            envelope_version=raw["envelopeVersion"],
            framework=raw["framework"],
            inputs=tuple(
                TensorSpec(name=t["name"], shape=tuple(t["shape"]),
                           type=t.get("type", "")) for t in raw["inputs"]
            ),
            framework_version=raw.get("frameworkVersion", ""),
            precision_mode=raw.get("precisionMode", "FP32"),
        )
    raw = doc["runtimeDescriptor"]
    entry = raw.get("entry", {})
    return RuntimeDescriptor(
        envelope_version=raw["envelopeVersion"],
        entry_path=entry.get("path", ""),
        entry_name=entry.get("name", ""),
        arguments=tuple(entry.get("arguments", ())),
        environment=tuple((e["name"], e["value"]) for e in entry.get("environment", ())),
    )


#: kind -> (the keys one of which the document must hold, converter of the whole document)
_KINDS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Any]]] = {
    "graph": (("nodeGraph",), lambda d: _graph(d["nodeGraph"])),
    "overrides": (("nodeGraphOverrides",), lambda d: _overrides(d["nodeGraphOverrides"])),
    "package": (("nodePackage",), lambda d: _package(d["nodePackage"])),
    "descriptor": (("mlModelDescriptor", "runtimeDescriptor"), _descriptor),
}


def _envelope(doc: Any, kind: str, file: str) -> list[Problem]:
    """The schemas accept ``{}`` (no top-level key is required) and both descriptor kinds at once."""
    keys, _ = _KINDS[kind]
    present = [k for k in keys if k in doc]
    if len(present) == 1:
        return []
    wanted = " or ".join(repr(k) for k in keys)
    if not present:
        return [Problem(file, "", f"missing the top-level key {wanted}", f"is this a {kind} file?")]
    return [Problem(file, "", f"holds both {wanted}", "a descriptor describes either a model or code, not "
                                                      "both")]


#: documents up to this size are memoised (manifests are a few kB; a cache of huge inputs would only eat
#: memory)
_CACHE_LIMIT = 64 * 1024


def _parse(kind: DocumentKind, data: bytes, file: str) -> Parsed[Any]:
    if len(data) <= _CACHE_LIMIT:
        return _parse_cached(kind, data, file)
    return _parse_uncached(kind, data, file)


def _parse_uncached(kind: DocumentKind, data: bytes, file: str) -> Parsed[Any]:
    try:
        doc = loads_strict(data, file)
    except ManifestError as exc:
        return Parsed(None, exc.problems)
    doc, problems = schema_problems(doc, kind, file)
    if not any(p.severity == "error" for p in problems):
        problems += _envelope(doc, kind, file)
    if any(p.severity == "error" for p in problems):
        return Parsed(None, tuple(sorted(problems)))
    if kind == "overrides" and doc["nodeGraphOverrides"].get("edges"):
        problems.append(Problem(file, "/nodeGraphOverrides/edges", "edges in overrides are not applied by "
                                                                   "panoflow",
                                "overrides replace nodes; keep the edges in graph.json", "warning"))
    return Parsed(_KINDS[kind][1](doc), tuple(sorted(problems)))


_parse_cached = lru_cache(maxsize=256)(_parse_uncached)


def parse_graph(data: bytes, file: str = "graph.json") -> Parsed[NodeGraph]:
    """Parse an application manifest (``{"nodeGraph": ...}``)."""
    return _parse("graph", bytes(data), file)


def parse_overrides(data: bytes, file: str = "override.json") -> Parsed[GraphOverrides]:
    """Parse deploy-time overrides (``{"nodeGraphOverrides": ...}``)."""
    return _parse("overrides", bytes(data), file)


def parse_package(data: bytes, file: str = "package.json") -> Parsed[PackageConfig]:
    """Parse a package configuration (``{"nodePackage": ...}``)."""
    return _parse("package", bytes(data), file)


def parse_descriptor(data: bytes, file: str = "descriptor.json") -> Parsed[Descriptor]:
    """Parse an asset descriptor (``{"mlModelDescriptor": ...}`` or ``{"runtimeDescriptor": ...}``)."""
    return _parse("descriptor", bytes(data), file)
