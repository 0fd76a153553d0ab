"""Arguments and helpers shared by the commands that take an application directory."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "add_app_arguments",
    "add_isolation_arguments",
    "default_state_dir",
    "isolation_from_args",
    "load_app_or_report",
    "node_value",
]


def node_value(text: str) -> tuple[str, str]:
    """argparse type for ``NODE=VALUE`` flags (``--camera``, ``--param``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NODE=VALUE, got {text!r}")
    return name, value


def add_app_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app_dir", type=Path, metavar="APP_DIR", help="application folder (graphs/, packages/, "
                                                                 "assets/)")
    p.add_argument("--graph", type=Path, metavar="FILE", help="graph.json to use (default: "
                                                              "graphs/*/graph.json)")
    p.add_argument("--overrides", type=Path, metavar="FILE",
                   help="deploy-time overrides (nodeGraphOverrides)")


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


def _megabytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB (e.g. 2048)") from None
    if value < 16:
        raise argparse.ArgumentTypeError(f"{value} MiB is too little for a Python application (at least 16)")
    return value


def add_isolation_arguments(p: argparse.ArgumentParser) -> None:
    """How the application's code nodes are isolated (docs/isolation.md), shared by ``run`` and ``deploy``."""
    p.add_argument("--network", choices=("nat", "none"), default="nat",
                   help="the app's network: nat (outbound allowed, inbound only on confirmed hostPorts; the "
                        "default) or none")
    p.add_argument("--memory", type=_megabytes, metavar="MIB", default=None,
                   help="memory limit of each code node's processes in MiB; over it the app is killed "
                        "(default: no limit)")
    p.add_argument("--cpus", type=float, metavar="N", default=None,
                   help="CPU limit of each code node's processes, in cores (default: no limit)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run the app's code without a sandbox, with panoflow's own privileges: development "
                        "only, for hosts without bubblewrap or user namespaces")


def isolation_from_args(args: argparse.Namespace) -> Any:
    from panoflow.core.runtime import AppIsolation

    return AppIsolation(
        sandbox=not args.unsafe_no_sandbox, network=args.network,
        memory_bytes=args.memory * (1 << 20) if args.memory else None, cpus=args.cpus,
    )
