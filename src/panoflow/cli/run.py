"""``panoflow run APP_DIR``: run a Panorama application on this machine (the developer loop)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from panoflow.cli.aws_args import add_aws_arguments
from panoflow.cli.common import (
    add_app_arguments,
    add_isolation_arguments,
    default_state_dir,
    isolation_from_args,
    load_app_or_report,
    node_value,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run an application on local files, cameras or a test pattern",
        description="Run a Panorama application (graphs/, packages/, assets/) on this machine.",
    )
    add_app_arguments(p)
    p.add_argument("--camera", action="append", type=node_value, default=[], metavar="NODE=URI|NAME",
                   help="bind a camera node to a stream (file path, file:///clip.mp4?loop=1, rtsp://..., "
                        "testsrc://, or a camera registered with `panoflow cameras add`); repeat for several "
                        "streams on one node")
    p.add_argument("--registry", type=Path, metavar="FILE",
                   help="camera registry for --camera NODE=NAME and camera nodes named like a registered "
                        "camera (default: $PANOFLOW_CAMERAS or $XDG_STATE_HOME/panoflow/cameras.json)")
    p.add_argument("--param", action="append", type=node_value, default=[], metavar="NODE=VALUE",
                   help="override a parameter node's value")
    p.add_argument("--record", metavar="FILE", help="record the display output to an H.264 MP4 file")
    p.add_argument("--preview", metavar="HOST:PORT", help="serve the display output as MJPEG over HTTP")
    p.add_argument("--realtime", action="store_true", help="pace files at their frame rate (drops when "
                                                           "behind)")
    p.add_argument("--loop", action="store_true", help="restart files at their end")
    p.add_argument("--frames", type=int, metavar="N", help="stop each source after N frames")
    p.add_argument("--duration", type=float, metavar="S", help="stop the run after S seconds (exit 0)")
    p.add_argument("--policy", metavar="POLICY", help="bus policy for camera inputs: latest, queue(N), "
                                                      "block(N)")
    p.add_argument("--state-dir", type=Path, help="where the app's logs and storage live (default: per app "
                                                  "under $XDG_STATE_HOME/panoflow)")
    p.add_argument("--summary-json", type=Path, metavar="FILE",
                   help="also write the end-of-run summary (frames, drops, fps per stream) as JSON")
    p.add_argument("--model-backend", action="append", default=[], metavar="[NODE=]NAME",
                   help="model backend for every model node, or for one (onnxruntime, tensorrt); default: "
                        "the best available")
    p.add_argument("--max-batch", type=int, default=16, metavar="N",
                   help="largest batch the batcher forms for a model with a dynamic batch axis (default 16)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0, metavar="MS",
                   help="how long a model request waits for others to batch with (default 2 ms)")
    p.add_argument("--instance-id", help="this run's application instance id (default: local-<random>)")
    p.add_argument("--control", metavar="unix:PATH",
                   help="serve the instance control API (status, metrics, signals) on this unix socket")
    p.add_argument("--storage-dir", type=Path, metavar="DIR",
                   help="the app's /opt/aws/panorama/storage (default: <state-dir>/storage)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"),
                   help="AWS_REGION the application sees (default: $AWS_REGION or us-east-1)")
    add_isolation_arguments(p)
    add_aws_arguments(p)
    p.add_argument("--secrets-fd", type=int, metavar="FD", help=argparse.SUPPRESS)  # set by panoflow serve
    p.set_defaults(handler=run_command)


def _read_secrets(fd: int) -> dict[str, Any]:
    """What the daemon hands an instance through a pipe (never argv or env): {"cameras": {node: [uri]},
    "params": {node: value}, "registry": {name: uri}, "aws": what the sandbox maps for the daemon's AWS
    gateway of this instance, or null}."""
    with os.fdopen(fd, "rb") as pipe:
        data = json.loads(pipe.read(16 << 20) or b"{}")
    if not isinstance(data, dict):
        raise SystemExit("panoflow run: error: --secrets-fd did not carry a JSON object")
    return {
        "cameras": {str(k): [str(u) for u in v] for k, v in dict(data.get("cameras") or {}).items()},
        "params": {str(k): str(v) for k, v in dict(data.get("params") or {}).items()},
        "registry": {str(k): str(v) for k, v in dict(data.get("registry") or {}).items()},
        "aws": dict(data["aws"]) if isinstance(data.get("aws"), dict) else None,
        "preview_key": str(data["preview_key"]) if data.get("preview_key") else None,
    }


def _absolute_uri(uri: str) -> str:
    return uri if "://" in uri else os.path.abspath(uri)


def run_command(args: argparse.Namespace) -> int:
    import structlog

    from panoflow.camera_registry import (
        CameraRegistry,
        camera_uri_for,
        default_registry_path,
        registry_lookup,
    )
    from panoflow.control_server import parse_control_address
    from panoflow.core.graph import resolve

    log = structlog.get_logger("panoflow.run")
    secrets = _read_secrets(args.secrets_fd) if args.secrets_fd is not None else None
    args.app_dir = args.app_dir.resolve()
    app = load_app_or_report(args)
    if app is None:
        return 1
    cameras: dict[str, list[str]] = defaultdict(list)
    params = dict(args.param)
    if secrets is not None:  # a daemon's instance: it resolved the cameras; the registry is not ours to read
        for node, uris in secrets["cameras"].items():
            cameras[node].extend(uris)
        params.update(secrets["params"])
        lookup = secrets["registry"].get
    else:
        registry = CameraRegistry(args.registry or default_registry_path(os.environ))
        for node, value in args.camera:
            cameras[node].append(_absolute_uri(camera_uri_for(value, registry)))
        lookup = registry_lookup(registry)
    graph = resolve(app, cameras=cameras, params=params, camera_lookup=lookup)
    if len(graph.code_nodes) != 1:
        print(f"panoflow: error: the application has {len(graph.code_nodes)} code nodes; panoflow runs "
              "exactly one business-logic node per application, as the Panorama appliance does",
              file=sys.stderr)
        return 1
    state = (args.state_dir or default_state_dir(app.graph_file.parent.name)).resolve()
    instance_id = args.instance_id or f"local-{uuid.uuid4().hex[:8]}"
    control = parse_control_address(args.control).resolve() if args.control else None
    storage = (args.storage_dir or state / "storage").resolve()
    options = _run_options(args, state, instance_id, storage)
    if secrets is not None and secrets["preview_key"] and options.display is not None:
        options = dataclasses.replace(options, display={**options.display,
                                                        "preview_key": secrets["preview_key"]})
    aws = _aws_plan(args, instance_id, state, secrets)
    log.info("app_starting", app=str(app.app_dir), instance_id=instance_id, state_dir=str(state))
    summary_file = args.summary_json.resolve() if args.summary_json else None
    return _run(graph, options, summary_file, control, aws)


def _aws_plan(args: argparse.Namespace, instance_id: str, state: Path, secrets: dict[str, Any] | None) -> Any:
    """How the app reaches AWS (docs/aws.md): a daemon's instance gets what the daemon's gateway for it maps
    (through the secrets pipe); ``panoflow run`` on its own starts a gateway of its own from the --aws-*
    flags."""
    from panoflow.aws.gateway import SandboxAws
    from panoflow.cli.aws_args import aws_settings_from_args

    if secrets is not None and secrets.get("aws"):
        box = secrets["aws"]
        folder = state / "aws-app"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for i, (inside, text) in enumerate(sorted(box["files"].items())):
            path = folder / f"{i}-{Path(inside).name}"
            path.write_text(text)
            files.append((path, inside))
        return SandboxAws(tuple((int(a), int(b)) for a, b in box["ports"]), tuple(box["hosts"]), tuple(files),
                          dict(box["env"]))
    if secrets is not None:
        return None  # the daemon gives this instance no AWS access
    return aws_settings_from_args(args, region=args.region, session_name=instance_id)


def with_aws(options: Any, box: Any) -> Any:
    """``options`` with the sandbox mapping what the app's AWS SDK needs (a :class:`SandboxAws`)."""
    import structlog

    if options.isolation.network != "nat":
        structlog.get_logger("panoflow.run").warning(
            "aws_unreachable", reason="--network none: the app's AWS SDK calls fail (no network)")
        return options
    isolation = dataclasses.replace(options.isolation, loopback_forwards=tuple(box.ports),
                                    hosts={name: "127.0.0.1" for name in box.hosts}, files=tuple(box.files))
    return dataclasses.replace(options, isolation=isolation, environment={**options.environment, **box.env})


