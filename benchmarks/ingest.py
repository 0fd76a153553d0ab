"""Ingest: file -> pass-through Panorama app -> null sink, against a bare PyAV decode-to-BGR loop over the
same file.

    .venv/bin/python benchmarks/ingest.py [--sizes 720p,1080p] [--frames 600] [--repeat 3]

Both sides run in the same command, alternating, so the ratio holds on a noisy shared machine, and both run as
a fresh process (the bare loop in a child interpreter, like ``panoflow run``): a warm process reuses the pages
of the previous frame's array, a fresh one faults them in, and comparing a warm loop with a cold run measures
the allocator, not panoflow. The warm in-process bare loop is printed too, for reference. panoflow's figure
is the runtime's own steady-state frames/s (from ``--summary-json``: first to last frame through the bus with
the app consuming, excluding interpreter start-up and file opening, as the bare loop's timer does), over the
same clip and frame count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import PASS_THROUGH
from benchmarks.decode_baseline import bare_decode_fps
from tests.media import make_clip
from tests.support.apps import write_app
from tests.support.tempdirs import TraversableTemp

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def bare_child_fps(clip: Path, frames: int) -> float:
    """The bare loop in a fresh interpreter (same conditions as a ``panoflow run`` child)."""
    out = subprocess.run([sys.executable, __file__, "--bare-child", str(clip), str(frames)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip())


def panoflow_fps(app: Path, clip: Path, frames: int, work: Path) -> float:
    summary = work / "summary.json"
    cmd = [sys.executable, "-m", "panoflow", "--log-format", "json", "--log-level", "warning", "run",
           str(app),
           "--camera", f"camera_node={clip}", "--frames", str(frames), "--state-dir", str(work / "state"),
           "--summary-json", str(summary)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    data = json.loads(summary.read_text())
    stream = data["streams"]["camera_node"]
    assert stream["delivered"] == frames, data
    return float(stream["active_fps"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bare-child", nargs=2, metavar=("CLIP", "FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.bare_child:
        print(bare_decode_fps(args.bare_child[0], int(args.bare_child[1])))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = TraversableTemp.open_for_sandbox(Path(tmp))  # the sandbox's uid must reach the app's files
        app = write_app(work / "app", code=PASS_THROUGH)
        for size in args.sizes.split(","):
            clip = make_clip(work / f"{size}.mp4", frames=args.frames, size=SIZES[size])
            warm, bare, flow = [], [], []
            for _ in range(args.repeat):
                warm.append(bare_decode_fps(clip, args.frames))
                bare.append(bare_child_fps(clip, args.frames))
                flow.append(panoflow_fps(app, clip, args.frames, work))
            w, b, f = statistics.median(warm), statistics.median(bare), statistics.median(flow)
            rows.append((size, w, b, f, f / b, f / w))
    print(f"{'clip':<8} {'bare PyAV fps':>14} {'panoflow run fps':>17} {'ratio':>7} "
          f"{'warm bare fps':>14} {'ratio vs warm':>14}")
    for size, w, b, f, r, rw in rows:
        print(f"{size:<8} {b:>14.1f} {f:>17.1f} {r:>7.2f}x {w:>14.1f} {rw:>13.2f}x")
    print(f"({args.frames} frames, median of {args.repeat} alternating runs; pass-through app, null sink)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
