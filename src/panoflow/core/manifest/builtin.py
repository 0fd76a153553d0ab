"""Panorama's stock packages: they exist on every appliance, so applications never ship their files.

``panorama::abstract_rtsp_media_source`` (a camera, bound to a real stream at deploy or run time) and
``panorama::hdmi_data_sink`` (the HDMI display) are synthesised here as :class:`LoadedPackage` values with
``builtin=True`` and no directory.
"""

from __future__ import annotations

from panoflow.core.manifest.models import (
    Asset,
    AssetImplementation,
    Interface,
    LoadedPackage,
    PackageConfig,
    PackageRef,
    Port,
)

__all__ = ["BUILTIN_ACCOUNT", "builtin_package", "builtin_packages"]

#: the account of Panorama's stock packages
BUILTIN_ACCOUNT = "panorama"
_VERSION = "1.0"


def _stock(name: str, description: str, interface: Interface, system_uri: str) -> LoadedPackage:
    config = PackageConfig(
        envelope_version="2021-01-01",
        name=name,
        version=_VERSION,
        description=description,
        assets=(Asset(interface.asset, (AssetImplementation("system", system_uri),)),),
        interfaces=(interface,),
    )
    return LoadedPackage(ref=PackageRef(BUILTIN_ACCOUNT, name, _VERSION), directory=None, config=config,
                         builtin=True)


_PACKAGES: dict[tuple[str, str], LoadedPackage] = {
    (p.ref.qualified, p.ref.version): p
    for p in (
        _stock(
            "abstract_rtsp_media_source",
            "Camera stream (bound to a real camera when the application is deployed or run)",
            Interface(
                name="rtsp_v1_interface",
                category="media_source",
                asset="rtsp_source",
                outputs=(Port("video_out", "media", "Video stream output"),),
            ),
            "source/video/camera/rtsp/source_rtsp",
        ),
        _stock(
            "hdmi_data_sink",
            "HDMI display output",
            Interface(
                name="hdmi0",
                category="media_sink",
                asset="hdmi_sink",
                inputs=(Port("video_in", "media", "Video stream input"),),
            ),
            "sink/video/hdmi/sink_hdmi",
        ),
    )
}


def builtin_package(ref: PackageRef) -> LoadedPackage | None:
    """The stock package ``ref`` names (account ``panorama``, name and version must match), else ``None``."""
    return _PACKAGES.get((ref.qualified, ref.version))


def builtin_packages() -> tuple[LoadedPackage, ...]:
    """Every stock package panoflow knows."""
    return tuple(_PACKAGES.values())
