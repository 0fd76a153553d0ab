"""Device routes under /_panoflow/device/v1/ and /_panoflow/devices/ (docs/device-protocol.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from panoflow.controlplane.service import ControlPlane

__all__ = ["add_routes"]


def add_routes(app: web.Application, plane: ControlPlane) -> None:
    """Register this module's routes on ``app`` (called before the Panorama API's catch-all route)."""
