"""One application instance's OS process: start it, watch it, restart it with back-off, stop it.

The process is ``panoflow run`` (see :func:`instance_command`, the one place its command line is built), in a
session of its own so that only the daemon signals it. When the daemon is root, the process runs as the
unprivileged sandbox uid (it cannot read the daemon's token, the camera registry or the device's cloud
credentials); it inherits none of the daemon's environment, and its secrets (camera URIs with passwords,
parameter values) reach it through a pipe (``--secrets-fd``), never its command line. Its stdout and stderr
are captured into the instance's log files (:class:`~panoflow.daemon.logfiles.OutputRouter`). It is *ready*
once its control API says ``"state": "running"``; a process that exits is restarted after 1 s, doubling to 30
s, reset once a run stayed healthy for 60 s. The first start of a deployment is not retried: its failure (with
the process's last words) is the deployment's failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from panoflow.core.redact import redact_text
from panoflow.daemon.control_client import ControlClient, ControlError
from panoflow.daemon.logfiles import LineSplitter, OutputRouter
from panoflow.exceptions import PanoflowError

__all__ = [
    "LaunchSpec",
    "Supervisor",
    "SupervisorConfig",
    "hand_over",
    "instance_command",
    "instance_secrets",
    "isolation_flags",
    "kill_leftover",
    "process_alive",
]

log = structlog.get_logger("panoflow.daemon")


@dataclass(frozen=True)
class SupervisorConfig:
    start_timeout_s: float = 60.0
    stop_grace_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    healthy_reset_s: float = 60.0
    status_interval_s: float = 1.0
    python: str = sys.executable


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an instance process is started with."""

    instance_id: str
    app_dir: Path
    state_dir: Path
    storage_dir: Path
    tmp_dir: Path
    control: Path
    graph: Path | None = None
    overrides: Path | None = None
    cameras: Mapping[str, Sequence[str]] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    preview: str | None = "127.0.0.1:0"
    #: registered cameras the graph's camera nodes may be named after (name -> URI with credentials)
    registry: Mapping[str, str] = field(default_factory=dict)
    #: (uid, gid) the process runs as (the daemon is root), or None to keep the daemon's
    run_as: tuple[int, int] | None = None
    #: the deployment's further ``panoflow run`` flags (``--network none``, ``--memory 512``,
    #: ``--model-backend``)
    run_args: Sequence[str] = ()
    #: what the sandbox maps for the instance's AWS gateway (ports, hosts, env, files as text), or None
    aws: Mapping[str, Any] | None = None
    #: the capability its preview answers under (``http://127.0.0.1:PORT/KEY/``): other local users cannot
    #: watch
    preview_key: str | None = None


#: variables an instance process keeps from the daemon's environment: locale and numeric-library settings, and
#: which panoflow runs (an OTA update's folder on PYTHONPATH, PANOFLOW_OTA_DIR); never credentials (AWS_*,
#: PIP_*)
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                      "OMP_NUM_THREADS", "PYTHONPATH", "PANOFLOW_OTA_DIR")


def instance_secrets(spec: LaunchSpec) -> bytes:
    """What the instance reads from its ``--secrets-fd``: cameras, parameter values, the registry snapshot."""
    return json.dumps({"cameras": {k: list(v) for k, v in spec.cameras.items()}, "params": dict(spec.params),
                       "registry": dict(spec.registry), "aws": dict(spec.aws) if spec.aws else None,
                       "preview_key": spec.preview_key}).encode()


def instance_command(spec: LaunchSpec, python: str = sys.executable,
                     secrets_fd: int | None = None) -> list[str]:
    """The command line of an instance process (``panoflow run``, JSON logs on stderr): no secret on it."""
    cmd = [python, "-m", "panoflow", "--log-format", "json", "run", str(spec.app_dir)]
    if spec.graph is not None:
        cmd += ["--graph", str(spec.graph)]
    if spec.overrides is not None:
        cmd += ["--overrides", str(spec.overrides)]
    if secrets_fd is not None:
        cmd += ["--secrets-fd", str(secrets_fd)]
    cmd += ["--state-dir", str(spec.state_dir), "--storage-dir", str(spec.storage_dir),
            "--instance-id", spec.instance_id, "--control", f"unix:{spec.control}", *spec.run_args]
    if spec.preview:
        cmd += ["--preview", spec.preview]
    return cmd


