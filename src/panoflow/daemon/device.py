"""The daemon's side of the device, as its cloud connector sees it: :class:`DeviceContext`.

It lives in the daemon, which builds it (:mod:`panoflow.daemon.server`); :mod:`panoflow.cloud_client` uses it.
The connector contract is the :class:`panoflow.core.bases.DeviceContext` protocol, which this class satisfies.
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
    """What the daemon gives its cloud connector (a :class:`panoflow.core.bases.DeviceContext`).

    ``restart(env)`` stops every instance (their desired state stays RUNNING) and re-executes the daemon with
    the same argv and ``env`` (``None``: the current environment); ``metrics_text()`` is the daemon's
    ``/metrics``. ``insecure_http``: ``--insecure-http`` was given (a plain-HTTP control plane is accepted;
    development only)."""

    manager: Manager
    paths: StatePaths
    control_plane: str
    provision: Path | None
    restart: Callable[[Mapping[str, str] | None], None]
    metrics_text: Callable[[], Awaitable[str]]
    cameras_file: Path
    insecure_http: bool = False
