"""Two application instances on two cores: does a CPU-bound app scale, now that its Python has a GIL of its
own?

    .venv/bin/python benchmarks/app_scaling.py [--frames 120] [--work-ms 20]

Each app spends ``--work-ms`` of pure-Python work per frame (what a tracker or post-processing loop does); its
frames come from a small file read as fast as the app takes them. Same command, alternating: one
``panoflow run`` alone, then two at once; the figure is the frames/s of the two together over the one alone
(2.0 is perfect scaling on two free cores). The app's own timer is used: from its first frame to its last.
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

from benchmarks.common import machine_line
from tests.media import make_clip
from tests.support.apps import write_app
from tests.support.tempdirs import TraversableTemp

APP = """
import json, time
WORK_S = %(work)f

def busy(seconds):
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n

app = panoramasdk.node()
first = None
frames = 0
try:
    while True:
        streams = app.inputs.video_in.get()
        if first is None:
            first = time.perf_counter()
        busy(WORK_S)
        frames += len(streams)
        app.outputs.video_out.put(streams)
finally:
    with open("/opt/aws/panorama/storage/rate.json", "w") as f:
        json.dump({"fps": (frames - 1) / (time.perf_counter() - first) if frames > 1 else 0.0}, f)
"""


def _start(app: Path, clip: Path, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "panoflow", "--log-level", "warning", "run", str(app),
                             "--camera", f"camera_node={clip}", "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rate(proc: subprocess.Popen[str], state: Path) -> float:
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"panoflow run failed:\n{err[-2000:]}")
    return float(json.loads((state / "storage" / "rate.json").read_text())["fps"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--work-ms", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = TraversableTemp.open_for_sandbox(Path(tmp))  # the sandbox's uid must reach the app's files
        app = write_app(work / "app", code=APP % {"work": args.work_ms / 1e3})
        clip = make_clip(work / "clip.mp4", frames=args.frames, size=(320, 240))
        alone, together = [], []
        for i in range(args.repeat):
            alone.append(_rate(_start(app, clip, work / f"a{i}"), work / f"a{i}"))
            procs = [(_start(app, clip, work / f"b{i}{j}"), work / f"b{i}{j}") for j in range(2)]
            together.append(sum(_rate(p, s) for p, s in procs))
    one, two = statistics.median(alone), statistics.median(together)
    print(f"{'instances':<10} {'frames/s (sum)':>15} {'scaling':>8}")
    print(f"{'1':<10} {one:>15.1f} {1.0:>7.2f}x")
    print(f"{'2':<10} {two:>15.1f} {two / one:>7.2f}x")
    print(f"({args.frames} frames each, {args.work_ms:g} ms of Python per frame, median of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
