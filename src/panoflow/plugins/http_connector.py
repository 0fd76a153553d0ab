"""The ``http`` cloud connector: panoflow's device protocol (docs/device-protocol.md) over HTTP, as a
plugin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from panoflow.core.bases import CloudConnector, DeviceContext
from panoflow.core.hookspecs import hookimpl
from panoflow.exceptions import CloudError

__all__ = ["HttpConnector", "panoflow_cloud_connectors"]


class HttpConnector(CloudConnector):
    """Joins a panoflow control plane: claims the device once, then syncs state, deploys what it is asked to,
    uploads logs and metrics, runs jobs (:mod:`panoflow.cloud_client`)."""

    name: ClassVar[str] = "http"

    async def run(self, device: DeviceContext) -> None:
        """``device`` is the daemon's :class:`panoflow.daemon.device.DeviceContext`. Returns when the control
        plane refuses the device (401/403): the daemon keeps running its instances."""
        from panoflow.cloud_client.sync import run_device
        from panoflow.daemon.device import DeviceContext as DaemonDevice

        if not isinstance(device, DaemonDevice):
            raise CloudError("the http cloud connector runs inside `panoflow serve` (it was handed "
                             f"{type(device).__name__}, not the daemon's DeviceContext)")
        await run_device(device)


@hookimpl
def panoflow_cloud_connectors() -> Sequence[type[CloudConnector]]:
    return [HttpConnector]
