"""``panoflow validate APP_DIR [--graph FILE] [--overrides FILE] [--strict] [--json]``.

Checks an application's manifests the way deployment would, without running anything. Exit status: 0 valid
(warnings allowed, unless ``--strict``), 1 invalid, 2 usage error (APP_DIR, --graph or --overrides not found).
Human output: one ``FILE:POINTER: severity: message`` line and an indented ``hint:`` line per problem, then a
summary line. ``--json``: one object on stdout, ``{"valid": ..., "problems": [...], ...}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from panoflow.core.manifest import load_application
from panoflow.exceptions import ManifestError, Problem

__all__ = ["register", "run_validate"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser(
        "validate",
        help="check an application's manifests (graph, overrides, packages, descriptors)",
        description="Check an AWS Panorama application's manifests against Panorama's schemas and rules.",
    )
    p.add_argument("app_dir", type=Path, metavar="APP_DIR", help="application folder (graphs/, packages/, "
                                                                 "assets/)")
    p.add_argument("--graph", type=Path, metavar="FILE", help="graph.json to check (default: "
                                                              "graphs/*/graph.json)")
    p.add_argument("--overrides", type=Path, metavar="FILE",
                   help="deploy-time overrides (nodeGraphOverrides) to check against the graph")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object on stdout")
    p.set_defaults(handler=run_validate)


def _write(stream: TextIO, text: str) -> None:
    """Print ``text`` even where the stream cannot encode all of it (e.g. a C locale)."""
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace") + "\n")


def _usage_error(args: argparse.Namespace) -> str:
    """Why the arguments cannot be used, or ``""``."""
    checks = [("APP_DIR", args.app_dir, True), ("--graph", args.graph, False),
              ("--overrides", args.overrides, False)]
    for flag, path, directory in checks:
        if path is None:
            continue
        try:
            ok = path.is_dir() if directory else path.exists()
        except (OSError, ValueError):
            ok = False
        if not ok:
            return f"{flag} {str(path)!r}: {'no such directory' if directory else 'no such file'}"
    return ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def run_validate(args: argparse.Namespace) -> int:
    """Handler of ``panoflow validate``; returns the exit status."""
    usage = _usage_error(args)
    if usage:
        _write(sys.stderr, f"panoflow validate: error: {usage}")
        return 2
    nodes = edges = 0
    try:
        app = load_application(args.app_dir, graph=args.graph, overrides=args.overrides)
    except ManifestError as exc:
        problems: tuple[Problem, ...] = exc.problems
    else:
        problems = app.warnings
        nodes, edges = len(app.graph.nodes), len(app.graph.edges)
    if args.strict:
        problems = tuple(sorted(dataclasses.replace(p, severity="error") for p in problems))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    valid = errors == 0
    if args.as_json:
        report: dict[str, Any] = {
            "valid": valid,
            "app_dir": str(args.app_dir),
            "graph": str(args.graph) if args.graph else None,
            "overrides": str(args.overrides) if args.overrides else None,
            "strict": bool(args.strict),
            "errors": errors,
            "warnings": warnings,
            "nodes": nodes,
            "edges": edges,
            "problems": [p.as_dict() for p in problems],
        }
        _write(sys.stdout, json.dumps(report, indent=2, ensure_ascii=True))
        return 0 if valid else 1
    for problem in problems:
        _write(sys.stdout, str(problem))
    if valid:
        summary = f"valid: {_plural(nodes, 'node')}, {_plural(edges, 'edge')}, {_plural(warnings, 'warning')}"
    else:
        summary = f"invalid: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    _write(sys.stdout, summary)
    return 0 if valid else 1
