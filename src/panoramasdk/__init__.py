"""panoflow's ``panoramasdk``: the AWS Panorama application SDK, so Panorama applications run unmodified.

A thin facade over :class:`panoflow.core.ports.CodeNodeIO`, which the panoflow runtime binds
(:mod:`panoramasdk._binding`) before it runs the application's code. Classes, as on the device: :class:`node`
(``inputs``, ``outputs``, ``call``), :class:`port` (``get``, ``put``) and :class:`media` (``image``, ``add_label``,
``add_rect``, ``is_cached``, ``stream_id``, ``stream_uri``, ``time_stamp``). ``TimeoutException`` is what
``port.get(timeout=...)`` raises; it is a :class:`TimeoutError`.
"""

from __future__ import annotations

from panoflow.core.ports import InputTimeout
from panoramasdk._media import media
from panoramasdk._node import node
from panoramasdk._ports import port

TimeoutException = InputTimeout

__all__ = ["TimeoutException", "media", "node", "port"]