def _run_options(args: argparse.Namespace, state: Path, instance_id: str, storage: Path) -> Any:
    from panoflow.core.inference import InferenceSettings
    from panoflow.core.runtime import RunOptions
    from panoflow.modelstore import ModelStore

    source_options = {}
    if args.realtime:
        source_options["realtime"] = "1"
    if args.loop:
        source_options["loop"] = "1"
    if args.frames is not None:
        source_options["frames"] = str(args.frames)
    extra = {"record": {"path": os.path.abspath(args.record)}} if args.record else {}
    chosen = [node_value(b) if "=" in b else ("", b) for b in args.model_backend]
    inference = InferenceSettings(
        max_batch=args.max_batch, max_wait_ms=args.batch_wait_ms,
        backend=next((name for node, name in chosen if not node), None),
        node_backends={node: name for node, name in chosen if node},
    )
    return RunOptions(
        instance_id=instance_id,
        state_dir=state,
        source_options=source_options,
        policy=args.policy,
        display={"preview": args.preview} if args.preview else None,
        extra_sinks=extra,
        duration=args.duration,
        environment={"AWS_REGION": args.region, "AWS_DEFAULT_REGION": args.region,
                     "AppGraph_Uid": instance_id},
        inference=inference,
        models=ModelStore(state / "models"),
        storage_dir=storage,
        isolation=isolation_from_args(args),
    )


