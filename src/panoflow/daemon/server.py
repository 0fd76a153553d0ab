"""``panoflow serve``: the device daemon's life. State first, then instances, then the HTTP endpoint; on SIGTERM or
SIGINT the reverse (instances stop but stay desired, so the next start brings them back)."""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from aiohttp import web

from panoflow.daemon.api import DEFAULT_MAX_UPLOAD, Api
from panoflow.daemon.manager import Manager, ManagerConfig
from panoflow.daemon.store import StatePaths, atomic_write_json, ensure_token, read_json
from panoflow.daemon.supervisor import SupervisorConfig
from panoflow.exceptions import PanoflowError

__all__ = ["DEFAULT_LISTEN", "DaemonConfig", "serve"]

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


async def serve(config: DaemonConfig) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    paths = StatePaths(config.state_dir)
    paths.create()
    lock = _lock_state_dir(paths)
    try:
        await _serve(config, paths)
    finally:
        os.close(lock)


async def _serve(config: DaemonConfig, paths: StatePaths) -> None:
    token = ensure_token(paths.token)
    manager = Manager(paths, ManagerConfig(max_instances=config.max_instances, supervisor=config.supervisor,
                                           cameras_file=config.cameras_file))
    api = Api(manager, paths, token, _device_id(paths), max_upload=config.max_upload)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, config.host, config.port).start()
        except OSError as exc:  # before anything starts: a daemon that cannot listen starts no instance
            raise PanoflowError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
        host, port = runner.addresses[0][:2]
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as tg:
                try:
                    await manager.start(tg)
                    atomic_write_json(paths.daemon_file, {"url": url, "pid": os.getpid()}, mode=0o644)
                    log.info("daemon_listening", url=url, state_dir=str(paths.root), instances=len(manager.records))
                    async for signum in signals:
                        log.info("daemon_stopping", signal=signal.Signals(signum).name)
                        break
                finally:
                    with anyio.CancelScope(shield=True):
                        await runner.cleanup()  # no new requests; then the instances stop
                        await manager.stop()
                        paths.daemon_file.unlink(missing_ok=True)
                        tg.cancel_scope.cancel()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
        raise
    log.info("daemon_stopped")
