"""Video decoder plugins: what turns a camera's coded pictures into pictures, chosen per camera.

A :class:`VideoDecoder` wraps one FFmpeg decoding context: ``software`` (FFmpeg's own decoders, what panoflow
always used), ``nvdec`` (NVIDIA NVDEC through FFmpeg's ``hwaccel=cuda``, or the ``*_cuvid`` decoders where the
build has them), ``vaapi`` (Intel/AMD through ``/dev/dri``) and ``v4l2`` (the ``*_v4l2m2m`` decoders of Jetson
and Raspberry Pi boards). Each says why it cannot work on this machine (:meth:`VideoDecoder.unavailable`)
instead of failing on import. Pictures always come out in system memory, so the BGR conversion after them is
the same.

:class:`StreamDecoder` is what a source's decoding thread holds: at the first keyframe of a stream it tries
the preferred decoders in order (``?decoder=auto`` = every hardware decoder registered, then software),
probing each with one real decode of that keyframe; it logs the choice and every reason it passed one over
once, falls back to software once (logged) when a hardware decoder fails mid-stream, and decodes what its
:class:`~panoflow.plugins.decode_budget.KeyframeGate` admits (``?decode=all|keyframes|auto``: the rest are
skipped before decoding). The choice, the reason, the decode mode and the effective rate are in
:meth:`StreamDecoder.stats`, which the sources put in their ``stats()`` (``panoflow_source_decoder_info`` on
/metrics, the ``decoder`` of each stream in status output).

Decoders are registered in a :class:`DecoderRegistry`; :data:`DECODERS` holds the built-ins, and a plugin (or
a test) adds its own with :meth:`DecoderRegistry.register`.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import av
import structlog
from av.codec import hwaccel as _hwaccel

from panoflow.plugins.decode_budget import KeyframeGate

__all__ = [
    "DECODERS",
    "DecoderRegistry",
    "DecoderSetup",
    "NvdecDecoder",
    "SoftwareDecoder",
    "StreamDecoder",
    "V4l2Decoder",
    "VaapiDecoder",
    "VideoDecoder",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DecoderSetup:
    """What a decoder is opened for: the FFmpeg codec name (``h264``, ``hevc``), the codec configuration
    (``extradata``: Annex B parameter sets or an ``avcC``/``hvcC`` record), threading, and for files the
    container's own decoding context (``context``: the software decoder uses it as it is)."""

    codec: str
    extradata: bytes | None = None
    threads: int = 1
    thread_type: str = "SLICE"
    context: Any = None


class VideoDecoder(ABC):
    """One decoding context. Subclasses set ``name`` (what ``?decoder=`` selects) and ``hardware``."""

    name: ClassVar[str]
    hardware: ClassVar[bool] = True

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        """Why this decoder cannot decode ``codec`` on this machine (checked without decoding), or None."""
        return None

    def __init__(self, setup: DecoderSetup):
        self.setup = setup

    @abstractmethod
    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        """Pictures (in system memory) that ``packet`` completed; ``None`` drains what the decoder holds."""

    def flush(self) -> None:
        """Forget held and reference pictures (the next packet is a keyframe after a gap)."""

    def close(self) -> None:
        """Release the context (and the device's decoding session)."""


class _ContextDecoder(VideoDecoder):
    """A decoder backed by one :class:`av.CodecContext` made by :meth:`_context`."""

    def __init__(self, setup: DecoderSetup):
        super().__init__(setup)
        self.ctx: Any = self._context(setup)

    def _context(self, setup: DecoderSetup) -> Any:
        raise NotImplementedError

    @staticmethod
    def _configure(ctx: Any, setup: DecoderSetup) -> Any:
        if setup.extradata:
            ctx.extradata = setup.extradata
        ctx.thread_type = setup.thread_type
        ctx.thread_count = setup.threads
        return ctx

    def decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        return list(self.ctx.decode(packet))

    def flush(self) -> None:
        self.ctx.flush_buffers()

    def close(self) -> None:
        self.ctx = None


