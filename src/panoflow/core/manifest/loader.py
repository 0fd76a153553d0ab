"""Load an application folder (``graphs/``, ``packages/``, ``assets/``) into a checked :class:`Application`.

:func:`load_application` returns the application (warnings in ``Application.warnings``) or raises
:class:`~panoflow.exceptions.ManifestError` with every problem found, errors and warnings, sorted by file. It
never raises anything else, whatever is on disk. :func:`validate_application` returns the problems instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panoflow.core.manifest.builtin import builtin_package
from panoflow.core.manifest.jsonio import display_path, read_manifest_bytes
from panoflow.core.manifest.models import Application, GraphOverrides, LoadedPackage, NodeGraph, PackageRef
from panoflow.core.manifest.packages import load_package
from panoflow.core.manifest.parse import Parsed, parse_graph, parse_overrides
from panoflow.core.manifest.semantic import check_semantics
from panoflow.exceptions import ManifestError, Problem

__all__ = ["find_graph", "load_application", "validate_application"]

def find_graph(app_dir: Path) -> Path:
    """The one ``graphs/*/graph.json`` of ``app_dir``; :class:`ManifestError` when there is none or
    several."""
    graphs_dir = app_dir / "graphs"
    try:
        found = sorted(p for p in graphs_dir.glob("*/graph.json") if p.is_file())
    except (OSError, ValueError):
        found = []
    if len(found) == 1:
        return found[0]
    if not found:
        raise ManifestError([Problem("graphs", "", "no graphs/*/graph.json in the application folder",
                                     "pass the application manifest with --graph FILE")])
    names = ", ".join(display_path(p, app_dir) for p in found)
    raise ManifestError([Problem("graphs", "", f"several application manifests: {names}",
                                 "choose one with --graph FILE")])


def _read(path: Path, app_dir: Path, parse: Callable[[bytes, str], Parsed[Any]]) -> tuple[str, Parsed[Any]]:
    file = display_path(path, app_dir)
    try:
        data = read_manifest_bytes(path, file)
    except ManifestError as exc:
        return file, Parsed(None, exc.problems)
    return file, parse(data, file)


def _interfaces_used(ref: PackageRef, graph: NodeGraph, overrides: GraphOverrides | None) -> list[str]:
    nodes = [*graph.nodes, *(overrides.nodes if overrides else ())]
    return list(dict.fromkeys(n.interface_name for n in nodes if n.package == ref.qualified))


def _load_packages(app_dir: Path, graph: NodeGraph, overrides: GraphOverrides | None,
                   problems: list[Problem]) -> tuple[dict[str, LoadedPackage], set[str]]:
    packages: dict[str, LoadedPackage] = {}
    broken: set[str] = set()
    refs = [*graph.packages, *(overrides.packages if overrides else ())]
    for ref in refs:
        if ref.qualified in packages or ref.qualified in broken:
            continue  # duplicates are reported by the semantic checks
        stock = builtin_package(ref)
        if stock is not None:
            packages[ref.qualified] = stock
            continue
        loaded = load_package(app_dir, ref, _interfaces_used(ref, graph, overrides))
        problems.extend(loaded.problems)
        if loaded.package is not None:
            packages[ref.qualified] = loaded.package
        elif loaded.folder_exists:
            broken.add(ref.qualified)
    return packages, broken


def _load(app_dir: Path, graph: Path | None,
          overrides: Path | None) -> tuple[Application | None, list[Problem]]:
    app_dir = Path(app_dir)
    try:
        is_dir = app_dir.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        return None, [Problem(os.fspath(app_dir), "", "application folder not found", "check the path")]
    try:
        graph_path = Path(graph) if graph is not None else find_graph(app_dir)
    except ManifestError as exc:
        return None, list(exc.problems)
    graph_file, parsed_graph = _read(graph_path, app_dir, parse_graph)
    problems = list(parsed_graph.problems)
    overrides_file, parsed_overrides = "", Parsed[GraphOverrides](None)
    if overrides is not None:
        overrides_file, parsed_overrides = _read(Path(overrides), app_dir, parse_overrides)
        problems += parsed_overrides.problems
    if parsed_graph.model is None or (overrides is not None and parsed_overrides.model is None):
        return None, problems
    node_graph, node_overrides = parsed_graph.model, parsed_overrides.model
    packages, broken = _load_packages(app_dir, node_graph, node_overrides, problems)
    problems += check_semantics(node_graph, packages, graph_file=graph_file, overrides=node_overrides,
                                overrides_file=overrides_file, broken=broken)
    problems = list(dict.fromkeys(problems))
    app = Application(
        app_dir=app_dir,
        graph_file=graph_path,
        graph=node_graph,
        packages=packages,
        overrides=node_overrides,
        overrides_file=Path(overrides) if overrides is not None else None,
        warnings=tuple(sorted(p for p in problems if p.severity == "warning")),
    )
    return app, problems


def validate_application(app_dir: Path | str, graph: Path | str | None = None,
                         overrides: Path | str | None = None) -> list[Problem]:
    """Every problem (errors and warnings, sorted) of the application in ``app_dir``. Never raises."""
    _, problems = _load(Path(app_dir), _opt_path(graph), _opt_path(overrides))
    return sorted(problems)


def _opt_path(path: Path | str | None) -> Path | None:
    return None if path is None else Path(path)


def load_application(app_dir: Path | str, graph: Path | str | None = None,
                     overrides: Path | str | None = None) -> Application:
    """Load, check and return the application in ``app_dir`` (``graph`` defaults to the one
    ``graphs/*/graph.json``; ``overrides`` is a ``nodeGraphOverrides`` file to check against it).

    Raises :class:`ManifestError` with every problem (sorted by file) when there is any error."""
    app, problems = _load(Path(app_dir), _opt_path(graph), _opt_path(overrides))
    if app is None or any(p.severity == "error" for p in problems):
        raise ManifestError(problems)
    return app
