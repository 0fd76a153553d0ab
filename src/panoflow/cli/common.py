"""Arguments and helpers shared by the commands that take an application directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_app_arguments", "default_state_dir", "load_app_or_report", "node_value"]


def node_value(text: str) -> tuple[str, str]:
    """argparse type for ``NODE=VALUE`` flags (``--camera``, ``--param``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NODE=VALUE, got {text!r}")
    return name, value


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app_dir", type=Path, metavar="APP_DIR", help="application folder (graphs/, packages/, assets/)")
    p.add_argument("--graph", type=Path, metavar="FILE", help="graph.json to use (default: graphs/*/graph.json)")
    p.add_argument("--overrides", type=Path, metavar="FILE", help="deploy-time overrides (nodeGraphOverrides)")


def default_state_dir(app_name: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "panoflow" / "apps" / app_name


def load_app_or_report(args: argparse.Namespace) -> Any:
    """Load and validate; on failure print every problem (never a traceback) and return None."""
    from panoflow.core.manifest import load_application
    from panoflow.exceptions import ManifestError

    try:
        app = load_application(args.app_dir, graph=args.graph, overrides=args.overrides)
    except ManifestError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"invalid: {len(exc.errors)} error(s), {len(exc.warnings)} warning(s)", file=sys.stderr)
        return None
    for warning in app.warnings:
        print(warning, file=sys.stderr)
    return app