class SoftwareDecoder(_ContextDecoder):
    """FFmpeg's software decoders (libavcodec), as panoflow always decoded."""

    name = "software"
    hardware = False

    def _context(self, setup: DecoderSetup) -> Any:
        if setup.context is not None:
            return setup.context  # a file's own context: threading already set by the source
        return self._configure(av.CodecContext.create(setup.codec, "r"), setup)


def _hw_devices() -> list[str]:
    """The hardware device types PyAV's FFmpeg was built with (``cuda``, ``vaapi``...)."""
    return list(_hwaccel.hwdevices_available())


def _devices(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


class NvdecDecoder(_ContextDecoder):
    """NVIDIA NVDEC: FFmpeg's ``hwaccel=cuda`` on the codec's decoder (or ``<codec>_cuvid`` where FFmpeg has
    it)."""

    name = "nvdec"

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        if "cuda" not in _hw_devices() and f"{codec}_cuvid" not in av.codecs_available:
            return "PyAV's FFmpeg was built without CUDA (no hwaccel=cuda, no cuvid decoders)"
        if not os.path.exists("/dev/nvidiactl") and not shutil.which("nvidia-smi"):
            return "no NVIDIA GPU on this machine (/dev/nvidiactl missing)"
        return None

    def _context(self, setup: DecoderSetup) -> Any:
        if "cuda" in _hw_devices():
            hw = _hwaccel.HWAccel("cuda", allow_software_fallback=False)
            return self._configure(av.CodecContext.create(setup.codec, "r", hwaccel=hw), setup)
        return self._configure(av.CodecContext.create(f"{setup.codec}_cuvid", "r"), setup)


class VaapiDecoder(_ContextDecoder):
    """VA-API (Intel and AMD GPUs) through the first ``/dev/dri/renderD*`` node."""

    name = "vaapi"

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        if "vaapi" not in _hw_devices():
            return "PyAV's FFmpeg was built without VA-API"
        if not _devices("/dev/dri/renderD*"):
            return "no /dev/dri/renderD* render node on this machine"
        return None

    def _context(self, setup: DecoderSetup) -> Any:
        hw = _hwaccel.HWAccel("vaapi", device=_devices("/dev/dri/renderD*")[0],
                                      allow_software_fallback=False)
        return self._configure(av.CodecContext.create(setup.codec, "r", hwaccel=hw), setup)


class V4l2Decoder(_ContextDecoder):
    """V4L2 memory-to-memory decoders (``h264_v4l2m2m``, ``hevc_v4l2m2m``: Jetson, Raspberry Pi)."""

    name = "v4l2"

    @classmethod
    def unavailable(cls, codec: str) -> str | None:
        if f"{codec}_v4l2m2m" not in av.codecs_available:
            return f"PyAV's FFmpeg has no {codec}_v4l2m2m decoder"
        if not _devices("/dev/video*"):
            return "no /dev/video* device on this machine"
        return None

    def _context(self, setup: DecoderSetup) -> Any:
        return self._configure(av.CodecContext.create(f"{setup.codec}_v4l2m2m", "r"), setup)


class DecoderRegistry:
    """Decoders by name, in the order ``auto`` tries them (software is always the last resort)."""

    def __init__(self, decoders: Sequence[type[VideoDecoder]] = ()):
        self._by_name: dict[str, type[VideoDecoder]] = {}
        for cls in decoders:
            self.register(cls)

    def register(self, cls: type[VideoDecoder], *, first: bool = False) -> None:
        """Add ``cls``; ``first`` puts it ahead of the others for ``auto``. Duplicate names are an error."""
        if cls.name in self._by_name or cls.name == "auto":
            raise ValueError(f"a video decoder named {cls.name!r} is already registered")
        items = list(self._by_name.items())
        self._by_name = dict([(cls.name, cls), *items] if first else [*items, (cls.name, cls)])

    def unregister(self, name: str) -> None:
        self._by_name.pop(name, None)

    @contextmanager
    def registered(self, cls: type[VideoDecoder], *, first: bool = False) -> Iterator[type[VideoDecoder]]:
        """``register`` for the duration of a ``with`` block (tests, embedding)."""
        self.register(cls, first=first)
        try:
            yield cls
        finally:
            self.unregister(cls.name)

    def names(self) -> list[str]:
        return ["auto", *self._by_name]

    def check(self, name: str, *, what: str) -> str:
        """``name`` if it is ``auto`` or registered; otherwise a ValueError naming ``what`` and the valid
        names."""
        if name not in self.names():
            raise ValueError(
                f"unknown decoder {name!r} for {what}; valid decoders: {', '.join(self.names())}"
            )
        return name

    def candidates(self, preference: str) -> list[type[VideoDecoder]]:
        """What to try, in order, for ``?decoder=preference``: hardware first for ``auto``; software last."""
        software = self._by_name.get("software", SoftwareDecoder)
        if preference == "auto":
            ordered = [c for c in self._by_name.values() if c.hardware]
        else:
            ordered = [self._by_name[preference]] if preference in self._by_name else []
        return [*[c for c in ordered if c is not software], software]

    def availability(self, codec: str = "h264") -> dict[str, str]:
        """``{name: "available" | "unavailable: <why>"}`` for every registered decoder (for ``panoflow``
        tools)."""
        out = {}
        for name, cls in self._by_name.items():
            why = cls.unavailable(codec)
            out[name] = "available" if why is None else f"unavailable: {why}"
        return out


#: The built-in decoders; ``auto`` tries them in this order.
BUILTIN_DECODERS: tuple[type[VideoDecoder], ...] = (NvdecDecoder, VaapiDecoder, V4l2Decoder, SoftwareDecoder)
DECODERS = DecoderRegistry(BUILTIN_DECODERS)


class StreamDecoder:
    """The decoder of one stream: chosen and probed at the stream's first keyframe, software fallback once.

    Call :meth:`start` for each new stream (a file pass, an RTSP session), then :meth:`decode` for every
    packet with its keyframe flag. Non-keyframes are skipped (not decoded) before the first keyframe, after a
    fallback, and whenever ``gate`` decodes keyframes only (``keyframes_only=True`` is a gate fixed on
    keyframes). With ``filters=False`` someone else filters through the gate (an RTSP camera's intake, before
    its queue) and this decoder only reports its mode. A software decode error raises :class:`av.FFmpegError`
    as before (the caller counts a corrupt unit); a hardware decoder's error switches this stream to software
    (once).
    """

    def __init__(self, preference: str = "auto", *, keyframes_only: bool = False,
                 gate: KeyframeGate | None = None, filters: bool = True,
                 registry: DecoderRegistry | None = None, logger: Any = None, announce: bool = True):
        self.registry = registry if registry is not None else DECODERS
        self.preference = preference
        self.log = logger if logger is not None else log
        self.gate = gate if gate is not None else KeyframeGate("keyframes" if keyframes_only else "all",
                                                               logger=self.log)
        self.filters = filters
        # log decoder_selected (False: the source reports the choice in its own line)
        self.announce = announce
        self.current: VideoDecoder | None = None
        self.name = ""  # the decoder in use ("" before the first keyframe)
        self.reason = ""  # why it is not the preferred one, or why it fell back ("" when it is)
        self.fell_back = False
        self.decoded = 0  # pictures decoded since the first
        self._setup: DecoderSetup | None = None
        self._waiting = True
        self._first: float | None = None
        self._end: float | None = None  # when the last stream ended (the rate stops there)
        self._logged: tuple[str, str] | None = None

    @property
    def keyframes_only(self) -> bool:
        """Whether only keyframes are decoded now."""
        return self.gate.keyframes_only

    @property
    def skipped(self) -> int:
        """Packets left out without decoding (keyframes only)."""
        return self.gate.skipped

    @property
    def waiting_keyframe(self) -> bool:
        return self._waiting

    def start(self, setup: DecoderSetup) -> None:
        """A new stream begins: the decoder is chosen again at its first keyframe."""
        self.close()
        self._setup = setup
        self._waiting = True
        self._end = None

    def decode(self, packet: av.Packet, keyframe: bool) -> list[av.VideoFrame]:
        if self.filters and not self.gate.admit(keyframe):
            return []
        if not keyframe and self._waiting:
            return []
        if self.current is None:
            self._choose(packet)
        assert self.current is not None
        try:
            pictures = self.current.decode(packet)
        except Exception as exc:
            if not self.current.hardware or self.fell_back:
                raise
            self._fall_back(exc)
            return []
        self._waiting = False
        return self._count(pictures)

    def drain(self) -> list[av.VideoFrame]:
        """The pictures the decoder still holds at the end of the stream."""
        return self._count(self.current.decode(None) if self.current is not None else [])

    def _count(self, pictures: list[av.VideoFrame]) -> list[av.VideoFrame]:
        if pictures:
            self._first = self._first if self._first is not None else time.monotonic()
            self.decoded += len(pictures)
        return pictures

    def flush(self) -> None:
        if self.current is not None:
            self.current.flush()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current = None
        self._end = time.monotonic()

    def effective_fps(self) -> float:
        """Pictures decoded per second since the first one (or since ``decode=auto`` last changed mode), up to
        now or the end of the stream (the rate an app can get at most)."""
        if self._first is None or self.decoded < 2:
            return 0.0
        end = self._end if self._end is not None else time.monotonic()
        since = self.gate.rate_since_change()
        if since is not None:
            elapsed, pictures = end - since[0], self.decoded - since[1]
        else:
            elapsed, pictures = end - self._first, self.decoded - 1
        return round(pictures / elapsed, 2) if elapsed > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        return {"decoder": self.name or None, "decoder_reason": self.reason or None, **self.gate.stats(),
                "frames_decoded": self.decoded, "skipped_nonkey": self.skipped,
                "effective_fps": self.effective_fps()}

    def _choose(self, packet: av.Packet) -> None:
        assert self._setup is not None
        setup = self._setup
        passed: list[str] = []
        # after a fallback this stream stays on software (a reconnection does not retry the failed decoder)
        candidates = [SoftwareDecoder] if self.fell_back else self.registry.candidates(self.preference)
        for cls in candidates:
            if cls.name != "software":
                why = cls.unavailable(setup.codec) or self._probe(cls, setup, packet)
                if why is not None:
                    passed.append(f"{cls.name} {why}")
                    continue
            self.current = cls(setup)
            break
        assert self.current is not None  # software is always a candidate and never probed
        self.name = self.current.name
        if not self.fell_back:
            self.reason = "; ".join(passed)
        if self.announce and self._logged != (self.name, self.reason):
            self._logged = (self.name, self.reason)
            self.log.info("decoder_selected", decoder=self.name, preferred=self.preference, codec=setup.codec,
                          passed_over=self.reason or None, keyframes_only=self.keyframes_only,
                          decode=self.gate.mode)

    @staticmethod
    def _probe(kind: type[VideoDecoder], setup: DecoderSetup, packet: av.Packet) -> str | None:
        """One real decode of ``packet`` (a keyframe) with a throwaway instance: None when a picture came
        out."""
        probe_setup = DecoderSetup(setup.codec, setup.extradata, setup.threads, setup.thread_type)
        decoder: VideoDecoder | None = None
        try:
            decoder = kind(probe_setup)
            pictures = decoder.decode(packet) + decoder.decode(None)
        except Exception as exc:  # noqa: BLE001 - a plugin probe may raise anything; it must not end the camera
            return f"failed its probe decode: {type(exc).__name__}: {exc}"
        finally:
            if decoder is not None:
                decoder.close()
        return None if pictures else "failed its probe decode: no picture from a keyframe"

    def _fall_back(self, exc: Exception) -> None:
        assert self.current is not None and self._setup is not None
        failed = self.current.name
        self.current.close()
        self.fell_back, self._waiting = True, True
        # a context of its own: the failed decoder may have left a shared one mid-GOP
        setup = self._setup
        self.current = SoftwareDecoder(DecoderSetup(setup.codec, setup.extradata, setup.threads,
                                                    setup.thread_type))
        self.name = self.current.name
        self.reason = f"{failed} failed after {self.decoded} pictures: {type(exc).__name__}: {exc}"
        self._logged = (self.name, self.reason)
        self.log.warning("decoder_fallback", failed=failed, decoder=self.name, after_frames=self.decoded,
                         error=f"{type(exc).__name__}: {exc}")
