"""``panoflow serve``: run the device daemon (application instances, HTTP API, previews, metrics)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO, cast

from panoflow.cli.aws_args import add_aws_arguments

__all__ = ["register"]



def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not host or not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), number


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from panoflow.daemon.client import default_state_dir

    p = sub.add_parser(
        "serve", help="run the device daemon: deploy, supervise and expose application instances",
        description="Run panoflow as a device: application instances in processes of their own, restarted "
                    "when they die, behind an HTTP API (bearer token in STATE_DIR/token) with previews and "
                    "metrics.",
    )
    p.add_argument("--state-dir", type=Path, default=default_state_dir(), metavar="DIR",
                   help="where deployments, storage, logs and the token live (default: "
                        f"{default_state_dir()})")
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 7700), metavar="HOST:PORT",
                   help="address of the HTTP API (default: 127.0.0.1:7700; port 0 picks a free one, written "
                        "to STATE_DIR/daemon.json)")
    p.add_argument("--cameras", type=Path, metavar="FILE",
                   help="the camera registry that --camera NODE=NAME looks names up in (default: "
                        "$PANOFLOW_CAMERAS, else the one `panoflow cameras` edits)")
    p.add_argument("--max-instances", type=int, default=10, metavar="N",
                   help="most application instances at once (default: 10, as on the appliance)")
    p.add_argument("--start-timeout", type=_positive, default=60.0, metavar="S",
                   help="how long an instance may take to report running (default: 60 s)")
    p.add_argument("--stop-grace", type=_positive, default=10.0, metavar="S",
                   help="how long a stopping instance gets after SIGTERM before SIGKILL (default: 10 s)")
    p.add_argument("--control-plane", metavar="URL",
                   help="join the panoflow control plane at URL (https://HOST:PORT): report state, deploy "
                        "what it asks for, upload logs and metrics, run jobs (docs/device-protocol.md)")
    p.add_argument("--provision", type=Path, metavar="BUNDLE.zip",
                   help="the Certificates zip that ProvisionDevice returned: claimed once, then the device's "
                        "credentials live in STATE_DIR/cloud.json (needed only the first time)")
    p.add_argument("--insecure-http", action="store_true",
                   help="accept a plain http:// --control-plane (development only: the device token, camera "
                        "passwords and code would cross the network in clear; docs/security.md)")
    add_aws_arguments(p)
    p.add_argument("--cloud-connector", default="http", metavar="NAME",
                   help="the cloud connector plugin that talks to the control plane (default: http)")
    p.set_defaults(handler=serve_command)


def _default_registry() -> Path | None:
    try:
        from panoflow.camera_registry import default_registry_path
    except ImportError:
        return None  # STATE_DIR/cameras.json
    return default_registry_path(os.environ)


def _reexec(env: dict[str, str] | None) -> None:
    """Replace this process with a new daemon: the same interpreter and command line (``sys.orig_argv`` keeps
    ``-m``/``-c``), the same pid; file descriptors Python opened are not inherited."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env if env is not None else dict(os.environ))


def serve_command(args: argparse.Namespace) -> int:
    import anyio

    from panoflow.cli.aws_args import aws_settings_from_args
    from panoflow.daemon.logfiles import RotatingWriter, TeeStream
    from panoflow.daemon.server import DaemonConfig, serve
    from panoflow.daemon.store import StatePaths
    from panoflow.daemon.supervisor import SupervisorConfig
    from panoflow.exceptions import PanoflowError
    from panoflow.log import configure_logging

    if args.provision is not None and not args.control_plane:
        raise PanoflowError("--provision needs --control-plane URL (the control plane that provisioned the "
                            "device)")
    paths = StatePaths(args.state_dir)
    paths.create()
    writer = RotatingWriter(paths.device_log)
    # the device log is JSON lines
    # TeeStream is a text stream (io.TextIOBase), which typing.TextIO does not describe
    configure_logging("json", args.log_level, stream=cast(TextIO, TeeStream(sys.stderr, writer)))
    if args.control_plane:
        from panoflow.cloud_client.jobs import ota_environment

        # an OTA job installed another panoflow: run that one (or, when it never came up, roll back: logged
        # here, so into the device log)
        env = ota_environment(paths.root.resolve(), os.environ)
        if env is not None:
            writer.close()
            _reexec(env)
    host, port = args.listen
    config = DaemonConfig(
        state_dir=paths.root, host=host, port=port, max_instances=args.max_instances,
        cameras_file=args.cameras or _default_registry(),
        supervisor=SupervisorConfig(start_timeout_s=args.start_timeout, stop_grace_s=args.stop_grace),
        control_plane=args.control_plane, provision=args.provision.resolve() if args.provision else None,
        cloud_connector=args.cloud_connector, insecure_http=args.insecure_http,
        aws=aws_settings_from_args(args, region=os.environ.get("AWS_REGION", "us-east-1"),
                                   session_name="panoflow"),
    )
    try:
        restart = anyio.run(serve, config)
    finally:
        writer.close()
    if restart is not None:
        _reexec(dict(restart.env) if restart.env is not None else None)
    return 0