def isolation_flags(isolation: Mapping[str, Any]) -> list[str]:
    """``panoflow run`` flags for a deployment's isolation settings (checked when the deployment was made)."""
    flags = []
    if isolation.get("network") in ("nat", "none"):
        flags += ["--network", str(isolation["network"])]
    if isinstance(isolation.get("memory_mib"), int):
        flags += ["--memory", str(isolation["memory_mib"])]
    if isinstance(isolation.get("cpus"), (int, float)):
        flags += ["--cpus", str(isolation["cpus"])]
    return flags


def _write_all(fd: int, data: bytes) -> None:
    """Hand the secrets over and close the pipe (a process that died early just does not read them)."""
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass


def _prepare_run(spec: LaunchSpec) -> None:
    """A run's folders: an empty temporary folder (its files do not outlive a run), no stale control socket,
    and the instance's own folders handed to the uid it runs as."""
    shutil.rmtree(spec.tmp_dir, ignore_errors=True)
    spec.tmp_dir.mkdir(parents=True)
    spec.control.unlink(missing_ok=True)
    if spec.run_as is not None:
        hand_over(spec, *spec.run_as)


def hand_over(spec: LaunchSpec, uid: int, gid: int) -> None:
    """Give the instance's own folders (state, temporary files, storage, its control socket's folder) to the
    unprivileged uid it runs as; everything else of the daemon's stays out of its reach."""
    for folder in (spec.state_dir, spec.tmp_dir, spec.storage_dir, spec.control.parent):
        folder.mkdir(parents=True, exist_ok=True)
        for path, dirs, files in os.walk(folder):
            os.chown(path, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(path, name), uid, gid, follow_symlinks=False)
    if spec.overrides is not None and spec.overrides.exists():  # 0600, and now the instance's alone to read
        os.chown(spec.overrides, uid, gid)


def _redacted(cmd: Sequence[str]) -> str:
    """The command line for a log line, credentials out (``--camera=node=rtsp://user:***@host/...``)."""
    return " ".join(redact_text(a) for a in cmd)


