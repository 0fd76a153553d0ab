"""What the semantic checks share: the documents, where each node sits in which file, and the problem list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from panoflow.core.manifest.models import (
    GraphNode,
    GraphOverrides,
    Interface,
    LoadedPackage,
    NodeGraph,
    PackageRef,
    Port,
)
from panoflow.exceptions import Problem

__all__ = ["GRAPH_ROOT", "OVERRIDES_ROOT", "Context", "Listed", "NodeAt", "listing"]

GRAPH_ROOT = "/nodeGraph"
OVERRIDES_ROOT = "/nodeGraphOverrides"


@dataclass(frozen=True)
class NodeAt:
    """A node and where it is written: ``pointer`` is the node object's JSON pointer in ``file``."""

    node: GraphNode
    file: str
    pointer: str
    in_overrides: bool = False


@dataclass(frozen=True)
class Listed:
    """A ``packages`` entry and where it is written."""

    ref: PackageRef
    file: str
    pointer: str


@dataclass
class Context:
    """The application under check. Node and package tables keep the first of duplicate names (duplicates are
    reported by the name checks)."""

    graph: NodeGraph
    graph_file: str
    packages: Mapping[str, LoadedPackage]
    overrides: GraphOverrides | None = None
    overrides_file: str = ""
    broken: frozenset[str] = frozenset()
    problems: list[Problem] = field(default_factory=list)
    graph_nodes: dict[str, NodeAt] = field(default_factory=dict)
    override_nodes: dict[str, NodeAt] = field(default_factory=dict)
    graph_listed: dict[str, Listed] = field(default_factory=dict)
    override_listed: dict[str, Listed] = field(default_factory=dict)

    _interfaces: dict[str, dict[str, Interface]] = field(default_factory=dict, repr=False)
    _ports: dict[tuple[str, bool], dict[str, Port]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for i, node in enumerate(self.graph.nodes):
            self.graph_nodes.setdefault(node.name, NodeAt(node, self.graph_file, f"{GRAPH_ROOT}/nodes/{i}"))
        for i, ref in enumerate(self.graph.packages):
            self.graph_listed.setdefault(ref.qualified, Listed(ref, self.graph_file,
                                                               f"{GRAPH_ROOT}/packages/{i}"))
        if self.overrides is not None:
            for i, node in enumerate(self.overrides.nodes):
                self.override_nodes.setdefault(
                    node.name, NodeAt(node, self.overrides_file, f"{OVERRIDES_ROOT}/nodes/{i}", True)
                )
            for i, ref in enumerate(self.overrides.packages):
                self.override_listed.setdefault(
                    ref.qualified, Listed(ref, self.overrides_file, f"{OVERRIDES_ROOT}/packages/{i}")
                )

    def error(self, file: str, pointer: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(file, pointer, message, hint, "error"))

    def warn(self, file: str, pointer: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(file, pointer, message, hint, "warning"))

    def interface_of(self, node: GraphNode) -> Interface | None:
        """The interface an interface node names, when its package was loaded and declares it."""
        if node.is_parameter:
            return None
        if node.package not in self._interfaces:
            package = self.packages.get(node.package)
            interfaces = package.config.interfaces if package else ()
            self._interfaces[node.package] = {}
            for iface in interfaces:
                self._interfaces[node.package].setdefault(iface.name, iface)
        return self._interfaces[node.package].get(node.interface_name)

    def port(self, node: GraphNode, name: str, *, output: bool) -> Port | None:
        """``node``'s input or output port ``name``, when its interface is known and declares it."""
        iface = self.interface_of(node)
        if iface is None:
            return None
        key = (node.interface, output)
        if key not in self._ports:
            self._ports[key] = {}
            for port in iface.outputs if output else iface.inputs:
                self._ports[key].setdefault(port.name, port)
        return self._ports[key].get(name)

    def node(self, name: str, *, with_overrides: bool = False) -> NodeAt | None:
        found = self.graph_nodes.get(name)
        if found is None and with_overrides:
            found = self.override_nodes.get(name)
        return found

    def port_type(self, node: GraphNode, port: str, *, output: bool) -> str | None:
        """The type of ``node``'s port (a parameter node "outputs" its own type), or ``None`` when unknown."""
        if node.is_parameter:
            return node.interface if output and not port else None
        found = self.port(node, port, output=output)
        return found.type if found else None


def listing(names: Iterable[object], limit: int = 8) -> str:
    """``a, b, c`` for hints, cut after ``limit`` names (``none`` when empty)."""
    shown: list[str] = []
    total = 0
    for name in names:
        total += 1
        if total <= limit:
            shown.append(str(name))
    if total > limit:
        shown.append(f"... ({total - limit} more)")
    return ", ".join(shown) or "none"
