"""Built-in media sinks: ``display`` (the HDMI equivalent, with an MJPEG preview), ``record`` (H.264 MP4) and
``null``. Per-frame work (drawing, tiling, encoding) runs in worker threads, never on the event loop."""

from __future__ import annotations

from panoflow.core.bases import MediaSink
from panoflow.core.hookspecs import hookimpl
from panoflow.plugins.sinks.display import DisplaySink
from panoflow.plugins.sinks.null import NullSink
from panoflow.plugins.sinks.record import RecordSink

__all__ = ["DisplaySink", "NullSink", "RecordSink"]


@hookimpl
def panoflow_media_sinks() -> list[type[MediaSink]]:
    return [DisplaySink, RecordSink, NullSink]
