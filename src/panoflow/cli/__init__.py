"""The ``panoflow`` command. The outermost layer: the only place (with the daemon) that reads flags and
environment.

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler returns the exit code.
Exit codes: 0 success, 1 failure (invalid input, failed run), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

import structlog

from panoflow import __version__
from panoflow.exceptions import PanoflowError
from panoflow.log import configure_logging

__all__ = ["EXTRAS", "build_parser", "main", "missing_extra"]

#: subcommand modules, in the order ``panoflow --help`` lists them (``device``: the daemon's client commands
#: deploy, ps, logs, signal, remove)
COMMANDS: tuple[str, ...] = (
    "validate", "run", "cameras", "serve", "device", "plugins", "project", "compile", "controlplane",
    "triton",
)


#: optional dependencies (top-level module) -> the extra of panoflow that installs them
EXTRAS: dict[str, str] = {
    "boto3": "controlplane", "botocore": "controlplane", "psycopg": "controlplane",
    "cupy": "gpu", "tensorrt": "gpu",
}


def missing_extra(exc: ModuleNotFoundError) -> str:
    """The line to print when an optional dependency is missing (``""`` when ``exc`` is about another
    module)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return ""
    return (f"{top} is not installed; this command needs panoflow's {extra} extra: pip install "
            f"'panoflow[{extra}]'")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors: one line, exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="panoflow", description="Run AWS Panorama applications on your own hardware.")
    parser.add_argument("--version", action="version", version=f"panoflow {__version__}")
    parser.add_argument(
        "--log-format", choices=("auto", "console", "json"), default="auto",
        help="log rendering: console on a terminal, JSON lines otherwise (default: auto)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"panoflow.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        return int(args.handler(args) or 0)
    except PanoflowError as exc:
        print(f"panoflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        hint = missing_extra(exc)
        if not hint:
            _report_internal(exc)
            return 1
        print(f"panoflow: error: {hint}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug in panoflow: say so in one block, log the details
        _report_internal(exc)
        return 1


def _report_internal(exc: BaseException) -> None:
    """Report a bug in panoflow: the traceback to the log, one line to stderr."""
    structlog.get_logger("panoflow.cli").error("internal_error", exc_info=exc)
    print(f"panoflow: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
