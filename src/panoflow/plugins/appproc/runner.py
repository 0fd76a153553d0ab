"""Runs one Panorama code node as a process of its own, in its own Python environment, inside a sandbox.

The steps, for the node's package:

1. lay out its files as its container would see them (its built code asset, or its source tree placed as the
   Dockerfile says) and find its Python environment (:func:`panoflow.packaging.pyenv.app_environment`: the
   asset's own requirements, on the interpreter its descriptor asks for);
2. start ``python -m panoramasdk._bootstrap ENTRY`` in a sandbox (:mod:`panoflow.isolation`): its own uid,
   mount, pid and network namespaces; ``/panorama`` read-only, ``/opt/aws/panorama/{logs,storage}`` writable,
   the thin SDK client at ``/opt/panoflow/sdk``; a clean environment; one end of a socket pair inherited as
   ``PANOFLOW_SDK_FD``;
3. answer the SDK's requests on the node's ports (:class:`~panoflow.plugins.appproc.server.AppServer`), copy
   its stdout/stderr into ``console_output`` and, prefixed with the node's name, onto panoflow's own streams;
4. report how it ended: its inputs ran out or it returned (done), it exited with a status or raised (NodeError
   with its words), or it was killed (by its memory limit, or by a stop that it did not honour in time).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
import structlog

import panoramasdk
from panoflow.core.runtime import AppIsolation, CodeNodeContext
from panoflow.exceptions import NodeError, SandboxError
from panoflow.plugins.appproc.memory import FramePool
from panoflow.plugins.appproc.server import AppExit, AppServer
from panoramasdk._wire import Channel

__all__ = ["AppLaunch", "prepare_launch", "run_app_process"]

log = structlog.get_logger(__name__)

SDK_DIR = "/opt/panoflow/sdk"
STOP_GRACE_S = 3.0
_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/proc", "/dev", "/sys")


@dataclass(frozen=True)
class AppLaunch:
    """Where a code node's files and Python environment are on the host."""

    root: Path  # the container's files: <root>/panorama/... (and any other folder its Dockerfile copies to)
    workdir: str  # the container's WORKDIR (inside paths)
    env: Any  # panoflow.packaging.pyenv.AppEnvironment
    asset_env: dict[str, str]  # ENV lines of the Dockerfile the asset was built from


def prepare_launch(ctx: CodeNodeContext) -> AppLaunch:
    """Stage the node's files and find its environment (may create a venv: seconds, once per asset)."""
    from panoflow.codefs import stage_code
    from panoflow.packaging.codeasset import find_code_asset, prepare_code_asset
    from panoflow.packaging.pyenv import app_environment

    spec, state = ctx.spec, ctx.options.state_dir
    requested = spec.runtime.entry_path if spec.runtime else None
    archive = find_code_asset(spec.package, spec.interface.asset)
    envs_dir = ctx.options.envs_dir or state / "envs"
    if archive is None:
        if spec.package.directory is None:  # graph resolution refuses a missing package before this
            raise NodeError(f"its code package packages/{spec.package.ref.folder_name} is missing",
                            node_id=spec.node_id)
        staged = stage_code(spec.package.directory, state / "code" / spec.node_id, node_id=spec.node_id)
        env = app_environment(None, envs_dir=envs_dir, requested=requested, node_id=spec.node_id)
        return AppLaunch(staged.root, staged.workdir, env, {})
    asset = prepare_code_asset(archive, state / "code-assets", node_id=spec.node_id,
                               package_dir=spec.package.directory)
    env = app_environment(asset, envs_dir=envs_dir, requested=requested, node_id=spec.node_id)
    return AppLaunch(asset.root, asset.workdir, env, asset.env)


def _mounts(ctx: CodeNodeContext, launch: AppLaunch) -> list[Any]:
    from panoflow.isolation import Mount

    mounts = []
    for entry in sorted(launch.root.iterdir()):
        target = "/" + entry.name
        if entry.is_dir() and entry.name != "wheels" and not target.startswith(_SYSTEM):
            mounts.append(Mount(entry, target))
    mounts += [
        Mount(ctx.logs_dir, "/opt/aws/panorama/logs", writable=True),
        Mount(ctx.storage_dir, "/opt/aws/panorama/storage", writable=True),
        Mount(Path(panoramasdk.__file__).parent, f"{SDK_DIR}/panoramasdk"),
    ]
    for path in launch.env.mounts:
        if not str(path).startswith(_SYSTEM):
            mounts.append(Mount(path, str(path)))
    mounts += [Mount(host, inside) for host, inside in ctx.options.isolation.files]
    return mounts