def _run(graph: Any, options: Any, summary_file: Path | None, control: Path | None, aws: Any) -> int:
    import contextlib

    import anyio

    from panoflow.aws.gateway import AwsGateway, SandboxAws
    from panoflow.control_server import ControlServer
    from panoflow.core.plugins import build_plugins
    from panoflow.core.runtime import Runtime
    from panoflow.plugins import BUILTINS

    plugins = build_plugins(BUILTINS)
    plugins.check()
    tty = sys.stderr.isatty()

    async def main() -> Any:
        async with contextlib.AsyncExitStack() as stack:
            opts = options
            if isinstance(aws, SandboxAws):
                opts = with_aws(opts, aws)
            elif aws is not None:  # panoflow run on its own: a gateway of this process's
                gateway = await stack.enter_async_context(
                    AwsGateway(aws, instance_id=opts.instance_id, state_dir=opts.state_dir))
                opts = dataclasses.replace(with_aws(opts, gateway.sandbox()), extra_metrics=gateway.families)
            return await _serve(Runtime(graph, plugins, opts))

    async def _serve(runtime: Any) -> Any:
        server = ControlServer(runtime, control) if control is not None else None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signals, runtime)
            if tty:
                tg.start_soon(_status_line, runtime)
            if server is not None:
                await server.start()
            try:
                summary = await runtime.run()
            finally:
                if server is not None:
                    with anyio.CancelScope(shield=True):
                        await server.stop()
            tg.cancel_scope.cancel()
        return summary

    summary = anyio.run(main)
    _print_summary(summary, tty)
    if summary_file is not None:
        summary_file.write_text(json.dumps(dataclasses.asdict(summary), indent=2))
    return 0 if summary.ok else 1


async def _signals(runtime: Any) -> None:
    import anyio

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        async for signum in received:
            runtime.stop(f"received {signal.Signals(signum).name}")


async def _status_line(runtime: Any) -> None:
    import anyio

    while True:
        await anyio.sleep(1.0)
        st = runtime.status()
        parts = [f"{sid}: {s['fps']:.1f} fps, {s['drops']} drops" for sid, s in st["streams"].items()]
        line = " | ".join(parts) + (f" | latency p50 {st['latency_ms_p50']:.1f} ms p95 "
                                    f"{st['latency_ms_p95']:.1f} ms")
        sys.stderr.write("\r\x1b[2K" + line[:200])
        sys.stderr.flush()


def _print_summary(summary: Any, tty: bool) -> None:
    out = sys.stderr
    if tty:
        out.write("\r\x1b[2K")
    out.write(f"run {summary.reason} after {summary.elapsed_s:.1f} s\n")
    for sid, s in summary.streams.items():
        extra = f", error: {s['error']}" if s["error"] else ""
        out.write(f"  {sid}: {s['frames']} frames, {s['delivered']} to the app, {s['dropped']} dropped, "
                  f"{s['fps']} fps{extra}\n")
    for key, s in summary.sinks.items():
        out.write(f"  output {key}: {s['frames']} frames\n")
    for err in summary.errors:
        out.write(f"  error: {err}\n")
    out.flush()
