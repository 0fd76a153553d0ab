"""``--camera NODE=URI_OR_NAME``: a URI or an absolute path passes through; a name is a registered camera
(:mod:`panoflow.camera_registry`, ``camera:NAME`` always meaning the registry)."""

from __future__ import annotations

import os
from pathlib import Path

from panoflow.exceptions import PanoflowError

__all__ = ["CameraNotFound", "resolve_camera"]


class CameraNotFound(PanoflowError, ValueError):
    """A ``--camera`` value is neither a URI nor the name of a registered camera."""


def _is_uri(value: str) -> bool:
    return "://" in value or value.startswith("/")


def resolve_camera(value: str, registry_file: Path) -> str:
    """The stream URI for ``value`` (with the camera's credentials: never log it unredacted). Raises a
    :class:`~panoflow.exceptions.PanoflowError` saying why when there is none."""
    try:
        from panoflow.camera_registry import CameraRegistry, camera_uri_for
    except ImportError:  # a panoflow without the registry: URIs only
        if _is_uri(value):
            return value
        raise CameraNotFound(
            f"camera {value!r} is not a URI, and this panoflow has no camera registry"
        ) from None
    registry = CameraRegistry(registry_file)
    uri = camera_uri_for(value, registry, exists=lambda p: os.path.isabs(p) and os.path.exists(p))
    if uri == value and not _is_uri(value):
        raise CameraNotFound(f"camera {value!r} is not a URI, an absolute path or a camera registered in "
                             f"{registry_file}")
    return uri
