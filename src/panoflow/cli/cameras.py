"""``panoflow cameras add|list|remove``: the device's named cameras (passwords never printed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panoflow.camera_registry import CameraRegistry

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cameras", help="manage the named cameras that overrides and --camera NODE=NAME refer to",
        description="Named cameras (URL, username, password) stored in a private file (mode 0600).",
    )
    p.add_argument("--registry", type=Path, metavar="FILE",
                   help="registry file (default: $PANOFLOW_CAMERAS or $XDG_STATE_HOME/panoflow/cameras.json)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    add = actions.add_parser("add", help="register a camera")
    add.add_argument("name", metavar="NAME")
    add.add_argument("url", metavar="URL",
                     help="rtsp://host[:port]/path (credentials in it are stored apart)")
    add.add_argument("--username", metavar="USER")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.add_argument("--replace", action="store_true", help="replace a camera of the same name")
    add.set_defaults(handler=add_command)
    ls = actions.add_parser("list", help="list cameras (passwords are never shown)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=list_command)
    rm = actions.add_parser("remove", help="forget a camera")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(handler=remove_command)


def registry_for(args: argparse.Namespace) -> CameraRegistry:
    from panoflow.camera_registry import CameraRegistry, default_registry_path

    return CameraRegistry(args.registry or default_registry_path(os.environ))


def add_command(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            print("panoflow: error: --password-stdin read an empty password", file=sys.stderr)
            return 1
    camera = registry_for(args).add(args.name, args.url, args.username, password, replace=args.replace)
    print(f"camera {camera.name}: {camera.redacted()}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    cameras = registry_for(args).list()
    if args.json:
        print(json.dumps([c.public() for c in cameras], indent=2))
        return 0
    if not cameras:
        print("no cameras registered")
    width = max((len(c.name) for c in cameras), default=4)
    for camera in cameras:
        print(f"{camera.name:<{width}}  {camera.redacted()}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    registry_for(args).remove(args.name)
    print(f"removed camera {args.name}")
    return 0
