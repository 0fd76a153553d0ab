"""The device's application instances: deploy, replace, remove, signal, restore after a restart.

A deployment is validated with panoflow's manifest loader and graph resolver *before* anything starts; its
hostPorts are checked against every other instance's; then its process starts. Deploying a name that already
runs replaces it: the new version starts, and the old one stops only once the new one runs (when both claim
the same hostPort, the old one must let go of it first, and comes back if the new one fails). The new version
is reported ``DEPLOYMENT_SUCCEEDED`` only once the old one is removed (its process has exited and the API no
longer lists it), so whoever waits for that status never sees both. Deployments run one at a time. Everything
an instance needs to come back after a restart of the daemon is in ``instance.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from panoflow.daemon import model as m
from panoflow.daemon.camera_refs import resolve_camera
from panoflow.daemon.logfiles import OutputRouter, RotatingWriter
from panoflow.daemon.model import InstanceRecord
from panoflow.daemon.store import StatePaths, atomic_write_json, read_json
from panoflow.daemon.supervisor import (
    LaunchSpec,
    Supervisor,
    SupervisorConfig,
    isolation_flags,
    kill_leftover,
)
from panoflow.exceptions import ManifestError, PanoflowError

__all__ = ["Conflict", "DeployError", "Manager", "ManagerConfig", "NotFound", "QuotaExceeded"]

log = structlog.get_logger("panoflow.daemon")


class DeployError(PanoflowError):
    """Why a deployment failed (its text becomes the instance's status description)."""


class NotFound(PanoflowError, LookupError):
    pass


class QuotaExceeded(PanoflowError):
    pass


class Conflict(PanoflowError):
    pass


def _default_run_as() -> tuple[int, int] | None:
    """A root daemon runs instances as the unprivileged sandbox uid; any other daemon as itself."""
    from panoflow.isolation.spec import DEFAULT_SANDBOX_UID

    return (DEFAULT_SANDBOX_UID, DEFAULT_SANDBOX_UID) if os.geteuid() == 0 else None


@dataclass(frozen=True)
class ManagerConfig:
    max_instances: int = 10
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    cameras_file: Path | None = None  # the camera registry; default STATE_DIR/cameras.json
    #: (uid, gid) instance processes run as; default: the sandbox uid when the daemon is root
    run_as: tuple[int, int] | None = field(default_factory=_default_run_as)
    #: the device's AWS settings for its apps (panoflow.aws.AwsSettings; None: apps get no AWS access)
    aws: Any = None


@dataclass(frozen=True)
class _Plan:
    host_ports: frozenset[int]


def _socket_dir(state_root: Path) -> Path:
    """Where the instances' control sockets live: a short path (unix socket paths are limited to 107 bytes),
    the same for the same state directory so that a daemon that was killed outright leaves no litter behind.
    Only a private folder of ours is reused; anything else there makes way for a fresh random one."""
    digest = hashlib.sha256(str(state_root).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"panoflow-{os.getuid()}-{digest}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o066:
            return Path(tempfile.mkdtemp(prefix="panoflow-sockets-"))
        for stale in path.glob("*.sock"):
            stale.unlink(missing_ok=True)
    return path


class Manager:
    def __init__(self, paths: StatePaths, config: ManagerConfig | None = None):
        self.paths = paths
        self.config = config or ManagerConfig()
        self.records: dict[str, InstanceRecord] = {}
        self.supervisors: dict[str, Supervisor] = {}
        self.writers: dict[Path, RotatingWriter] = {}  # log files, shared by the versions of an application
        self._lock = anyio.Lock()  # one deployment or removal at a time
        self._tg: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._sockets = Path()  # set by start()
        self.gateways: dict[str, Any] = {}  # instance id -> its running AWS gateway (panoflow.aws.AwsGateway)

    # ------------------------------------------------------------------ lookup
    def find(self, ref: str) -> InstanceRecord | None:
        """An instance by id, else the instance that a name stands for (the running one, else the newest)."""
        if ref in self.records:
            return self.records[ref]
        named = [r for r in self.records.values() if r.name == ref]
        if not named:
            return None
        live = [r for r in named if r.status == m.DEPLOYMENT_SUCCEEDED]
        return max(live or named, key=lambda r: (r.deployed_at or 0.0, r.created))

    def get(self, ref: str) -> InstanceRecord:
        rec = self.find(ref)
        if rec is None:
            raise NotFound(f"no application instance {ref!r}")
        return rec

    def active(self) -> list[InstanceRecord]:
        return [r for r in self.records.values() if r.status in m.ACTIVE_STATUSES and r.desired == "RUNNING"]

    def view(self, rec: InstanceRecord) -> dict[str, Any]:
        """The instance as the API shows it: record, health, process and last known node/stream status."""
        sup = self.supervisors.get(rec.instance_id)
        out = rec.public()
        out["health_status"] = sup.health if sup is not None and rec.status == m.DEPLOYMENT_SUCCEEDED else (
            m.NOT_AVAILABLE)
        out["process"] = sup.process_info() if sup is not None else {
            "state": "stopped", "pid": None, "restarts": rec.restarts, "last_exit_code": None,
            "uptime_s": None, "next_restart_in_s": None}
        status = sup.status if sup is not None and sup.state == "running" else None
        out["nodes"] = self.nodes(rec)
        out["streams"] = (status or {}).get("streams") or {}
        out["preview_url"] = sup.preview_url if sup is not None else None
        out["errors"] = (status or {}).get("errors") or []
        return out

    def nodes(self, rec: InstanceRecord) -> list[dict[str, Any]]:
        sup = self.supervisors.get(rec.instance_id)
        status = sup.status if sup is not None and sup.state == "running" and sup.status_ok else None
        nodes = (status or {}).get("nodes") or {}
        return [{"node_id": name, "kind": info.get("kind", ""),
                 "current_status": info.get("status", m.NOT_AVAILABLE)}
                for name, info in sorted(nodes.items()) if isinstance(info, dict)]

    def display_owner(self) -> InstanceRecord | None:
        """The most recently deployed running instance with a display: it owns the device's HDMI output."""
        owners = [r for r in self.records.values()
                  if (sup := self.supervisors.get(r.instance_id)) is not None and sup.preview_url]
        return max(owners, key=lambda r: r.deployed_at or 0.0, default=None)

    # ------------------------------------------------------------------ start and stop
    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Load every instance from disk and bring back those that were running."""
        self._tg = tg
        self._sockets = _socket_dir(self.paths.root)
        if self.config.run_as is not None:
            # Instances run unprivileged: they may pass through the state folder and the socket folder to
            # their own subfolders (archives are world-readable), but never list them; token, registry and
            # cloud credentials stay 0600.
            os.chmod(self.paths.root, 0o711)
            os.chmod(self._sockets, 0o711)
            from panoflow.isolation.cgroups import delegate

            delegate(*self.config.run_as)  # so instances can put their apps' memory and CPU limits in place
        records = []
        for path in sorted(self.paths.instances.glob("*/instance.json")):
            try:
                records.append(InstanceRecord.from_json(read_json(path)))
            except (OSError, ValueError, TypeError) as exc:
                log.error("instance_unreadable", path=str(path), error=str(exc))
        for rec in records:
            self.records[rec.instance_id] = rec
            if kill_leftover(self._dir(rec) / "pid", rec.instance_id):
                log.warning("leftover_instance_killed", instance_id=rec.instance_id)
        for rec in records:
            if rec.status == m.DEPLOYMENT_IN_PROGRESS and rec.deployed_at is not None:
                # it ran, and the daemon stopped while the version it replaces was being removed (removed
                # below)
                self._set(rec, m.DEPLOYMENT_SUCCEEDED, "running")
            elif rec.status in (m.DEPLOYMENT_PENDING, m.DEPLOYMENT_IN_PROGRESS):
                self._set(rec, m.DEPLOYMENT_FAILED, "the daemon stopped before this deployment finished")
            elif rec.status in (m.REMOVAL_PENDING, m.REMOVAL_IN_PROGRESS) or rec.desired == "REMOVED":
                await self._remove(rec)
        live = sorted((r for r in self.records.values() if r.status == m.DEPLOYMENT_SUCCEEDED),
                      key=lambda r: r.deployed_at or 0.0)
        newest: dict[str, InstanceRecord] = {r.name: r for r in live}
        for rec in live:
            if newest[rec.name] is not rec:  # the daemon stopped halfway through a replacement
                await self._remove(rec)
            elif rec.desired == "RUNNING":
                log.info("instance_restoring", instance_id=rec.instance_id, name=rec.name)
                self._supervise(rec, deploying=False)

    async def stop(self) -> None:
        """Stop every instance (their desired state stays RUNNING, so the next start brings them back)."""
        self._closing = True
        async with anyio.create_task_group() as tg:
            for sup in list(self.supervisors.values()):
                tg.start_soon(sup.stop)
        for w in self.writers.values():
            w.close()
        if self._tg is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)

    # ------------------------------------------------------------------ deploy
    def create(self, *, name: str, archive: str, graph: str | None, overrides: dict[str, Any] | None,
               cameras: dict[str, list[str]], params: dict[str, str], description: str = "",
               isolation: dict[str, Any] | None = None, aws: dict[str, Any] | None = None,
               model_backends: dict[str, str] | None = None) -> InstanceRecord:
        """Record a new deployment (DEPLOYMENT_PENDING) and start deploying it in the background."""
        if self._tg is None or self._closing:
            raise Conflict("the daemon is starting or stopping; try again in a moment")
        if not self.paths.archive(archive).is_dir():
            raise NotFound(f"no uploaded application archive {archive} (POST it to /archives first)")
        replacing = any(r.name == name for r in self.active())
        if not replacing and len({r.name for r in self.active()}) >= self.config.max_instances:
            raise QuotaExceeded(f"this device already runs {self.config.max_instances} application "
                                "instances, its maximum; remove one first")
        rec = InstanceRecord(instance_id=m.new_instance_id(), name=name, archive=archive, graph=graph,
                             cameras=cameras, params=params, has_overrides=overrides is not None,
                             description=description, isolation=dict(isolation or {}), aws=dict(aws or {}),
                             model_backends=dict(model_backends or {}))
        self._dir(rec).mkdir(parents=True)
        if overrides is not None:
            atomic_write_json(self._dir(rec) / "overrides.json", overrides)
        self.records[rec.instance_id] = rec
        self._save(rec)
        log.info("deployment_requested", instance_id=rec.instance_id, name=name, archive=archive)
        self._tg.start_soon(self._deploy, rec)
        return rec

    async def _deploy(self, rec: InstanceRecord) -> None:
        async with self._lock:
            if rec.status != m.DEPLOYMENT_PENDING:  # removed while it waited
                return
            try:
                await self._deploy_locked(rec)
            # a bug, or the disk is full: this deployment fails, the daemon carries on
            except Exception as exc:
                log.exception("deployment_crashed", instance_id=rec.instance_id)
                self._fail(rec, f"internal error: {type(exc).__name__}: {exc}")

    async def _deploy_locked(self, rec: InstanceRecord) -> None:
        self._set(rec, m.DEPLOYMENT_IN_PROGRESS, "validating the application")
        try:
            plan = await anyio.to_thread.run_sync(self._validate, rec)
            old = next((r for r in self.active() if r.name == rec.name and r is not rec
                        and r.status == m.DEPLOYMENT_SUCCEEDED), None)
            self._check_capacity(rec, old, plan)
        except DeployError as exc:
            self._fail(rec, str(exc))
            return
        rec.host_ports = sorted(plan.host_ports)
        rec.replaces = old.instance_id if old is not None else None
        handover = old is not None and bool(set(old.host_ports) & plan.host_ports)
        if handover:
            assert old is not None
            log.info("hostport_handover", old=old.instance_id, new=rec.instance_id, ports=rec.host_ports)
            await self._stop_process(old)
        self._set(rec, m.DEPLOYMENT_IN_PROGRESS, "starting")
        sup = self._supervise(rec, deploying=True)
        ok, reason = await sup.wait_first()
        if self._closing:  # the daemon is stopping: the next start reports this deployment as failed
            return
        if not ok:
            await sup.stop()
            self.supervisors.pop(rec.instance_id, None)
            self._fail(rec, reason)
            if handover and old is not None and old.desired == "RUNNING":
                self._supervise(old, deploying=False)
            return
        rec.deployed_at = time.time()  # it runs (a restart of the daemon from here on brings it back)
        if old is not None:  # the replaced version is gone before this one is reported done
            self._set(rec, m.DEPLOYMENT_IN_PROGRESS, "running; removing the replaced instance "
                                                     f"{old.instance_id}")
            await self._remove(old)
        self._set(rec, m.DEPLOYMENT_SUCCEEDED, "running")
        log.info("deployment_succeeded", instance_id=rec.instance_id, name=rec.name)
        self._forget_failures(rec.name, keep=rec)

    def _fail(self, rec: InstanceRecord, reason: str) -> None:
        self._set(rec, m.DEPLOYMENT_FAILED, reason)
        log.error("deployment_failed", instance_id=rec.instance_id, name=rec.name, reason=reason)
        self._forget_failures(rec.name, keep=rec)

    def _forget_failures(self, name: str, keep: InstanceRecord) -> None:
        """An application keeps the record of its latest failed deployment only (none once one succeeds)."""
        for old in [r for r in self.records.values() if r.name == name and r is not keep
                    and r.status == m.DEPLOYMENT_FAILED]:
            self.records.pop(old.instance_id, None)
            self.paths.remove_instance(old.instance_id)

    def _validate(self, rec: InstanceRecord) -> _Plan:
        """Load and check the manifests, bind cameras and parameters (in a worker thread)."""
        from panoflow.core.graph import resolve
        from panoflow.core.manifest import load_application

        app_dir = self.paths.archive(rec.archive)
        graph = self._graph_path(rec)
        overrides = self._dir(rec) / "overrides.json" if rec.has_overrides else None
        try:
            app = load_application(app_dir, graph=graph, overrides=overrides)
            resolved = resolve(app, cameras=self._cameras(rec), params=rec.params)
        except ManifestError as exc:
            raise DeployError(str(exc).replace(str(self._dir(rec)) + "/", "")) from None
        except PanoflowError as exc:
            raise DeployError(str(exc)) from None
        if len(resolved.code_nodes) != 1:
            raise DeployError(f"the application has {len(resolved.code_nodes)} code nodes; panoflow runs "
                              "exactly one business-logic node per application, as the Panorama appliance "
                              "does")
        ports = {host for spec in resolved.code_nodes.values() for _container, host in spec.inbound_ports}
        return _Plan(frozenset(ports))

    def _check_capacity(self, rec: InstanceRecord, old: InstanceRecord | None, plan: _Plan) -> None:
        others = [r for r in self.active() if r is not rec and r is not old and r.name != rec.name]
        if len({r.name for r in others}) >= self.config.max_instances:
            raise DeployError(f"this device already runs {self.config.max_instances} application instances, "
                              "its maximum")
        for other in others:
            taken = plan.host_ports & set(other.host_ports)
            if taken:
                port = min(taken)
                raise DeployError(f"hostPort {port} is already claimed by application instance "
                                  f"{other.instance_id} ({other.name}); choose another hostPort (8000-9000) "
                                  "in the overrides' networkRoutingRules, or remove that instance first")

    # ------------------------------------------------------------------ remove and signal
    async def remove(self, ref: str) -> list[InstanceRecord]:
        """Remove an instance (by id), or every instance of an application (by name). Returns what was
        removed."""
        if ref in self.records:
            targets = [self.records[ref]]
        else:
            targets = [r for r in self.records.values() if r.name == ref]
        if not targets:
            raise NotFound(f"no application instance {ref!r}")
        for rec in targets:
            rec.desired = "REMOVED"
            if rec.status == m.DEPLOYMENT_PENDING:
                rec.status = m.REMOVAL_PENDING
            self._save(rec)
        async with self._lock:
            for rec in targets:
                await self._remove(rec)
        return targets

    async def _remove(self, rec: InstanceRecord) -> None:
        rec.desired = "REMOVED"
        self._set(rec, m.REMOVAL_IN_PROGRESS, "stopping")
        await self._stop_process(rec)
        rec.status, rec.status_description = m.REMOVAL_SUCCEEDED, "removed"
        self.records.pop(rec.instance_id, None)
        self.paths.remove_instance(rec.instance_id)
        log.info("instance_removed", instance_id=rec.instance_id, name=rec.name)
        # its last version: storage and logs go
        if not any(r.name == rec.name for r in self.records.values()):
            for path in [p for p in self.writers if self.paths.app(rec.name) in p.parents]:
                self.writers.pop(path).close()
            self.paths.remove_app(rec.name)

    async def _stop_process(self, rec: InstanceRecord) -> None:
        sup = self.supervisors.pop(rec.instance_id, None)
        if sup is not None:
            await sup.stop()

    async def signal(self, ref: str, node: str, signal: str) -> tuple[int, dict[str, Any]]:
        rec = self.get(ref)
        sup = self.supervisors.get(rec.instance_id)
        if sup is None or sup.control is None or sup.state != "running":
            raise Conflict(f"application instance {rec.instance_id} ({rec.name}) is not running")
        from panoflow.daemon.control_client import ControlError

        try:
            code, body = await sup.control.signal(node, signal)
        except ControlError as exc:
            raise Conflict(f"application instance {rec.instance_id} did not answer: {exc}") from None
        if code == 200:
            rec.signals[node] = signal
            self._save(rec)
            log.info("node_signalled", instance_id=rec.instance_id, node=node, signal=signal)
            try:
                sup.status = await sup.control.status()  # so that a status read right after shows the change
            except ControlError:
                pass
        return code, body

    # ------------------------------------------------------------------ helpers
    def _dir(self, rec: InstanceRecord) -> Path:
        return self.paths.instance(rec.instance_id)

    def _graph_path(self, rec: InstanceRecord) -> Path | None:
        if not rec.graph:
            return None
        app_dir = self.paths.archive(rec.archive)
        path = (app_dir / rec.graph).resolve()
        if app_dir.resolve() not in path.parents:
            raise DeployError(f"graph {rec.graph!r} is outside the application folder")
        return path

    def _registry(self) -> Path:
        return self.config.cameras_file or self.paths.cameras

    def _cameras(self, rec: InstanceRecord) -> dict[str, list[str]]:
        """Each value resolved now (an unknown name fails the deployment). The URIs, passwords included, reach
        the instance through its secrets pipe, never its command line or environment."""
        return {node: [resolve_camera(v, self._registry()) for v in values] for node,
                values in rec.cameras.items()}

    def _graph_names(self, rec: InstanceRecord, *, packages: bool = False) -> set[str]:
        """The names of the instance's graph nodes (and, with ``packages``, of their packages), read from its
        graph.json without validating it (that is the deployment's job)."""
        names: set[str] = set()
        app_dir = self.paths.archive(rec.archive)
        graphs = [self._graph_path(rec)] if rec.graph else sorted(app_dir.glob("graphs/*/graph.json"))
        for graph in graphs:
            try:
                nodes = read_json(graph).get("nodeGraph", {}).get("nodes", []) if graph else []
            except (OSError, ValueError, AttributeError):
                continue
            for node in nodes if isinstance(nodes, list) else []:
                if isinstance(node, dict):
                    names.add(str(node.get("name", "")))
                    if packages:
                        names.add(str(node.get("interface", "")).partition("::")[2].partition(".")[0])
        return names - {""}

    def _registry_snapshot(self, rec: InstanceRecord) -> dict[str, str]:
        """The registered cameras the instance's graph may name (camera nodes named like a registered camera,
        or whose package is): the instance cannot read the registry itself."""
        from panoflow.camera_registry import CameraRegistry

        names = self._graph_names(rec, packages=True)
        try:
            cameras = CameraRegistry(self._registry()).list()
        except PanoflowError:
            return {}
        return {c.name: c.uri() for c in cameras if c.name in names}

    def _launch_spec(self, rec: InstanceRecord) -> Callable[[], LaunchSpec]:
        def build() -> LaunchSpec:
            d = self._dir(rec)
            return LaunchSpec(
                instance_id=rec.instance_id, app_dir=self.paths.archive(rec.archive), state_dir=d / "state",
                storage_dir=self.paths.storage(rec.name), tmp_dir=d / "tmp",
                control=self._sockets / rec.instance_id.rsplit("-", 1)[-1] / "control.sock",
                graph=self._graph_path(rec), overrides=d / "overrides.json" if rec.has_overrides else None,
                cameras=self._cameras(rec), params=dict(rec.params), registry=self._registry_snapshot(rec),
                preview_key=secrets.token_urlsafe(24),
                run_as=self.config.run_as, aws=self._aws_for(rec),
                run_args=[*isolation_flags(rec.isolation),
                                *(f"--model-backend={node}={name}" for node,
                                  name in sorted(rec.model_backends.items()))],
            )
        return build

    def _supervise(self, rec: InstanceRecord, *, deploying: bool) -> Supervisor:
        self.paths.storage(rec.name).mkdir(parents=True, exist_ok=True)
        # only the graph's nodes get a log file of their own (an app printing made-up "[name]" prefixes does
        # not)
        router = OutputRouter(self.paths.app_logs(rec.name), self.writers,
                              nodes=self._graph_names(rec) or None)

        def on_restart(count: int) -> None:
            rec.restarts = count
            self._save(rec)

        sup = Supervisor(self._launch_spec(rec), router, self.config.supervisor, instance_id=rec.instance_id,
                         restarts=rec.restarts, deploying=deploying, signals=lambda: dict(rec.signals),
                         on_restart=on_restart, pid_file=self._dir(rec) / "pid")
        self.supervisors[rec.instance_id] = sup
        assert self._tg is not None
        self._tg.start_soon(self._run_with_gateway, rec, sup)
        return sup

    async def _run_with_gateway(self, rec: InstanceRecord, sup: Supervisor) -> None:
        """Run the instance with its AWS gateway beside it, in the daemon (which holds the device's
        credentials; the instance, unprivileged, gets only what its sandbox maps: docs/aws.md)."""
        if self.config.aws is None:
            await sup.run()
            return
        from panoflow.aws.gateway import AwsGateway

        settings = self.config.aws
        if rec.aws.get("role_arn"):
            settings = dataclasses.replace(settings, role_arn=rec.aws["role_arn"])
        gateway = AwsGateway(settings, instance_id=rec.instance_id, state_dir=self.paths.root,
                             require_credentials=False)
        await gateway.start()
        self.gateways[rec.instance_id] = gateway
        try:
            await sup.run()
        finally:
            self.gateways.pop(rec.instance_id, None)
            with anyio.CancelScope(shield=True):
                await gateway.stop()

    def _aws_for(self, rec: InstanceRecord) -> dict[str, Any] | None:
        """What the instance's sandbox maps for its gateway (files as text: the instance cannot read the
        daemon's state folder)."""
        gateway = self.gateways.get(rec.instance_id)
        if gateway is None:
            return None
        box = gateway.sandbox()
        return {"ports": [list(p) for p in box.ports], "hosts": list(box.hosts), "env": dict(box.env),
                "files": {inside: host.read_text() for host, inside in box.files}}

    def _set(self, rec: InstanceRecord, status: str, description: str) -> None:
        rec.status, rec.status_description = status, description
        self._save(rec)

    def _save(self, rec: InstanceRecord) -> None:
        rec.updated = m.now_iso()
        if rec.instance_id in self.records and self._dir(rec).is_dir():
            atomic_write_json(self._dir(rec) / "instance.json", rec.to_json())