def kill_leftover(pid_file: Path, instance_id: str) -> bool:
    """Kill an instance process a previous daemon left behind (it died without stopping it). True if one
    was."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    if instance_id.encode() not in cmdline:
        return False  # the pid was reused by something else
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


class Supervisor:
    """Runs one instance until :meth:`stop`. ``deploying``: the first start is a deployment's (not
    retried)."""

    def __init__(self, spec_factory: Callable[[], LaunchSpec], router: OutputRouter, config: SupervisorConfig,
                 *, instance_id: str, restarts: int = 0, deploying: bool = True,
                 signals: Callable[[], Mapping[str, str]] = dict,
                 on_restart: Callable[[int], None] | None = None, pid_file: Path | None = None):
        self._spec_factory = spec_factory
        self.router = router
        self.config = config
        self.instance_id = instance_id
        self.restarts = restarts
        self.deploying = deploying
        self._signals = signals
        self._on_restart = on_restart
        self._pid_file = pid_file
        self.log = log.bind(instance_id=instance_id)
        #: starting | running | backoff | stopping | stopped | failed
        self.state = "starting"
        self.pid: int | None = None
        self.status: dict[str, Any] | None = None
        self.status_ok = False
        self.last_exit_code: int | None = None
        self.ready_at: float | None = None
        self.next_start_at: float | None = None
        self.failure: str | None = None
        self.control: ControlClient | None = None
        self._first = anyio.Event()
        self._first_ok = False
        self._crashed = False  # the last run ended on its own and no run has been ready since
        self._start_timed_out = False
        self._stopping = False
        self._wake = anyio.Event()
        self._exited = anyio.Event()
        self._stop_requested = anyio.Event()
        self._done = anyio.Event()
        self._proc: anyio.abc.Process | None = None

    # ------------------------------------------------------------------ for the deployer and the API
    async def wait_first(self) -> tuple[bool, str]:
        """Wait for the first start's outcome: ``(True, "")`` once running, else ``(False, reason)``."""
        await self._first.wait()
        return self._first_ok, self.failure or ""

    @property
    def health(self) -> str:
        if self.state == "running" and self.status_ok and self.status is not None:
            nodes = self.status.get("nodes") or {}
            if any(n.get("status") == "ERROR" for n in nodes.values() if isinstance(n, dict)):
                return "ERROR"
            return "RUNNING"
        if self.state == "backoff" or (self.state in ("starting", "running") and self._crashed):
            return "ERROR"
        return "NOT_AVAILABLE"

    @property
    def preview_url(self) -> str | None:
        if self.state != "running" or not self.status:
            return None
        url = self.status.get("preview_url")
        return url if isinstance(url, str) and url.startswith("http://") else None

    def process_info(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "state": self.state,
            "pid": self.pid if self.state in ("starting", "running", "stopping") else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "uptime_s": round(now - self.ready_at, 1) if self.ready_at and self.state == "running" else None,
            "next_restart_in_s": (round(max(0.0, self.next_start_at - now), 1)
                                  if self.next_start_at and self.state == "backoff" else None),
        }

    # ------------------------------------------------------------------ life
    async def run(self) -> None:
        """Start, watch, restart, until stopped (or until a deployment's first start failed)."""
        try:
            await self._loop(self.config.backoff_initial_s)
        except Exception as exc:  # a bug, or the disk is full: this instance stops, the daemon carries on
            self.log.exception("supervisor_failed")
            self.failure = f"internal error: {type(exc).__name__}: {exc}"
            self.state = "failed"
            if self._proc is not None:
                self._signal(signal.SIGKILL, group=True)
        finally:
            self.state = "failed" if self.state == "failed" else "stopped"
            self.pid = None
            if not self._first.is_set():
                self.failure = self.failure or "stopped before it was running"
                self._first.set()
            if self.control is not None:
                with anyio.CancelScope(shield=True):
                    await self.control.close()
            self._done.set()

    async def _loop(self, backoff: float) -> None:
        while not self._stopping:
            ready, code, reason = await self._run_once()
            self.last_exit_code = code
            if self.deploying and not self._first.is_set() and code == 0:
                # it ran to completion (every source exhausted) before the first status poll: that deployment
                # worked; the appliance's policy of restarting an application that exits applies from here on
                self._first_ok = True
                self._first.set()
            if self.deploying and not self._first.is_set():
                self.failure = reason
                self.state = "failed"
                self._first.set()
                return
            if self._stopping:
                break
            healthy_for = time.monotonic() - self.ready_at if ready and self.ready_at else 0.0
            if healthy_for >= self.config.healthy_reset_s:
                backoff = self.config.backoff_initial_s
            self._crashed = True
            self.restarts += 1
            if self._on_restart is not None:
                self._on_restart(self.restarts)
            self.state = "backoff"
            self.next_start_at = time.monotonic() + backoff
            self.router.event("instance_restarting", level="warning", instance_id=self.instance_id,
                              exit_code=code, restarts=self.restarts, backoff_s=backoff, reason=reason)
            self.log.warning("instance_restarting", exit_code=code, restarts=self.restarts, backoff_s=backoff)
            with anyio.move_on_after(backoff):
                await self._wake.wait()
            backoff = min(backoff * 2, self.config.backoff_max_s)

    async def stop(self) -> None:
        """SIGTERM the process, SIGKILL it after the grace period; return once it and :meth:`run` are done."""
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        await self._done.wait()

    async def _terminator(self, proc: anyio.abc.Process) -> None:
        """Runs beside each process: once a stop is requested, SIGTERM, then SIGKILL after the grace
        period."""
        await self._stop_requested.wait()
        self.state = "stopping"
        self._signal(signal.SIGTERM, group=False)
        with anyio.move_on_after(self.config.stop_grace_s):
            await self._exited.wait()
        if proc.returncode is None:
            self.log.warning("instance_killed", grace_s=self.config.stop_grace_s)
            self._signal(signal.SIGKILL, group=True)

    def _signal(self, sig: signal.Signals, *, group: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def _run_once(self) -> tuple[bool, int | None, str]:
        """One process, from start to exit: ``(was ready, exit code, reason it ended)``."""
        try:
            spec = self._spec_factory()
        except PanoflowError as exc:  # e.g. a registered camera was deleted since the deployment
            return False, None, f"cannot start the instance: {exc}"
        # file work in a worker thread: walking an instance's folders (its application environment holds
        # thousands of files) must not stall the event loop serving every other instance's status and the API
        await anyio.to_thread.run_sync(_prepare_run, spec)
        read_end, write_end = os.pipe()
        cmd = instance_command(spec, self.config.python, secrets_fd=read_end)
        env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
        env.update(PYTHONUNBUFFERED="1", TMPDIR=str(spec.tmp_dir), HOME=str(spec.tmp_dir))
        self.state, self.status, self.status_ok, self.ready_at = "starting", None, False, None
        self._exited = anyio.Event()
        self._start_timed_out = False
        self.router.recent.clear()  # a failure's reason is this run's last words
        # None: anyio's defaults (the daemon's own user and groups)
        user, group = spec.run_as if spec.run_as else (None, None)
        try:
            proc = await anyio.open_process(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                                            pass_fds=(read_end,), user=user, group=group,
                                            extra_groups=[] if spec.run_as else None)
        except OSError as exc:
            os.close(write_end)
            return False, None, f"cannot start the instance process: {exc}"
        finally:
            os.close(read_end)
        await anyio.to_thread.run_sync(_write_all, write_end, instance_secrets(spec))
        self._proc, self.pid = proc, proc.pid
        if self._pid_file is not None:
            self._pid_file.write_text(f"{proc.pid}\n")
        self.router.event("instance_started", instance_id=self.instance_id, pid=proc.pid)
        self.log.info("instance_started", pid=proc.pid, command=_redacted(cmd))
        if self.control is not None:
            await self.control.close()
        self.control = ControlClient(spec.control)
        timed_out = False
        pumps_done = [anyio.Event(), anyio.Event()]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, proc.stdout, "stdout", pumps_done[0])
            tg.start_soon(self._pump, proc.stderr, "stderr", pumps_done[1])
            tg.start_soon(self._terminator, proc)
            async with anyio.create_task_group() as watch:
                watch.start_soon(self._watch, watch.cancel_scope)
                code = await proc.wait()
                timed_out = self.state == "starting" and self._start_timed_out
                watch.cancel_scope.cancel()
            self._exited.set()
            with anyio.move_on_after(2.0):
                for ev in pumps_done:
                    await ev.wait()
            tg.cancel_scope.cancel()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the instance left behind in its session
        except (ProcessLookupError, PermissionError):
            pass
        if self._pid_file is not None:
            self._pid_file.unlink(missing_ok=True)
        was_ready = self.ready_at is not None
        self.status_ok = False
        if timed_out:
            reason = f"the instance did not report running within {self.config.start_timeout_s:g} s"
        else:
            what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            reason = f"the instance process {what}" + ("" if was_ready else " before it was running")
        last = [line for line in self.router.recent if line.strip()]
        if not was_ready and last:
            reason += ":\n" + "\n".join(last[-20:])
        self.router.event("instance_exited", level="info" if self._stopping else "error",
                          instance_id=self.instance_id, exit_code=code, pid=proc.pid)
        self.log.info("instance_exited", exit_code=code, pid=proc.pid, stopping=self._stopping)
        self._proc = None
        return was_ready, code, reason

    async def _watch(self, scope: anyio.CancelScope) -> None:
        """Poll the control API: readiness first (or the start-up timeout), then status every second."""
        assert self.control is not None
        deadline = time.monotonic() + self.config.start_timeout_s
        while self.ready_at is None:
            try:
                status = await self.control.status()
            except ControlError:
                status = None
            if status is not None and status.get("state") == "running":
                self.status, self.status_ok = status, True
                self.ready_at = time.monotonic()
                self.state = "running"
                self._crashed = False
                self.log.info("instance_running")
                await self._apply_signals()
                if not self._first.is_set():
                    self._first_ok = True
                    self._first.set()
                break
            if time.monotonic() > deadline:
                self._start_timed_out = True
                self.log.warning("instance_start_timeout", timeout_s=self.config.start_timeout_s)
                self._signal(signal.SIGKILL, group=True)
                return
            await anyio.sleep(0.1)
        while True:
            await anyio.sleep(self.config.status_interval_s)
            try:
                self.status, self.status_ok = await self.control.status(), True
            except ControlError:
                self.status_ok = False

    async def _apply_signals(self) -> None:
        """Signals given before a restart hold after it (the daemon keeps them as desired state)."""
        assert self.control is not None
        for node, sig in sorted(self._signals().items()):
            try:
                await self.control.signal(node, sig)
            except ControlError as exc:
                self.log.warning("signal_not_applied", node=node, signal=sig, error=str(exc))

    async def _pump(self, stream: Any, name: str, done: anyio.Event) -> None:
        splitter = LineSplitter()
        try:
            async for chunk in stream:
                for line in splitter.feed(chunk):
                    self.router.route(line, name)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            for line in splitter.flush():
                self.router.route(line, name)
            done.set()
