"""Source path: CPU per frame of an RTSP camera's decode thread, FFmpeg's default decoder threads and a
copying ``to_ndarray`` against what :class:`~panoflow.plugins.rtsp.decode.FrameDecoder` does now.

    .venv/bin/python benchmarks/source_path.py [--frames 300] [--rounds 7]

Both rows decode the same camera-like 720p30 H.264 clip (the ``streams`` benchmark's, about 2.4 Mbit/s) packet
by packet into BGR arrays in one thread:

- ``before``: ``CodecContext`` with slice threading and FFmpeg's default thread count (one decoder thread per
  core plus one, per camera), ``frame.to_ndarray(format="bgr24")`` (a new swscale context with its own threads
  for every frame, then a copy into a fresh array);
- ``now``: ``FrameDecoder`` itself (one decoder thread per camera by default, ``decode_threads=1``; one reused
  single-threaded swscale context; the converted picture's buffer is the array, no copy).

The figure is process CPU time (user + system, all threads) per frame, so it counts the helper threads too;
rounds alternate and the ratio is the median of per-round ratios. CPU per frame x 30 is what one 30 fps camera
costs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import av

from benchmarks.common import machine_line


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def packets(clip: Path, frames: int) -> tuple[bytes, list[bytes]]:
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        extradata = bytes(s.codec_context.extradata or b"")
        data = [bytes(p) for p in c.demux(s) if p.size]
    return extradata, data[:frames]


def before(extradata: bytes, data: list[bytes]) -> tuple[float, int]:
    cc = av.CodecContext.create("h264", "r")
    cc.extradata = extradata
    cc.thread_type = "SLICE"
    n, c0 = 0, cpu()
    for unit in data:
        for picture in cc.decode(av.Packet(unit)):
            picture.to_ndarray(format="bgr24")
            n += 1
    return (cpu() - c0) / max(1, n), n


def decode_only(extradata: bytes, data: list[bytes],
                options: dict[str, str] | None = None) -> tuple[float, int]:
    """Decode alone (one thread, as ``now``), no conversion: the floor; ``options`` e.g. skip_loop_filter."""
    cc = av.CodecContext.create("h264", "r")
    cc.extradata = extradata
    cc.thread_type = "SLICE"
    cc.thread_count = 1
    if options:
        cc.options = options
    n, c0 = 0, cpu()
    for unit in data:
        n += len(cc.decode(av.Packet(unit)))
    return (cpu() - c0) / max(1, n), n


def now(extradata: bytes, data: list[bytes]) -> tuple[float, int]:
    from panoflow.plugins.rtsp.decode import CodedPicture, FrameDecoder, NewStream, UnitQueue

    count = [0]

    def emit(_frame: object) -> bool:
        count[0] += 1
        return count[0] < len(data)

    queue = UnitQueue(len(data) + 1)
    queue.offer(NewStream("h264", extradata))
    for unit in data:
        queue.offer(CodedPicture(unit, False, time.time()))
    decoder = FrameDecoder(stream_id="cam", stream_uri="bench", emit=emit, downscale=None)
    c0 = cpu()
    decoder.run(queue)
    return (cpu() - c0) / max(1, count[0]), count[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    from benchmarks.rtsp import camera_clip

    with tempfile.TemporaryDirectory() as tmp:
        clip = camera_clip(Path(tmp) / "cam720.mp4", args.frames / 30 + 0.5)
        extradata, data = packets(clip, args.frames)
    b, n, d, f = [], [], [], []
    before(extradata, data[:30])
    now(extradata, data[:30])
    for _ in range(args.rounds):
        b.append(before(extradata, data)[0])
        n.append(now(extradata, data)[0])
        d.append(decode_only(extradata, data)[0])
        f.append(decode_only(extradata, data, {"skip_loop_filter": "all"})[0])
    ratio = statistics.median(x / y for x, y in zip(n, b))
    mb, mn = statistics.median(b) * 1e3, statistics.median(n) * 1e3
    md, mf = statistics.median(d) * 1e3, statistics.median(f) * 1e3
    rd = statistics.median(x / y for x, y in zip(d, b))
    rf = statistics.median(x / y for x, y in zip(f, b))
    print(f"machine: {machine_line()}")
    print(
        "| decode thread, 720p30 camera | CPU ms per frame (median) | cores per 30 fps camera | vs before |"
    )
    print("| --- | --- | --- | --- |")
    print(f"| before: FFmpeg default threads, to_ndarray copy | {mb:.2f} | {mb * 30 / 1e3:.3f} | 1.00x |")
    print(f"| now: FrameDecoder (1 decoder thread, reused 1-thread swscale, no copy) | {mn:.2f} | "
          f"{mn * 30 / 1e3:.3f} | {ratio:.2f}x |")
    print(f"| for scale: decode alone, 1 thread, no BGR | {md:.2f} | {md * 30 / 1e3:.3f} | {rd:.2f}x |")
    print("| for scale: decode alone with skip_loop_filter=all (not used: no deblocking, different pixels) "
          f"| {mf:.2f} | {mf * 30 / 1e3:.3f} | {rf:.2f}x |")
    print(
        f"({len(data)} frames, {args.rounds} alternating rounds; process CPU time, helper threads included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
