"""RTSP cameras: the ``rtsp``, ``rtspt`` and ``rtsp+ffmpeg`` media sources.

aiortsp speaks RTSP and receives RTP (over TCP or UDP); panoflow depacketizes H.264/H.265 itself, decodes with
PyAV in one thread per camera, reconnects forever with capped back-off, and scales pictures above 2 megapixels
down to 1920x1080's area like the Panorama appliance. FFmpeg's demuxer stays available per camera
(``backend=ffmpeg``).
"""

from __future__ import annotations

from panoflow.core.bases import MediaSource
from panoflow.core.hookspecs import hookimpl
from panoflow.plugins.rtsp.options import RTSP_OPTIONS, RtspSettings, parse_rtsp_uri
from panoflow.plugins.rtsp.source import FfmpegRtspSource, RtspSource, RtspTcpSource

__all__ = [
    "RTSP_OPTIONS",
    "FfmpegRtspSource",
    "RtspSettings",
    "RtspSource",
    "RtspTcpSource",
    "panoflow_media_sources",
    "parse_rtsp_uri",
]


@hookimpl
def panoflow_media_sources() -> list[type[MediaSource]]:
    return [RtspSource, RtspTcpSource, FfmpegRtspSource]
