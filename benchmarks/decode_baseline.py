"""Decode baseline: bare PyAV decode-to-BGR vs the ``file`` source emitting into a no-op.

Run: ``.venv/bin/python benchmarks/decode_baseline.py [PATH] [--frames N] [--repeat R] [--thread-types]``.
Without PATH a 1080p, 300-frame H.264 clip is generated with ``tests/media.py`` (run from the repository
root).

Rows:
- ``bare PyAV (T)``: ``av.open`` + ``container.decode`` + ``to_ndarray(format="bgr24")`` with decoder
  threading ``T``; with ``--thread-types`` every threading mode (SLICE, FRAME, AUTO) gets a row, else only the
  one
  :class:`~panoflow.plugins.sources.FileSource` uses.
- ``FileSource -> no-op emit``: the same clip through the source (worker thread, Frame construction), so the
  ratio against the bare row with the same threading is the source's overhead.

Figures are the median and the best of ``--repeat`` runs in this process, interleaved so that drift hits every
row alike (on a shared machine the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import av

from panoflow.core.frame import Frame
from panoflow.plugins.sources import DECODE_THREAD_TYPE, FileSource

THREAD_TYPES = ("SLICE", "FRAME", "AUTO")


def bare_decode_fps(
    path: str | Path, frames: int | None = None, *, thread_type: str = DECODE_THREAD_TYPE
) -> float:
    """Frames per second of a bare PyAV decode-to-BGR loop over ``path`` (at most ``frames`` frames)."""
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        started = time.perf_counter()
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            count += 1
            if frames is not None and count >= frames:
                break
        elapsed = time.perf_counter() - started
    return count / elapsed


def filesource_fps(path: str | Path, frames: int | None = None) -> float:
    """Frames per second of :class:`FileSource` over ``path`` emitting into a no-op (includes opening the
    file)."""
    count = 0

    def emit(_frame: Frame) -> bool:
        nonlocal count
        count += 1
        return True

    options = {"frames": str(frames)} if frames else {}
    source = FileSource(str(path), stream_id="bench", options=options)
    started = time.perf_counter()
    anyio.run(source.run, emit)
    return count / (time.perf_counter() - started)


def _runs(rows: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeat):
        for name, fn in rows.items():
            runs[name].append(fn())
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", help="clip to decode (default: generate 1080p x 300 frames)")
    parser.add_argument("--frames", type=int, default=None, help="decode at most N frames per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median reported)")
    parser.add_argument("--thread-types", action="store_true", help="a bare row per threading mode")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.path) if args.path else None
        if path is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.media import make_clip

            print("generating a 1920x1080, 300-frame H.264 clip ...", file=sys.stderr)
            path = make_clip(Path(tmp) / "bench_1080p.mp4", frames=300, size=(1920, 1080), fps=30)
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            print(
                f"clip: {path.name} {s.width}x{s.height} {s.frames or '?'} frames, codec "
                f"{s.codec_context.name}"
            )
        kinds = THREAD_TYPES if args.thread_types else (DECODE_THREAD_TYPE,)
        clip, frames = path, args.frames
        rows: dict[str, Callable[[], float]] = {
            f"bare PyAV ({t})": functools.partial(bare_decode_fps, clip, frames, thread_type=t) for t in kinds
        }
        rows[f"FileSource ({DECODE_THREAD_TYPE}) -> no-op emit"] = functools.partial(
            filesource_fps, clip, frames
        )
        runs = _runs(rows, args.repeat)

    base = f"bare PyAV ({DECODE_THREAD_TYPE})"
    median = {name: statistics.median(v) for name, v in runs.items()}
    best = {name: max(v) for name, v in runs.items()}
    width = max(len(name) for name in runs)
    print(f"{'row':<{width}}  {'median fps':>10}  {'ratio':>6}  {'best fps':>8}  {'ratio':>6}")
    for name in runs:
        print(
            f"{name:<{width}}  {median[name]:10.1f}  {median[name] / median[base]:6.2f}"
            f"  {best[name]:8.1f}  {best[name] / best[base]:6.2f}"
        )
    print(f"(ratios against {base}, FileSource's threading; {args.repeat} interleaved runs per row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
