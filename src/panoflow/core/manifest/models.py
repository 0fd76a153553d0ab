"""Typed, immutable models of a Panorama application's files.

They mirror the JSON documents one to one (``graph.json``, overrides, ``package.json``, ``descriptor.json``),
with camelCase keys turned into snake_case. Parsing lives in :mod:`.parse`, checks in :mod:`.schema`,
:mod:`.semantic`, :mod:`.overrides` and :mod:`.routing`; these classes only hold data and know how to turn
themselves back into JSON (``to_json``) for round trips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PARAMETER_TYPES",
    "Application",
    "Asset",
    "AssetImplementation",
    "Decorator",
    "Descriptor",
    "Edge",
    "GraphNode",
    "GraphOverrides",
    "InboundPort",
    "Interface",
    "LoadedPackage",
    "ModelDescriptor",
    "NodeGraph",
    "NodeOverride",
    "PackageConfig",
    "PackageRef",
    "ParamValue",
    "Port",
    "RoutingRule",
    "RuntimeDescriptor",
    "TensorSpec",
]

ParamValue = bool | int | float | str
PARAMETER_TYPES: tuple[str, ...] = ("boolean", "float32", "int32", "string")
Category = Literal["media_source", "media_sink", "business_logic", "ml_model"]


@dataclass(frozen=True)
class Decorator:
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class PackageRef:
    """``{"name": "123456789012::SQUEEZENET", "version": "1.0"}`` in a graph's or overrides' ``packages``."""

    account: str
    name: str
    version: str

    @property
    def qualified(self) -> str:
        """``account::NAME``, the form graphs use."""
        return f"{self.account}::{self.name}"

    @property
    def folder_name(self) -> str:
        """``<account>-<NAME>-<version>``, the folder under ``packages/``."""
        return f"{self.account}-{self.name}-{self.version}"


@dataclass(frozen=True)
class GraphNode:
    """A node in ``nodeGraph.nodes``: either a parameter (interface is a scalar type, ``value`` set) or a node
    whose interface is ``account::PACKAGE.interface``."""

    name: str
    interface: str
    value: ParamValue | None = None
    overridable: bool = False
    override_mandatory: bool = False
    launch: Literal["onAppStart", "onSignal", "onDemand"] = "onAppStart"
    decorator: Decorator | None = None

    @property
    def is_parameter(self) -> bool:
        return self.interface in PARAMETER_TYPES

    @property
    def package(self) -> str:
        """``account::PACKAGE`` for interface nodes, ``""`` for parameters."""
        return "" if self.is_parameter else self.interface.rpartition(".")[0]

    @property
    def interface_name(self) -> str:
        """The interface's name inside its package (after the last dot)."""
        return "" if self.is_parameter else self.interface.rpartition(".")[2]


@dataclass(frozen=True)
class Edge:
    """``{"producer": "camera_node.video_out", "consumer": "code_node.video_in"}``.

    A parameter node produces under its bare name (``"threshold"``), so ``producer_port`` is then ``""``.
    """

    producer: str
    consumer: str

    @property
    def producer_node(self) -> str:
        return self.producer.split(".", 1)[0]

    @property
    def producer_port(self) -> str:
        return self.producer.split(".", 1)[1] if "." in self.producer else ""

    @property
    def consumer_node(self) -> str:
        return self.consumer.split(".", 1)[0]

    @property
    def consumer_port(self) -> str:
        return self.consumer.split(".", 1)[1] if "." in self.consumer else ""


@dataclass(frozen=True)
class RoutingRule:
    """A ``networkRoutingRules`` entry: forward device ``host_port`` to ``container_port`` of ``node``."""

    node: str
    container_port: int
    host_port: int
    decorator: Decorator | None = None


@dataclass(frozen=True)
class NodeGraph:
    """``graphs/<app>/graph.json``."""

    envelope_version: str
    packages: tuple[PackageRef, ...]
    nodes: tuple[GraphNode, ...]
    edges: tuple[Edge, ...]
    routing_rules: tuple[RoutingRule, ...] = ()

    def node(self, name: str) -> GraphNode | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class NodeOverride:
    """``{"replace": "camera_node", "with": [{"name": "CAMERA_A"}, ...]}``."""

    replace: str
    with_: tuple[str, ...]