def _environment(ctx: CodeNodeContext, launch: AppLaunch, sdk_path: str, fd: int) -> dict[str, str]:
    """The app's whole environment: nothing of panoflow's own (no tokens, no AWS keys, no PIP_*)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp", "PYTHONUNBUFFERED": "1"}
    env.update(launch.env.env)
    env.update(launch.asset_env)
    if ctx.spec.runtime is not None:
        env.update(dict(ctx.spec.runtime.environment))
    env.update(ctx.options.environment)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (sdk_path, launch.env.env.get("PYTHONPATH", "")) if p)
    env["PANOFLOW_SDK_FD"] = str(fd)
    return env


def _give_to(path: Path, uid: int, gid: int) -> None:
    """Make ``path`` (and what is in it) the sandbox uid's, so the app can write its logs and storage."""
    path.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(path):
        os.chown(folder, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


class _Console:
    """The app's stdout and stderr: each line to ``console_output`` as written, and, prefixed with the node's
    name, to panoflow's own stream of the same kind (the daemon sorts lines by that prefix)."""

    def __init__(self, node_id: str, path: Path):
        self.prefix = f"[{node_id}] "
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self.lock = threading.Lock()
        self.tail: list[str] = []

    def pump(self, stream: IO[bytes], echo: Callable[[], IO[str]]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            text = line if line.endswith("\n") else line + "\n"
            with self.lock:
                self.file.write(text)
                self.file.flush()
                self.tail = (self.tail + [text.rstrip("\n")])[-20:]
                out = echo()
                out.write(self.prefix + text)
                out.flush()
        stream.close()

    def close(self) -> None:
        with self.lock:
            self.file.close()


def _start(ctx: CodeNodeContext, launch: AppLaunch, isolation: AppIsolation, child: socket.socket) -> Any:
    from panoflow.isolation import Limits, SandboxSpec, host_problems, start, unsafe_start
    from panoflow.isolation.spec import DEFAULT_SANDBOX_UID

    spec = ctx.spec
    entry = spec.runtime.entry_name if spec.runtime else "/panorama/app.py"
    arguments = list(spec.runtime.arguments) if spec.runtime else []
    argv = [str(launch.env.python), "-m", "panoramasdk._bootstrap", entry, *arguments]
    fd = child.fileno()
    if not isolation.sandbox:
        sdk_parent = str(Path(panoramasdk.__file__).parent.parent)
        cwd = str(launch.root / launch.workdir.lstrip("/"))
        sandbox = SandboxSpec(argv=argv, cwd=cwd, env=_environment(ctx, launch, sdk_parent, fd),
                              pass_fds=[fd], name=_cgroup_name(ctx))
        log.warning("app_not_sandboxed", node_id=spec.node_id,
                    hint="--unsafe-no-sandbox is for development only: the app runs with panoflow's "
                         "privileges")
        return unsafe_start(sandbox, stdout=_PIPE, stderr=_PIPE)
    uid = isolation.uid or DEFAULT_SANDBOX_UID
    if os.geteuid() == 0:
        for folder in (ctx.logs_dir, ctx.storage_dir):
            _give_to(folder, uid, isolation.gid or uid)
    else:
        ctx.logs_dir.mkdir(parents=True, exist_ok=True)
        ctx.storage_dir.mkdir(parents=True, exist_ok=True)
    sandbox = SandboxSpec(
        argv=argv, mounts=_mounts(ctx, launch), cwd=launch.workdir,
        env=_environment(ctx, launch, SDK_DIR, fd), network=isolation.network,
        inbound=list(spec.inbound_ports) if isolation.network == "nat" else [],
        loopback_forwards=list(isolation.loopback_forwards) if isolation.network == "nat" else [],
        hosts=dict(isolation.hosts),
        uid=uid, gid=isolation.gid or uid,
        limits=Limits(memory_bytes=isolation.memory_bytes, cpus=isolation.cpus),
        pass_fds=[fd], name=_cgroup_name(ctx),
    )
    problems = host_problems(sandbox)
    if problems:
        raise SandboxError(
            f"cannot sandbox code node {spec.node_id!r} on this host:\n  - " + "\n  - ".join(problems)
            + "\n(`--unsafe-no-sandbox` runs it without isolation, for development only)"
        )
    return start(sandbox, stdout=_PIPE, stderr=_PIPE, die_with_parent=True)


_PIPE = -1  # subprocess.PIPE


def _cgroup_name(ctx: CodeNodeContext) -> str:
    clean = "".join(
        c if c.isalnum() or c in "_.-" else "-" for c in f"{ctx.options.instance_id}.{ctx.spec.node_id}"
    )
    return clean.strip("-.")[:63] or "app"


async def run_app_process(ctx: CodeNodeContext) -> None:
    """Run the node's code to its end (see the module docstring). Cancelling stops the process: SIGTERM, then
    SIGKILL after a grace period."""
    spec = ctx.spec
    if spec.runtime is None:
        raise NodeError("code package has no runtimeDescriptor (descriptor.json)", node_id=spec.node_id)
    if not Path(spec.runtime.entry_path).name.startswith("python"):
        raise NodeError(
            f"entry {spec.runtime.entry_path} {spec.runtime.entry_name}: panoflow runs Python entry scripts "
            "(python3 /panorama/app.py); start your script from Python instead of a shell wrapper",
            node_id=spec.node_id,
        )
    launch = await anyio.to_thread.run_sync(prepare_launch, ctx)
    entry_host = launch.root / spec.runtime.entry_name.lstrip("/")
    if not entry_host.is_file():
        raise NodeError(f"entry script {spec.runtime.entry_name} not found in the code package",
                        node_id=spec.node_id)
    isolation = ctx.options.isolation
    ours, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pool = FramePool(spec.node_id)
    server = AppServer(ctx.io, Channel(ours), pool)
    console = _Console(spec.node_id, ctx.logs_dir / "console_output")
    try:
        try:
            proc = _start(ctx, launch, isolation, child)
        finally:
            child.close()
        log.info("app_started", node_id=spec.node_id, pid=proc.pid, python=str(launch.env.python),
                 sandbox="bubblewrap" if isolation.sandbox else "none", network=isolation.network)
        threads = [
            threading.Thread(target=server.serve, name=f"sdk:{spec.node_id}", daemon=True),
            threading.Thread(target=console.pump, args=(proc.stdout, lambda: sys.stdout), daemon=True),
            threading.Thread(target=console.pump, args=(proc.stderr, lambda: sys.stderr), daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            code = await anyio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_stop, proc)
            raise
        finally:
            ours.shutdown(socket.SHUT_RDWR)
            for t in threads:
                await anyio.to_thread.run_sync(t.join, 2.0)
        _outcome(spec.node_id, code, server.exit, proc, console.tail)
    finally:
        ours.close()
        console.close()
        pool.close()


def _stop(proc: Any) -> None:
    """A stop the app did not notice: SIGTERM, SIGKILL after the grace period."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("app_killed", pid=proc.pid, grace_s=STOP_GRACE_S)
            proc.kill()
            proc.wait()
    close = getattr(proc, "close", None)
    if callable(close):
        close()


def _outcome(node_id: str, code: int, said: AppExit | None, proc: Any, tail: list[str]) -> None:
    oom = bool(getattr(proc, "oom_killed", lambda: False)())
    close = getattr(proc, "close", None)
    if callable(close):
        close()
    if said is not None and said.status in ("exhausted", "returned") and code == 0:
        log.info("app_inputs_ended" if said.status == "exhausted" else "app_returned", node_id=node_id)
        return
    if said is not None and said.status == "exited":
        raise NodeError(f"application exited with status {said.code}", node_id=node_id)
    if said is not None and said.status == "raised":
        raise NodeError(f"application raised {said.type}: {said.message}", node_id=node_id)
    if oom:
        raise NodeError("application was killed: it went over its memory limit (--memory)", node_id=node_id)
    if code < 0 or code > 128:  # bubblewrap reports an app ended by signal N as 128 + N, like a shell
        number = -code if code < 0 else code - 128
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        raise NodeError(f"application process was killed by {name}", node_id=node_id)
    last = "\n".join(tail[-10:])
    raise NodeError(f"application process exited with status {code} before it said why"
                    + (f"; its last output:\n{last}" if last else ""), node_id=node_id)
