"""The decoder tests' clip shape (:data:`GOP`, :data:`FRAMES`), what hardware decoders this machine lacks
(:data:`NO_GPU`, :data:`NO_DRI`) and decoder plugins that fail on purpose
(:class:`FlakyDecoder`, registered by the ``flaky`` fixture; :class:`UnavailableDecoder`)."""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any, ClassVar

import av

from panoflow.plugins.decoders import DecoderSetup, VideoDecoder

GOP = 10  # make_clip writes a keyframe every `fps` frames: fps=10 -> frames 0, 10, 20...
FRAMES = 45
#: no NVIDIA device or driver here (NVDEC cannot work)
NO_GPU = not os.path.exists("/dev/nvidiactl") and not shutil.which("nvidia-smi")
#: no DRI render node here (VA-API cannot work)
NO_DRI = not glob.glob("/dev/dri/renderD*")


class FlakyDecoder(VideoDecoder):
    """A "hardware" decoder plugin that decodes with libavcodec but fails on purpose: at its probe
    (``fail_at_probe``) or after ``fail_after`` pictures (a device lost mid-stream)."""

    name: ClassVar[str] = "flaky"
    hardware: ClassVar[bool] = True
    fail_at_probe: ClassVar[bool] = False
    fail_after: ClassVar[int | None] = None
    instances: ClassVar[list[FlakyDecoder]] = []

    def __init__(self, setup: DecoderSetup):
        super().__init__(setup)
        self.ctx: Any = av.CodecContext.create(setup.codec, "r")
        if setup.extradata:
            self.ctx.extradata = setup.extradata
        self.pictures = 0
        self.instances.append(self)

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        if self.fail_at_probe:
            raise RuntimeError("no such device (on purpose)")
        if self.fail_after is not None and self.pictures >= self.fail_after:
            raise RuntimeError("device lost (on purpose)")
        pictures = list(self.ctx.decode(packet))
        self.pictures += len(pictures)
        return pictures


class UnavailableDecoder(VideoDecoder):
    """A decoder plugin for hardware this machine never has."""

    name: ClassVar[str] = "nohw"

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        return "no such accelerator here (on purpose)"

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:  # pragma: no cover - never chosen
        raise AssertionError("an unavailable decoder was used")
