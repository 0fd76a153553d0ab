"""RTP payloads -> Annex B access units: H.264 (RFC 6184) and H.265 (RFC 7798), non-interleaved modes.

A depacketizer is pure: it sees payload, sequence number, RTP timestamp and marker bit, and returns finished
access units (one picture each). It never decodes and never blocks; the caller decides what to do with damaged
units (``intact`` is False when a packet of the unit was lost) and when to wait for a keyframe.

Parameter sets from the SDP (``sprop-parameter-sets``, ``sprop-vps/sps/pps``) are put in front of every
keyframe that does not carry its own; parameter sets seen in-band replace them, so a camera that changes
resolution works.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AccessUnit",
    "Depacketizer",
    "H264Depacketizer",
    "H265Depacketizer",
    "depacketizer_for",
    "rtp_payload",
]

START_CODE = b"\x00\x00\x00\x01"
#: an access unit bigger than this is garbage (or an attack): dropped, counted as damaged
MAX_ACCESS_UNIT = 16 << 20


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One coded picture in Annex B form. ``arrival`` is ``time.time()`` when its first packet arrived."""

    data: bytes
    rtp_ts: int
    keyframe: bool
    intact: bool
    arrival: float


def rtp_payload(payload: bytes, *, extension: bool, padding: bool) -> bytes:
    """The media payload of an RTP packet whose fixed header and CSRC list are already removed (as dpkt does):
    strips the header extension (RFC 3550 5.3.1) and the padding. Malformed packets give ``b""``."""
    if extension:
        if len(payload) < 4:
            return b""
        words = int.from_bytes(payload[2:4], "big")
        payload = payload[4 + 4 * words :]
    if padding and payload:
        count = payload[-1]
        payload = payload[:-count] if 0 < count <= len(payload) else b""
    return payload


def _b64_list(text: str | None) -> list[bytes]:
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if item:
            try:
                out.append(base64.b64decode(item + "=" * (-len(item) % 4)))
            except (binascii.Error, ValueError):
                continue  # a broken sprop is ignored: in-band parameter sets still work
    return [nal for nal in out if nal]


class Depacketizer(ABC):
    """Shared RFC 6184/7798 logic: sequence tracking, access-unit boundaries, fragment reassembly."""

    codec: ClassVar[str]  # FFmpeg decoder name
    label: ClassVar[str]  # what users call it

    def __init__(self, parameter_sets: list[bytes] | None = None):
        self.params: dict[int, bytes] = {}
        for nal in parameter_sets or ():
            self.params[self.nal_type(nal)] = nal
        self.packets = 0
        self.packets_lost = 0
        self.units_damaged = 0
        self._last_seq: int | None = None
        self._ts: int | None = None
        self._arrival = 0.0
        self._nals: list[bytes] = []
        self._size = 0
        self._intact = True
        self._fragment: bytearray | None = None
        self._open = False  # a unit is in progress (a packet arrived since the last one was finished)
        self._boundary = False  # the next packet is known to start a unit (the last one ended, nothing lost)
        self._clean_start = False  # the unit in progress is known to have started at its first packet

    # ---- codec specifics
    @staticmethod
    @abstractmethod
    def nal_type(nal: bytes) -> int:
        """The NAL unit type of a whole NAL unit (header included)."""

    @abstractmethod
    def is_keyframe_nal(self, kind: int) -> bool: ...

    @abstractmethod
    def is_parameter_nal(self, kind: int) -> bool: ...

    @abstractmethod
    def starts_picture(self, nal: bytes) -> bool | None:
        """For a slice: whether it is the first of its picture; None for non-slice NAL units."""

    @abstractmethod
    def _unpack(self, payload: bytes) -> Iterator[bytes]:
        """The complete NAL units in one payload (fragments are reassembled across calls)."""

    # ---- shared
    def push(self, payload: bytes, seq: int, ts: int, marker: bool, arrival: float) -> list[AccessUnit]:
        """Feed one RTP packet; returns the access units it completed (usually none or one)."""
        out: list[AccessUnit] = []
        gap = 0
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) & 0xFFFF
            if gap >= 0x8000:  # late or duplicate packet: its unit was already given up on
                return out
            if gap:
                self.packets_lost += gap
                self._fragment = None
                if self._open:
                    self._intact = False
                self._boundary = False  # the lost packets may have started the next unit
        self._last_seq = seq
        self.packets += 1
        if self._open and ts != self._ts:
            out.extend(self._flush())  # the marker packet of the previous unit was lost
            self._boundary = not gap
        if not self._open:
            self._open, self._clean_start, self._arrival = True, self._boundary, arrival
        self._ts = ts
        if payload:
            for nal in self._unpack(payload):
                self._add(nal)
        if marker:
            out.extend(self._flush())
            self._boundary = True
        return out

    def _add(self, nal: bytes) -> None:
        if not nal:
            return
        if self.is_parameter_nal(self.nal_type(nal)):
            self.params[self.nal_type(nal)] = nal
        self._size += len(nal) + 4
        if self._size > MAX_ACCESS_UNIT:
            self._intact = False
            self._nals.clear()
            return
        self._nals.append(nal)

    def _damage(self) -> None:
        self._intact = False

    def _flush(self) -> list[AccessUnit]:
        nals, intact, ts = self._nals, self._intact and self._fragment is None, self._ts
        if nals and not self._clean_start:  # it began after a loss (or mid-stream): whole only if it holds
            first_slice = next((f for f in map(self.starts_picture, nals) if f is not None), False)
            intact = intact and first_slice  # its picture's first slice
        self._nals, self._size, self._intact, self._fragment, self._open = [], 0, True, None, False
        if not nals or ts is None:
            if not intact:
                self.units_damaged += 1
            return []
        kinds = [self.nal_type(n) for n in nals]
        keyframe = any(self.is_keyframe_nal(k) for k in kinds)
        if keyframe:
            missing = [nal for kind, nal in sorted(self.params.items()) if kind not in kinds]
            nals = missing + nals
        if not intact:
            self.units_damaged += 1
        data = b"".join(START_CODE + n for n in nals)
        return [AccessUnit(data, ts, keyframe, intact, self._arrival)]


