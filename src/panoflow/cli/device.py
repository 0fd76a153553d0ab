"""The client commands of the device daemon: ``deploy``, ``ps``, ``logs``, ``signal``, ``remove``.

Each speaks the daemon's HTTP API (``--daemon URL``, default ``$PANOFLOW_DAEMON`` or the local daemon) with
the bearer token read from ``--token-file`` (default ``$PANOFLOW_TOKEN_FILE`` or the local daemon's token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from panoflow.cli.common import node_value

__all__ = ["register"]


def _add_daemon_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--daemon", metavar="URL", default=os.environ.get("PANOFLOW_DAEMON"),
                   help="the daemon's URL (default: $PANOFLOW_DAEMON, else the local daemon)")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        default=Path(os.environ["PANOFLOW_TOKEN_FILE"]) if os.environ.get("PANOFLOW_TOKEN_FILE") else None,
        help="the daemon's bearer token (default: $PANOFLOW_TOKEN_FILE, else the local daemon's)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("deploy", help="deploy an application to the device daemon (replaces one of the same "
                                      "name)",
                       description="Upload an application folder and deploy it as NAME; wait until it runs "
                       "(and the version it replaces, if any, is gone).")
    p.add_argument("app_dir", type=Path, metavar="APP_DIR", help="application folder (graphs/, packages/, "
                                                                 "assets/)")
    p.add_argument("--name", required=True, help="the application's name on the device")
    p.add_argument("--graph", type=Path, metavar="FILE", help="graph.json to deploy (default: "
                                                              "graphs/*/graph.json)")
    p.add_argument("--overrides", type=Path, metavar="FILE",
                   help="deploy-time overrides (nodeGraphOverrides)")
    p.add_argument("--camera", action="append", type=node_value, default=[], metavar="NODE=URI_OR_NAME",
                   help="bind a camera node to a stream URI, a local file or a registered camera; repeatable")
    p.add_argument("--param", action="append", type=node_value, default=[], metavar="NODE=VALUE",
                   help="override a parameter node's value")
    p.add_argument("--description", default="", help="a note kept with the deployment")
    p.add_argument("--network", choices=("nat", "none"), default=None,
                   help="the app's network: nat (outbound allowed; the default) or none")
    p.add_argument("--memory", type=int, metavar="MIB", default=None,
                   help="memory limit of each code node's processes in MiB (over it the app is restarted)")
    p.add_argument("--cpus", type=float, metavar="N", default=None,
                   help="CPU limit of each code node, in cores")
    p.add_argument("--model-backend", action="append", type=node_value, default=[], metavar="NODE=BACKEND",
                   help="model backend for one model node, e.g. "
                        "model_node=kserve+grpc://gpu-box:8001/squeezenet (a shared inference server; "
                        "docs/inference.md)")
    p.add_argument("--aws-role-arn", metavar="ARN",
                   help="the instance's runtime role: its app's AWS SDK gets this role's credentials "
                        "(docs/aws.md)")
    p.add_argument("--no-wait", action="store_true", help="return once the deployment is accepted")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="how long to wait for the deployment (default: 300 s)")
    _add_daemon_arguments(p)
    p.set_defaults(handler=deploy_command)

    p = sub.add_parser("ps", help="list the device daemon's application instances")
    p.add_argument("--json", action="store_true", dest="as_json", help="print the instances as JSON")
    _add_daemon_arguments(p)
    p.set_defaults(handler=ps_command)

    p = sub.add_parser("logs", help="show an application instance's logs",
                       description="Print the instance's log (JSON lines), or a node's console_output with "
                                   "--node.")
    p.add_argument("name", metavar="NAME", help="application name or instance id")
    p.add_argument("--node", help="print this node's console_output (the app's stdout and stderr)")
    p.add_argument("--tail", type=int, default=100, metavar="N",
                   help="how many of the last lines (default: 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    _add_daemon_arguments(p)
    p.set_defaults(handler=logs_command)

    p = sub.add_parser("signal", help="pause or resume a camera node of an application instance")
    p.add_argument("name", metavar="NAME", help="application name or instance id")
    p.add_argument("node", metavar="NODE", help="camera node")
    p.add_argument("signal", choices=("pause", "resume"), type=str.lower, metavar="pause|resume")
    _add_daemon_arguments(p)
    p.set_defaults(handler=signal_command)

    p = sub.add_parser("remove", help="stop and remove an application (its storage and logs too)")
    p.add_argument("name", metavar="NAME", help="application name or instance id")
    _add_daemon_arguments(p)
    p.set_defaults(handler=remove_command)


def _client(args: argparse.Namespace) -> Any:
    from panoflow.daemon.client import DaemonClient, find_daemon

    url, token_file = find_daemon(args.daemon, args.token_file)
    return DaemonClient.from_token_file(url, token_file)


def _read_overrides(path: Path) -> Any:
    from panoflow.exceptions import PanoflowError

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ValueError(f"duplicate key {dup!r}")
        return dict(pairs)

    try:
        doc = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except (OSError, ValueError) as exc:
        raise PanoflowError(f"--overrides {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise PanoflowError(f"--overrides {path}: expected a JSON object (nodeGraphOverrides)")
    return doc


def _camera_value(value: str) -> str:
    """A local file becomes an absolute path (the daemon runs elsewhere); URIs and camera names pass."""
    if "://" not in value and os.path.exists(value):
        return os.path.abspath(value)
    return value


def deploy_command(args: argparse.Namespace) -> int:
    from panoflow.daemon.app_archive import pack_app
    from panoflow.exceptions import PanoflowError

    app_dir = args.app_dir.resolve()
    if not app_dir.is_dir():
        print(f"panoflow deploy: error: APP_DIR {str(args.app_dir)!r}: no such directory", file=sys.stderr)
        return 2
    request: dict[str, Any] = {"name": args.name}
    if args.description:
        request["description"] = args.description
    if args.graph is not None:
        graph = (args.graph if args.graph.is_absolute() else Path.cwd() / args.graph).resolve()
        if app_dir not in graph.parents:
            graph = (app_dir / args.graph).resolve()
        if app_dir not in graph.parents or not graph.is_file():
            raise PanoflowError(f"--graph {args.graph}: not a file inside {app_dir}")
        request["graph"] = graph.relative_to(app_dir).as_posix()
    if args.overrides is not None:
        request["overrides"] = _read_overrides(args.overrides)
    cameras: dict[str, list[str]] = {}
    for node, value in args.camera:
        cameras.setdefault(node, []).append(_camera_value(value))
    if cameras:
        request["cameras"] = cameras
    if args.param:
        request["params"] = dict(args.param)
    isolation = {k: v for k, v in (("network", args.network), ("memory_mib", args.memory),
                                   ("cpus", args.cpus))
                 if v is not None}
    if isolation:
        request["isolation"] = isolation
    if args.aws_role_arn:
        request["aws"] = {"role_arn": args.aws_role_arn}
    if args.model_backend:
        request["model_backends"] = dict(args.model_backend)
    client = _client(args)
    with tempfile.TemporaryFile() as archive:
        sha = pack_app(app_dir, archive)
        size = archive.tell()
        client.upload_archive(archive, size, sha)
    request["archive"] = sha
    inst = client.deploy(request)
    if args.no_wait:
        print(f"{inst['name']}: {inst['status']} ({inst['instance_id']})")
        return 0
    inst = client.wait_deployed(inst["instance_id"], args.timeout)
    if inst["status"] == "DEPLOYMENT_SUCCEEDED":
        print(f"{inst['name']}: {inst['status']} ({inst['instance_id']})")
        return 0
    if inst["status"] == "DEPLOYMENT_FAILED":
        print(f"{inst['name']}: {inst['status']} ({inst['instance_id']})", file=sys.stderr)
        for line in str(inst.get("status_description", "")).splitlines():
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{inst['name']}: still {inst['status']} after {args.timeout:g} s ({inst['instance_id']})",
          file=sys.stderr)
    return 1


def ps_command(args: argparse.Namespace) -> int:
    instances = _client(args).instances()
    if args.as_json:
        print(json.dumps(instances, indent=2))
        return 0
    rows = [("NAME", "INSTANCE ID", "STATUS", "HEALTH", "PID", "RESTARTS")]
    for inst in instances:
        proc = inst.get("process") or {}
        rows.append((inst["name"], inst["instance_id"], inst["status"], inst["health_status"],
                     str(proc.get("pid") or "-"), str(proc.get("restarts", 0))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def logs_command(args: argparse.Namespace) -> int:
    out = sys.stdout
    for line in _client(args).logs(args.name, node=args.node, tail=max(0, args.tail), follow=args.follow):
        out.write(line + "\n")
        if args.follow:
            out.flush()
    return 0


def signal_command(args: argparse.Namespace) -> int:
    answer = _client(args).signal(args.name, args.node, args.signal.upper())
    print(f"{answer.get('node', args.node)}: {answer.get('status')}")
    return 0


def remove_command(args: argparse.Namespace) -> int:
    removed = _client(args).remove(args.name)
    for inst in removed:
        print(f"{inst['name']}: REMOVAL_SUCCEEDED ({inst['instance_id']})")
    return 0
