"""panoflow's ``panoramasdk``: the AWS Panorama application SDK, so Panorama applications run unmodified.

A thin client of the panoflow runtime, imported by the application in its own process and environment (Python
3.8+, numpy 1.x or 2.x): frames arrive through shared memory, everything else is small messages on a socket
(:mod:`panoramasdk._wire`). Classes, as on the device: :class:`node` (``inputs``, ``outputs``, ``call``),
:class:`port` (``get``, ``put``) and :class:`media` (``image``, ``add_label``, ``add_rect``, ``is_cached``,
``stream_id``, ``stream_uri``, ``time_stamp``). ``TimeoutException`` is what ``port.get(timeout=...)`` raises;
it is a :class:`TimeoutError`.
"""

from __future__ import annotations

from panoramasdk._client import TimeoutException
from panoramasdk._media import media
from panoramasdk._node import node
from panoramasdk._ports import port

__all__ = ["TimeoutException", "media", "node", "port"]
