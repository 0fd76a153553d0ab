"""A Panorama application's manifests: strict reading, schema and semantic validation, typed models.

Layers, each usable on its own:

* :mod:`.jsonio` - strict JSON (duplicate keys, NaN, bad UTF-8 are problems with positions);
* :mod:`.schema` - Panorama's JSON schemas, offline, with panoflow's extensions (ONNX) and known deviations;
* :mod:`.parse` - bytes -> frozen :mod:`.models` (``parse_graph``...), never raising;
* :mod:`.semantic` - cross-document rules (packages, interfaces, edges, parameters, overrides, routing);
* :mod:`.packages` / :mod:`.builtin` - packages on disk and Panorama's stock packages;
* :mod:`.loader` - a whole application folder (:func:`load_application`, :func:`validate_application`);
* :mod:`.dump` - models back to JSON (:func:`to_json`).
"""

from __future__ import annotations

from panoflow.core.manifest.builtin import builtin_package, builtin_packages
from panoflow.core.manifest.dump import to_json
from panoflow.core.manifest.loader import find_graph, load_application, validate_application
from panoflow.core.manifest.models import (
    PARAMETER_TYPES,
    Application,
    Asset,
    AssetImplementation,
    Decorator,
    Descriptor,
    Edge,
    GraphNode,
    GraphOverrides,
    InboundPort,
    Interface,
    LoadedPackage,
    ModelDescriptor,
    NodeGraph,
    NodeOverride,
    PackageConfig,
    PackageRef,
    ParamValue,
    Port,
    RoutingRule,
    RuntimeDescriptor,
    TensorSpec,
)
from panoflow.core.manifest.packages import load_package
from panoflow.core.manifest.parse import Parsed, parse_descriptor, parse_graph, parse_overrides, parse_package
from panoflow.core.manifest.semantic import check_package, check_semantics

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
    "Parsed",
    "Port",
    "RoutingRule",
    "RuntimeDescriptor",
    "TensorSpec",
    "builtin_package",
    "builtin_packages",
    "check_package",
    "check_semantics",
    "find_graph",
    "load_application",
    "load_package",
    "parse_descriptor",
    "parse_graph",
    "parse_overrides",
    "parse_package",
    "to_json",
    "validate_application",
]