@dataclass(frozen=True)
class GraphOverrides:
    """Deploy-time overrides (``nodeGraphOverrides``)."""

    envelope_version: str
    packages: tuple[PackageRef, ...] = ()
    nodes: tuple[GraphNode, ...] = ()
    node_overrides: tuple[NodeOverride, ...] = ()
    routing_rules: tuple[RoutingRule, ...] = ()


@dataclass(frozen=True)
class Port:
    """An interface port. ``default`` is an input port's ``default`` value (camera packages carry their
    ``username``/``password``/``streamUrl`` there), ``None`` when the manifest gives none."""

    name: str
    type: str  # "media" | "boolean" | "int32" | "float32" | "string" (or a plugin-provided type)
    description: str = ""
    default: ParamValue | None = None


@dataclass(frozen=True)
class InboundPort:
    port: int
    description: str = ""


@dataclass(frozen=True)
class Interface:
    name: str
    category: Category
    asset: str
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    inbound_ports: tuple[InboundPort, ...] = ()

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)


@dataclass(frozen=True)
class AssetImplementation:
    """One entry of an asset's ``implementations``. ``type`` is ``container``, ``model`` or ``system``."""

    type: Literal["container", "model", "system"]
    asset_uri: str
    descriptor_uri: str = ""
    requirements: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Asset:
    name: str
    implementations: tuple[AssetImplementation, ...]


@dataclass(frozen=True)
class PackageConfig:
    """``packages/<account>-<NAME>-<version>/package.json``."""

    envelope_version: str
    name: str
    version: str
    description: str = ""
    assets: tuple[Asset, ...] = ()
    interfaces: tuple[Interface, ...] = ()

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def asset(self, name: str) -> Asset | None:
        return next((a for a in self.assets if a.name == name), None)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    type: str = ""


@dataclass(frozen=True)
class ModelDescriptor:
    """``{"mlModelDescriptor": {...}}``. panoflow adds ``framework: "ONNX"`` to Panorama's three
    frameworks."""

    envelope_version: str
    framework: str
    inputs: tuple[TensorSpec, ...]
    framework_version: str = ""
    precision_mode: str = "FP32"


@dataclass(frozen=True)
class RuntimeDescriptor:
    """``{"runtimeDescriptor": {"entry": {"path": "python3", "name": "/panorama/app.py"}}}``."""

    envelope_version: str
    entry_path: str
    entry_name: str
    arguments: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()


Descriptor = ModelDescriptor | RuntimeDescriptor


@dataclass(frozen=True)
class LoadedPackage:
    """A package as found on disk (or synthesised, for the stock ``panorama::`` packages: ``builtin`` is
    True).

    ``descriptors`` maps asset name -> its descriptor; ``files`` maps asset name -> the asset file found
    locally (verified against the SHA-256 in its name), when there is one.
    """

    ref: PackageRef
    directory: Path | None
    config: PackageConfig
    descriptors: Mapping[str, Descriptor] = field(default_factory=dict)
    files: Mapping[str, Path] = field(default_factory=dict)
    builtin: bool = False


@dataclass(frozen=True)
class Application:
    """Everything :func:`panoflow.core.manifest.load_application` found and checked for one application.

    ``graph`` is the graph as written; ``overrides`` as given (applied by :mod:`panoflow.core.graph`).
    ``packages`` is keyed by ``account::NAME``. ``warnings`` holds problems that did not stop loading.
    """

    app_dir: Path
    graph_file: Path
    graph: NodeGraph
    packages: Mapping[str, LoadedPackage]
    overrides: GraphOverrides | None = None
    overrides_file: Path | None = None
    warnings: tuple[Any, ...] = ()

    def package_for(self, node: GraphNode) -> LoadedPackage | None:
        return self.packages.get(node.package)

    def interface_for(self, node: GraphNode) -> Interface | None:
        pkg = self.package_for(node)
        return pkg.config.interface(node.interface_name) if pkg else None
