"""The device side of panoflow's device protocol (docs/device-protocol.md): a ``panoflow serve`` that joins a
panoflow control plane.

* :mod:`.credentials` - the provisioning bundle, the one-time claim, ``STATE_DIR/cloud.json``;
* :mod:`.client` - the HTTP client (claim, sync, logs, metrics, verified asset downloads), offline vs refused;
* :mod:`.assemble` - a desired application instance -> an application folder the daemon deploys;
* :mod:`.telemetry` - log lines tailed from the daemon's files and buffered while offline, metrics text;
* :mod:`.jobs` - REBOOT and OTA;
* :mod:`.sync` - the loop: report the full state, reconcile with the desired state.

The ``http`` cloud connector (:mod:`panoflow.plugins.http_connector`) runs :func:`.sync.run_device` with the
:class:`DeviceContext` the daemon hands it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panoflow.daemon.manager import Manager
    from panoflow.daemon.store import StatePaths

__all__ = ["DeviceContext"]


@dataclass(frozen=True)
class DeviceContext:
    """What the daemon gives its cloud connector.

    ``restart(env)`` stops every instance (their desired state stays RUNNING) and re-executes the daemon with the
    same argv and ``env`` (``None``: the current environment); ``metrics_text()`` is the daemon's ``/metrics``.
    ``insecure_http``: ``--insecure-http`` was given (a plain-HTTP control plane is accepted; development only)."""

    manager: Manager
    paths: StatePaths
    control_plane: str
    provision: Path | None
    restart: Callable[[Mapping[str, str] | None], None]
    metrics_text: Callable[[], Awaitable[str]]
    cameras_file: Path
    insecure_http: bool = False
