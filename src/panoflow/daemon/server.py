"""``panoflow serve``: the device daemon's life. State first, then instances, then the HTTP endpoint, then the
cloud connector (with ``--control-plane``); on SIGTERM or SIGINT the reverse (instances stop but stay desired,
so the next start brings them back). A restart asked for by the connector (a REBOOT or OTA job) stops the same
way and
:func:`serve` returns a :class:`Restart` for the caller to re-execute the daemon with."""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from aiohttp import web

from panoflow.console.device import mount_device_console
from panoflow.daemon.api import DEFAULT_MAX_UPLOAD, Api
from panoflow.daemon.logfiles import tail_lines
from panoflow.daemon.manager import Manager, ManagerConfig
from panoflow.daemon.store import StatePaths, atomic_write_json, ensure_token, read_json
from panoflow.daemon.supervisor import SupervisorConfig
from panoflow.exceptions import PanoflowError

if TYPE_CHECKING:
    from panoflow.daemon.device import DeviceContext

__all__ = ["DEFAULT_LISTEN", "DaemonConfig", "Restart", "serve"]

log = structlog.get_logger("panoflow.daemon")

#: the daemon's default address (outside 8000-9000, the range of apps' hostPorts)
DEFAULT_LISTEN = ("127.0.0.1", 7700)


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    host: str = DEFAULT_LISTEN[0]
    port: int = DEFAULT_LISTEN[1]
    max_instances: int = 10
    max_upload: int = DEFAULT_MAX_UPLOAD
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    cameras_file: Path | None = None  # the camera registry; default STATE_DIR/cameras.json
    control_plane: str | None = None  # join this control plane (docs/device-protocol.md)
    provision: Path | None = None  # the provisioning bundle, needed until the device has claimed itself
    cloud_connector: str = "http"  # the cloud connector plugin that talks to it
    insecure_http: bool = False  # accept a plain-HTTP control plane (development only; docs/security.md)
    aws: Any = None  # the device's AWS settings for its apps (panoflow.aws.AwsSettings), None: no AWS access


@dataclass(frozen=True)
class Restart:
    """The daemon stopped to be started again (same argv) with ``env`` (``None``: the current environment)."""

    env: Mapping[str, str] | None = None


def _device_id(paths: StatePaths) -> str:
    path = paths.root / "device.json"
    try:
        return str(read_json(path)["device_id"])
    except (OSError, ValueError, KeyError, TypeError):
        device_id = "device-" + secrets.token_hex(12)
        atomic_write_json(path, {"device_id": device_id}, mode=0o644)
        return device_id


def _lock_state_dir(paths: StatePaths) -> int:
    """One daemon per state directory: an exclusive lock held for the daemon's life (released by the kernel,
    whatever way the daemon ends)."""
    fd = os.open(paths.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PanoflowError(f"another panoflow serve is using {paths.root}") from None
    return fd


def _connector(config: DaemonConfig) -> object | None:
    """The cloud connector to run, checked before anything starts (an unknown name is a clear error)."""
    if not config.control_plane:
        return None
    from panoflow.core.plugins import build_plugins
    from panoflow.plugins import BUILTINS

    connectors = build_plugins(BUILTINS).cloud_connectors
    if config.cloud_connector not in connectors:
        raise PanoflowError(f"no cloud connector {config.cloud_connector!r} (installed: "
                            f"{', '.join(sorted(connectors)) or 'none'}); see `panoflow plugins`")
    if config.provision is not None and not config.provision.is_file():
        raise PanoflowError(f"--provision {config.provision}: no such file (the Certificates zip that "
                            "ProvisionDevice returned)")
    return connectors[config.cloud_connector]()


async def serve(config: DaemonConfig) -> Restart | None:
    """Run the daemon until SIGTERM or SIGINT (``None``) or until its cloud connector asks for a restart."""
    paths = StatePaths(config.state_dir)
    paths.create()
    lock = _lock_state_dir(paths)
    try:
        return await _serve(config, paths)
    finally:
        os.close(lock)


class _Life:
    """How the daemon's run ends: a signal, a restart asked for by the connector, or a fatal connector
    error."""

    def __init__(self) -> None:
        self.stop = anyio.Event()
        self.restart: Restart | None = None
        self.fatal: PanoflowError | None = None

    def request_restart(self, env: Mapping[str, str] | None = None) -> None:
        if self.restart is None:
            self.restart = Restart(dict(env) if env is not None else None)
            log.info("daemon_restart_requested")
        self.stop.set()

    async def watch_signals(self, signals: object) -> None:
        async for signum in signals:  # type: ignore[attr-defined]
            log.info("daemon_stopping", signal=signal.Signals(signum).name)
            self.stop.set()
            return


async def _serve(config: DaemonConfig, paths: StatePaths) -> Restart | None:
    connector = _connector(config)
    token = ensure_token(paths.token)
    manager = Manager(paths, ManagerConfig(max_instances=config.max_instances, supervisor=config.supervisor,
                                           cameras_file=config.cameras_file, aws=config.aws))
    api = Api(manager, paths, token, _device_id(paths), max_upload=config.max_upload)
    app = api.app()
    mount_device_console(app, api, token, tail=tail_lines)  # the web console at /console/ (docs/console.md)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, config.host, config.port).start()
        except OSError as exc:  # before anything starts: a daemon that cannot listen starts no instance
            raise PanoflowError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from None
        host, port = runner.addresses[0][:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        life = _Life()
        cloud = anyio.CancelScope()
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                try:
                    await manager.start(tg)
                    atomic_write_json(paths.daemon_file, {"url": url, "pid": os.getpid()}, mode=0o644)
                    log.info("daemon_listening", url=url, state_dir=str(paths.root),
                             instances=len(manager.records))
                    tg.start_soon(life.watch_signals, signals)
                    if connector is not None:
                        tg.start_soon(_run_connector, connector, cloud, life, _device_context(
                            config, manager, paths, api, life))
                    await life.stop.wait()
                finally:
                    with anyio.CancelScope(shield=True):
                        cloud.cancel()  # the connector first: it must not deploy while the instances stop
                        await runner.cleanup()  # no new requests; then the instances stop
                        await manager.stop()
                        paths.daemon_file.unlink(missing_ok=True)
                        tg.cancel_scope.cancel()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
        raise
    log.info("daemon_stopped", restarting=life.restart is not None)
    if life.fatal is not None:
        raise life.fatal
    return life.restart


def _device_context(config: DaemonConfig, manager: Manager, paths: StatePaths, api: Api,
                    life: _Life) -> DeviceContext:
    from panoflow.daemon.device import DeviceContext

    assert config.control_plane is not None
    return DeviceContext(manager=manager, paths=paths, control_plane=config.control_plane,
                         provision=config.provision, restart=life.request_restart,
                         metrics_text=api.metrics_text, cameras_file=config.cameras_file or paths.cameras,
                         insecure_http=config.insecure_http)


async def _run_connector(connector: object, scope: anyio.CancelScope, life: _Life,
                         device: DeviceContext) -> None:
    """Run the cloud connector; an error it raises (no credentials, a refused bundle) stops the daemon with
    that message, a bug in it is logged and the daemon carries on without it."""
    from panoflow.core.bases import CloudConnector

    assert isinstance(connector, CloudConnector)
    with scope:
        try:
            await connector.run(device)
            log.info("cloud_connector_stopped")
        except PanoflowError as exc:
            log.error("cloud_connector_failed", error=str(exc))
            life.fatal = exc
            life.stop.set()
        except Exception:
            log.exception("cloud_connector_crashed")
