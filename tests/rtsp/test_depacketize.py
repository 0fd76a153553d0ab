"""H.264/H.265 depacketization: PyAV's own RTP packetizer round trip (bit-exact decode) and property tests."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import av
import dpkt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.plugins.rtsp.depacketize import (
    START_CODE,
    H264Depacketizer,
    H265Depacketizer,
    depacketizer_for,
    rtp_payload,
)
from tests.media import decode_bgr, make_clip
from tests.support.rtsp import make_hevc_clip

EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "200"))


class _PacketSink(io.RawIOBase):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.packets.append(bytes(data))
        return len(data)


def _rtp_from_pyav(clip: Path, packet_size: int) -> list[dpkt.rtp.RTP]:
    """The clip's video as RTP packets, packetized by FFmpeg's RTP muxer (an independent implementation)."""
    sink = _PacketSink()
    with av.open(str(clip)) as source:
        video = source.streams.video[0]
        out = av.open(sink, "w", format="rtp", options={"packetsize": str(packet_size)})
        stream = out.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
        out.close()
    return [dpkt.rtp.RTP(p) for p in sink.packets if 96 <= p[1] & 0x7F <= 127]  # RTCP sender reports left out


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("packet_size", [200, 1400])
def test_pyav_packetized_stream_decodes_bit_exact(tmp_path: Path, codec: str, packet_size: int) -> None:
    size = (320, 240)
    clip = (make_clip(tmp_path / "c.mp4", frames=30, size=size, seed=4) if codec == "h264"
            else make_hevc_clip(tmp_path / "c.mp4", frames=30, size=size, seed=4))
    depacketizer = H264Depacketizer() if codec == "h264" else H265Depacketizer()
    decoder = av.CodecContext.create(depacketizer.codec, "r")
    images = []
    for rtp in _rtp_from_pyav(clip, packet_size):
        for unit in depacketizer.push(rtp.data, rtp.seq, rtp.ts, bool(rtp.m), 0.0):
            assert unit.intact
            images += [f.to_ndarray(format="bgr24") for f in decoder.decode(av.Packet(unit.data))]
    images += [f.to_ndarray(format="bgr24") for f in decoder.decode(None)]
    reference = decode_bgr(clip)
    assert len(images) == len(reference) == 30
    assert all(np.array_equal(a, b) for a, b in zip(images, reference, strict=True))
    assert depacketizer.packets_lost == 0 and depacketizer.units_damaged == 0


# ---- a small packetizer of our own (RFC 6184 mode 1), for property tests
# ---------------------------------------
def _stap_or_single(batch: list[bytes]) -> bytes:
    if len(batch) == 1:
        return batch[0]
    nri = max(n[0] & 0x60 for n in batch)
    return bytes([nri | 24]) + b"".join(len(n).to_bytes(2, "big") + n for n in batch)


def _packetize_h264(units: list[list[bytes]], mtu: int) -> list[tuple[bytes, int, bool]]:
    """(payload, timestamp, marker) per packet: STAP-A for runs of small NAL units, FU-A for big ones."""
    out: list[tuple[bytes, int, bool]] = []
    for index, nals in enumerate(units):
        packets: list[bytes] = []
        batch: list[bytes] = []
        for nal in nals:
            if len(nal) + 3 > mtu:
                if batch:
                    packets.append(_stap_or_single(batch))
                    batch = []
                body, chunk = nal[1:], mtu - 2
                pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
                for i, piece in enumerate(pieces):
                    header = (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0) | (nal[0] & 0x1F)
                    packets.append(bytes([(nal[0] & 0xE0) | 28, header]) + piece)
                continue
            if batch and sum(len(n) + 2 for n in batch) + len(nal) + 3 > mtu:
                packets.append(_stap_or_single(batch))
                batch = []
            batch.append(nal)
        if batch:
            packets.append(_stap_or_single(batch))
        out += [(p, 3000 * index, i == len(packets) - 1) for i, p in enumerate(packets)]
    return out


_nal_body = st.binary(min_size=1, max_size=600)


def _picture(kind: int, ref: int, bodies: list[bytes]) -> list[bytes]:
    """Slices of one picture: only the first has first_mb_in_slice == 0 (its first bit set)."""
    return [bytes([0x20 * ref | kind, (b[0] | 0x80) if i == 0 else (b[0] & 0x7F)]) + b[1:]
            for i, b in enumerate(bodies)]


_units = st.lists(
    st.builds(_picture, st.just(1), st.integers(0, 3), st.lists(_nal_body, min_size=1, max_size=4))
    | st.builds(_picture, st.just(5), st.just(3), st.lists(_nal_body, min_size=1, max_size=2)),
    min_size=1, max_size=12,
)


def _annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + n for n in nals)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(units=_units, mtu=st.integers(40, 1500))
def test_h264_round_trip(units: list[list[bytes]], mtu: int) -> None:
    dep = H264Depacketizer()
    got = []
    for seq, (payload, ts, marker) in enumerate(_packetize_h264(units, mtu)):
        got += dep.push(payload, (60000 + seq) & 0xFFFF, ts, marker, float(seq))  # sequence numbers wrap
    assert [u.data for u in got] == [_annexb(n) for n in units]
    assert [u.keyframe for u in got] == [n[0][0] & 0x1F == 5 for n in units]
    assert all(u.intact for u in got) and dep.packets_lost == 0


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(units=_units, mtu=st.integers(40, 1500), data=st.data())
def test_h264_loss_never_yields_a_wrong_intact_unit(units: list[list[bytes]], mtu: int,
                                                    data: st.DataObject) -> None:
    packets = _packetize_h264(units, mtu)
    lost = data.draw(st.sets(st.integers(0, len(packets) - 1), max_size=3))
    dep = H264Depacketizer()
    got = []
    for seq, (payload, ts, marker) in enumerate(packets):
        if seq not in lost:
            got += dep.push(payload, seq, ts, marker, 0.0)
    # exactly the units whose every packet arrived come out intact; the others are flagged or missing
    whole = [i for i in range(len(units)) if all(seq not in lost for seq,
                                                 p in enumerate(packets) if p[1] == 3000 * i)]
    assert [u.data for u in got if u.intact] == [_annexb(units[i]) for i in whole]
    received = sorted(set(range(len(packets))) - lost)
    assert dep.packets_lost == ((received[-1] - received[0] + 1 - len(received)) if received else 0)


def test_sdp_parameter_sets_go_before_keyframes_without_their_own() -> None:
    sps, pps = bytes([0x67, 1, 2, 3]), bytes([0x68, 4])
    sprop = ",".join(base64.b64encode(n).decode() for n in (sps, pps))
    dep = depacketizer_for("H264", {"sprop-parameter-sets": sprop})
    assert isinstance(dep, H264Depacketizer)
    idr, inter = bytes([0x65, 0x89, 9]), bytes([0x41, 0x87])
    (unit,) = dep.push(idr, 1, 100, True, 0.0)
    assert unit.data == _annexb([sps, pps, idr]) and unit.keyframe and unit.intact
    (unit,) = dep.push(inter, 2, 200, True, 0.0)
    assert unit.data == _annexb([inter]) and not unit.keyframe
    new_sps = bytes([0x67, 5, 5])  # in-band parameter sets win and are remembered
    (unit,) = dep.push(
        bytes([24]) + len(new_sps).to_bytes(2, "big") + new_sps + len(idr).to_bytes(2, "big") + idr,
        3,
        300,
        True,
        0.0,
    )
    assert unit.data == _annexb([pps, new_sps, idr])
    (unit,) = dep.push(idr, 4, 400, True, 0.0)
    assert unit.data == _annexb([new_sps, pps, idr])


def test_h265_fragments_aggregates_and_sprop() -> None:
    vps, sps, pps = bytes([0x40, 1, 7]), bytes([0x42, 1, 8]), bytes([0x44, 1, 9])
    dep = depacketizer_for("H265", {k: base64.b64encode(v).decode() for k, v in
                                    (("sprop-vps", vps), ("sprop-sps", sps), ("sprop-pps", pps))})
    assert isinstance(dep, H265Depacketizer)
    idr = bytes([0x26, 0x01, 0x80]) + bytes(range(50))  # IDR_W_RADL (type 19), first slice segment
    fu = [bytes([0x62, 0x01, 0x80 | 19]) + idr[2:20], bytes([0x62, 0x01, 19]) + idr[20:40],
          bytes([0x62, 0x01, 0x40 | 19]) + idr[40:]]
    got = [u for i, p in enumerate(fu) for u in dep.push(p, i, 90, i == 2, 0.0)]
    assert [u.data for u in got] == [_annexb([vps, sps, pps, idr])] and got[0].keyframe
    trail = bytes([0x02, 0x01, 0x85, 5])  # TRAIL_R
    ap = bytes([0x60, 0x01]) + b"".join(len(n).to_bytes(2, "big") + n for n in (trail, trail))
    (unit,) = dep.push(ap, 3, 180, True, 0.0)
    assert unit.data == _annexb([trail, trail]) and not unit.keyframe


def test_lost_marker_is_detected_by_the_next_timestamp() -> None:
    dep = H264Depacketizer()
    first = dep.push(bytes([0x41, 0x81]), 1, 100, False, 0.0)  # marker packet (seq 2) lost
    second = dep.push(bytes([0x41, 0x82]), 3, 200, True, 0.0)
    assert first == [] and [u.intact for u in second] == [False, True]
    assert dep.packets_lost == 1


def test_joining_mid_picture_is_damage() -> None:
    """The first packet received is a picture's second slice: nothing says a packet was lost, but the unit is
    known incomplete (first_mb_in_slice != 0); the next unit starts cleanly."""
    dep = H264Depacketizer()
    (unit,) = dep.push(bytes([0x65, 0x40]), 7, 100, True, 0.0)
    assert not unit.intact
    (unit,) = dep.push(bytes([0x41, 0x80]), 8, 200, True, 0.0)
    assert unit.intact


def test_fragment_without_start_is_damage() -> None:
    dep = H264Depacketizer()
    assert dep.push(bytes([0x7C, 0x41]) + b"tail", 5, 100, True, 0.0) == []  # FU-A end whose start was lost
    assert dep.units_damaged == 1


def test_unsupported_encodings() -> None:
    assert depacketizer_for("VP8", {}) is None and depacketizer_for("JPEG", {}) is None


def test_rtp_payload_strips_extension_and_padding() -> None:
    ext = b"\xbe\xde\x00\x01" + b"\x10\x20\x30\x40"
    assert rtp_payload(ext + b"\x65abc", extension=True, padding=False) == b"\x65abc"
    assert rtp_payload(b"\x65abc\x00\x00\x03", extension=False, padding=True) == b"\x65abc"
    assert rtp_payload(b"\x01", extension=True, padding=False) == b""
    assert rtp_payload(b"\x65\x09", extension=False, padding=True) == b""