class H264Depacketizer(Depacketizer):
    """RFC 6184 packetization modes 0 and 1: single NAL unit, STAP-A, FU-A."""

    codec = "h264"
    label = "H.264"

    @staticmethod
    def nal_type(nal: bytes) -> int:
        return nal[0] & 0x1F

    def is_keyframe_nal(self, kind: int) -> bool:
        return kind == 5

    def is_parameter_nal(self, kind: int) -> bool:
        return kind in (7, 8)

    def starts_picture(self, nal: bytes) -> bool | None:
        if 1 <= nal[0] & 0x1F <= 5:
            return len(nal) > 1 and bool(nal[1] & 0x80)  # first_mb_in_slice == 0 (ue(v) "1")
        return None

    def _unpack(self, payload: bytes) -> Iterator[bytes]:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            yield payload
        elif kind == 24:  # STAP-A: header, then (16-bit size, NAL unit)*
            yield from _aggregated(payload, 1, self._damage)
        elif kind == 28 and len(payload) >= 2:  # FU-A: indicator, FU header, fragment
            header = payload[1]
            if header & 0x80:
                if self._fragment is not None:
                    self._damage()
                self._fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            elif self._fragment is None:
                self._damage()  # the start of this NAL unit was lost
                return
            self._fragment += payload[2:]
            if header & 0x40:
                nal, self._fragment = bytes(self._fragment), None
                yield nal
        else:  # STAP-B, MTAP, FU-B (interleaved mode 2) or reserved: not something cameras send
            self._damage()


class H265Depacketizer(Depacketizer):
    """RFC 7798 without DON fields (``sprop-max-don-diff`` 0): single NAL unit, aggregation packet, FU."""

    codec = "hevc"
    label = "H.265"

    @staticmethod
    def nal_type(nal: bytes) -> int:
        return (nal[0] >> 1) & 0x3F

    def is_keyframe_nal(self, kind: int) -> bool:
        return 16 <= kind <= 21  # IRAP pictures: BLA, IDR, CRA

    def is_parameter_nal(self, kind: int) -> bool:
        return kind in (32, 33, 34)

    def starts_picture(self, nal: bytes) -> bool | None:
        if (nal[0] >> 1) & 0x3F < 32:
            return len(nal) > 2 and bool(nal[2] & 0x80)  # first_slice_segment_in_pic_flag
        return None

    def _unpack(self, payload: bytes) -> Iterator[bytes]:
        if len(payload) < 3:
            return
        kind = (payload[0] >> 1) & 0x3F
        if kind < 48:
            yield payload
        elif kind == 48:  # aggregation packet: 2-byte header, then (16-bit size, NAL unit)*
            yield from _aggregated(payload, 2, self._damage)
        elif kind == 49:  # fragmentation unit: 2-byte header, FU header, fragment
            header = payload[2]
            if header & 0x80:
                if self._fragment is not None:
                    self._damage()
                first = (payload[0] & 0x81) | ((header & 0x3F) << 1)
                self._fragment = bytearray([first, payload[1]])
            elif self._fragment is None:
                self._damage()
                return
            self._fragment += payload[3:]
            if header & 0x40:
                nal, self._fragment = bytes(self._fragment), None
                yield nal
        # 50 (PACI) and reserved types carry nothing a decoder needs


def _aggregated(payload: bytes, offset: int, damage: Any) -> Iterator[bytes]:
    i = offset
    while i + 2 <= len(payload):
        size = int.from_bytes(payload[i : i + 2], "big")
        if size == 0 or i + 2 + size > len(payload):
            damage()
            return
        yield payload[i + 2 : i + 2 + size]
        i += 2 + size


def depacketizer_for(encoding: str, fmtp: Mapping[str, Any]) -> Depacketizer | None:
    """The depacketizer for an SDP ``rtpmap`` encoding name (``H264``, ``H265``), or None if unsupported."""
    name = encoding.upper()
    if name == "H264":
        return H264Depacketizer(_b64_list(fmtp.get("sprop-parameter-sets")))
    if name in ("H265", "HEVC"):
        sets = [n for key in ("sprop-vps", "sprop-sps", "sprop-pps") for n in _b64_list(fmtp.get(key))]
        return H265Depacketizer(sets)
    return None
