"""The deploy wizard's logic, without HTTP: the form fields a graph asks for, and the overrides a filled form
makes, checked with the rules ``panoflow validate`` applies.

* :func:`read_graph` parses graph.json (``core.manifest.parse_graph``); problems come back with their JSON
  pointer.
* :func:`form_fields` gives one :class:`Field` per overridable node: a parameter node's type picks the input
  (float32 / int32 → number, boolean → checkbox, string → text), an interface node is a camera choice; the
  label is the node's ``decorator.title`` and the help its ``description``.
* :func:`build_overrides` converts each field with the parameter type's own ``convert``/``check``
  (``core.params``), builds ``nodeGraphOverrides`` and checks it with ``parse_overrides`` and
  ``check_semantics`` against the graph; each problem is reported at the field of the node it is about.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from panoflow.core.manifest import NodeGraph, builtin_packages, check_semantics, parse_graph, parse_overrides
from panoflow.core.params import BUILTIN_PARAMETER_TYPES
from panoflow.exceptions import Problem

__all__ = ["CameraChoice", "Field", "FormResult", "build_overrides", "form_fields", "read_graph"]

GRAPH_FILE = "graph.json"
OVERRIDES_FILE = "overrides (from the form)"
_SAFE = re.compile(r"[^A-Za-z0-9_]+")
_OVERRIDE_NODE = re.compile(r"^/nodeGraphOverrides/nodes/(\d+)")
_OVERRIDE_RULE = re.compile(r"^/nodeGraphOverrides/nodeOverrides/(\d+)")


@dataclass(frozen=True)
class CameraChoice:
    """A camera the control plane knows (a MEDIA_SOURCE node); a camera field submits its :attr:`key`."""

    owner: str
    package: str
    version: str
    node: str

    @property
    def key(self) -> str:
        return f"{self.owner}::{self.package}.{self.node}@{self.version}"

    @property
    def label(self) -> str:
        return self.node if self.node == self.package else f"{self.node} ({self.package} {self.version})"


@dataclass(frozen=True)
class Field:
    """One form field: the node it overrides, its input kind (``float32``, ``int32``, ``boolean``, ``string``
    or ``camera``), label, help text, default (the graph's value) and whether the graph requires an
    override."""

    node: str
    kind: str
    label: str
    help: str
    default: Any
    required: bool

    @property
    def input_id(self) -> str:
        return f"param-{self.node}"

    @property
    def name(self) -> str:
        return f"param.{self.node}"

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


@dataclass(frozen=True)
class FormResult:
    """The overrides a form makes (``None``: nothing overridden), the errors per node name (``""``: not about
    one field) and the values the form had (to show it again)."""

    overrides: dict[str, Any] | None
    errors: dict[str, list[str]]
    values: dict[str, str]


def _problem_text(p: Problem) -> str:
    return p.message + (f" ({p.hint})" if p.hint else "")


def read_graph(text: str) -> tuple[NodeGraph | None, list[str]]:
    """The graph in ``text`` or the reasons it is not one (``JSON pointer: message``)."""
    if not text.strip():
        return None, ["graph.json: choose a file or paste the application's graph.json"]
    parsed = parse_graph(text.encode("utf-8"), GRAPH_FILE)
    errors = [f"{GRAPH_FILE} at {p.pointer or '/'}: {_problem_text(p)}" for p in parsed.problems
              if p.severity == "error"]
    if parsed.model is None or errors:
        return None, errors or ["graph.json could not be read"]
    return parsed.model, []


def form_fields(graph: NodeGraph) -> list[Field]:
    """One field per overridable node, in graph order."""
    out = []
    for node in graph.nodes:
        if not node.overridable:
            continue
        kind = node.interface if node.is_parameter else "camera"
        title = node.decorator.title if node.decorator and node.decorator.title else node.name
        text = node.decorator.description if node.decorator else ""
        out.append(Field(node.name, kind, title, text, node.value, node.override_mandatory))
    return out


def _override_name(node: str, taken: set[str], suffix: str = "_override") -> str:
    base = (_SAFE.sub("_", node) or "node")[:48] + suffix
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def build_overrides(graph: NodeGraph, form: Mapping[str, str], cameras: Sequence[CameraChoice]) -> FormResult:
    """Read every field of ``form`` (``param.NODE`` → text; a checkbox sends ``true`` when ticked, ``false``
    from its hidden twin when not) and build the overrides; a value equal to the graph's default is not
    overridden."""
    fields = form_fields(graph)
    by_key = {c.key: c for c in cameras}
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    nodes: list[dict[str, Any]] = []
    packages: dict[str, dict[str, str]] = {}
    rules: list[dict[str, Any]] = []
    owner_of: dict[int, str] = {}  # index in nodes -> the graph node it stands in for
    taken = {n.name for n in graph.nodes}
    for f in fields:
        text = form.get(f.name, "")
        values[f.node] = text
        if f.kind == "camera":
            if not text:
                if f.required:
                    errors.setdefault(f.node, []).append(f"{f.label}: choose a camera (the graph needs one)")
                continue
            camera = by_key.get(text)
            if camera is None:
                errors.setdefault(f.node, []).append(f"{f.label}: no such camera; add it on the Cameras page")
                continue
            packages[f"{camera.owner}::{camera.package}"] = {"name": f"{camera.owner}::{camera.package}",
                                                               "version": camera.version}
            name = _override_name(camera.node, taken, suffix="")  # named after the camera, as on Panorama
            owner_of[len(nodes)] = f.node
            nodes.append({"name": name, "interface": f"{camera.owner}::{camera.package}.{camera.node}"})
            rules.append({"replace": f.node, "with": [{"name": name}]})
            continue
        ptype = BUILTIN_PARAMETER_TYPES.get(f.kind)
        if ptype is None:
            errors.setdefault(f.node, []).append(f"{f.label}: parameters of type {f.kind} cannot be set here")
            continue
        if f.kind == "boolean":
            text = "true" if text.lower() in ("true", "on", "1", "yes") else "false"
            values[f.node] = text
        elif text == "" and (f.kind != "string" or f.default is None):
            if f.required or f.default is None:
                errors.setdefault(f.node, []).append(f"{f.label}: enter a {f.kind} value")
            continue
        try:
            value = ptype.convert(text)
        except ValueError as exc:
            errors.setdefault(f.node, []).append(f"{f.label}: {exc}")
            continue
        message = ptype.check(value)
        if message:
            errors.setdefault(f.node, []).append(f"{f.label}: {message}")
            continue
        if value == f.default and type(value) is type(f.default) and not f.required:
            continue
        name = _override_name(f.node, taken)
        owner_of[len(nodes)] = f.node
        nodes.append({"name": name, "interface": f.kind, "value": value})
        rules.append({"replace": f.node, "with": [{"name": name}]})
    if not nodes:
        return FormResult(None, errors, values)
    doc = {"nodeGraphOverrides": {"envelopeVersion": "2021-01-01", "packages": list(packages.values()),
                                  "nodes": nodes, "nodeOverrides": rules}}
    _check(graph, doc, owner_of, [r["replace"] for r in rules], errors)
    return FormResult(doc, errors, values)


def _check(graph: NodeGraph, doc: dict[str, Any], owner_of: dict[int, str], replaced: list[str],
           errors: dict[str, list[str]]) -> None:
    """Parse and check the built overrides with the validator's rules; file each problem under its field."""
    parsed = parse_overrides(json.dumps(doc).encode(), OVERRIDES_FILE)
    problems: list[Problem] = list(parsed.problems)
    if parsed.model is not None:
        packages = {p.ref.qualified: p for p in builtin_packages()}
        found = check_semantics(graph, packages, graph_file=GRAPH_FILE, overrides=parsed.model,
                                overrides_file=OVERRIDES_FILE)
        problems += [p for p in found if p.file == OVERRIDES_FILE]
    for p in problems:
        if p.severity != "error":
            continue
        node = ""
        m = _OVERRIDE_NODE.match(p.pointer)
        if m is not None:
            node = owner_of.get(int(m[1]), "")
        else:
            m = _OVERRIDE_RULE.match(p.pointer)
            if m is not None and int(m[1]) < len(replaced):
                node = replaced[int(m[1])]
        if node and not graph_node_is_parameter(graph, node) and "package" in p.message.lower():
            continue  # a camera's package lives in the control plane, not among the stock packages
        errors.setdefault(node, []).append(_problem_text(p))


def graph_node_is_parameter(graph: NodeGraph, name: str) -> bool:
    """Whether ``name`` is a parameter node of ``graph``."""
    return any(n.name == name and n.is_parameter for n in graph.nodes)
