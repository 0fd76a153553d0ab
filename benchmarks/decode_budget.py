"""Decode budget: CPU per camera for a 5 fps app on 4 realtime 720p30 cameras without the decode budget (every
picture decoded and converted to BGR, ``?convert=eager``), with conversion on demand alone (every picture
decoded, only the frames the app takes converted: the default) and with ``?decode=keyframes`` (1 s GOP),
alternating in the same run; and panoflow's CPU per camera against a bare PyAV decode-to-BGR loop of the same
clip.

    .venv/bin/python -m benchmarks.decode_budget [--cameras 4] [--window 5] [--rounds 2]

Each round starts ``panoflow run`` once per mode (``eager``, ``demand``, ``keyframes``) on ``--cameras``
looping realtime files of a camera-like 720p30 H.264 clip (sensor noise, about 2.5 Mbit/s, GOP 30 = 1 s;
benchmarks/rtsp.py). The app asks for frames at 5 fps (``get()``, then sleeps to the next 200 ms tick) and
counts the fresh ones it got. CPU is read from outside, from ``/proc``: user + system seconds of the
``panoflow run`` process and every process under it (the sandboxed app included), over a ``--window`` after a
warm-up; the frames the cameras produced in that window come from the instance's control API. The ratio is CPU
seconds per camera-second of video the cameras got through (30 frames, or one keyframe per 1 s GOP), so a
loaded machine that cannot keep up does not flatter any mode; "real time" is that video's share of the
wall-clock window (1.00 = kept up). Each mode's median over the rounds; the ratios are against ``eager``
(panoflow before the decode budget) of the same run.

The bare row decodes the same clip with PyAV (``to_ndarray("bgr24")`` per frame, slice threads, as fast as it
goes; benchmarks/streams.py's loop), measuring process CPU seconds per frame x 30: the cores one 30 fps camera
costs with no framework at all.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import cpu_seconds, machine_line, panoflow_cmd
from benchmarks.streams import bare_cores_per_camera

FPS = 30
WARMUP_S = 3.0
#: mode -> the source options it runs with
MODES = {"eager": "decode=all&convert=eager", "demand": "decode=all", "keyframes": "decode=keyframes"}
APP = """
import json
import time


class App(panoramasdk.node):
    def __init__(self):
        pass


app = App()
fresh, gets, tick = {}, 0, time.monotonic()
start = tick
try:
    while True:
        streams = app.inputs.video_in.get()
        gets += 1
        for s in streams:
            if not s.is_cached:
                fresh[s.stream_id] = fresh.get(s.stream_id, 0) + 1
        app.outputs.video_out.put(streams)
        tick += 0.2  # 5 fps
        time.sleep(max(0.0, tick - time.monotonic()))
finally:
    with open("/opt/aws/panorama/storage/bench.json", "w") as f:
        json.dump({"fresh": fresh, "gets": gets, "seconds": time.monotonic() - start}, f)
"""


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process under it (children found through /proc/*/task/*/children)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += cpu_seconds(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return total


def frames_produced(sock: Path) -> int:
    """Frames the cameras produced so far, from the instance's control API (``/status``)."""
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(str(sock))
    try:
        conn.request("GET", "/status")
        streams = json.loads(conn.getresponse().read())["streams"]
    finally:
        conn.close()
    return sum(s.get("frames", 0) for s in streams.values())


def run_mode(mode: str, clip: Path, cameras: int, window: float, work: Path) -> dict[str, float]:
    from tests.support.apps import write_app

    run_dir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    run_dir.chmod(0o755)  # the sandboxed app runs as a uid of its own: it must reach its mounts
    app = write_app(run_dir / "app", code=APP)
    uris = [f"{clip}?realtime=1&loop=1&{MODES[mode]}"] * cameras
    sock = run_dir / "control.sock"
    cmd = panoflow_cmd(app, uris, state=run_dir / "state", duration=WARMUP_S + window + 1.5,
                       extra=["--control", f"unix:{sock}"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() or frames_produced(sock) == 0:  # start-up: sandbox, app process, first frames
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"panoflow run did not start ({mode}):\n{proc.communicate()[1][-2000:]}")
            time.sleep(0.2)
        time.sleep(WARMUP_S)
        t0, c0, f0 = time.monotonic(), tree_cpu(proc.pid), frames_produced(sock)
        time.sleep(window)
        t1, c1, f1 = time.monotonic(), tree_cpu(proc.pid), frames_produced(sock)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"panoflow run failed ({mode}):\n{err[-2000:]}")
    data = json.loads((run_dir / "state" / "storage" / "bench.json").read_text())
    seconds = data["seconds"]  # the app's own run (it starts after the runtime)
    fresh = sum(data["fresh"].values()) / max(1, cameras) / seconds
    # camera-seconds of video the sources got through: a frame each 1/30 s, or a keyframe each GOP (1 s)
    video_s = (f1 - f0) * (1.0 if mode == "keyframes" else 1.0 / FPS)
    return {"cores_per_cam": (c1 - c0) / (t1 - t0) / cameras,
            "cpu_per_video_s": (c1 - c0) / max(video_s, 1e-9),
            "behind": video_s / ((t1 - t0) * cameras), "fresh_fps": fresh, "app_fps": data["gets"] / seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--window", type=float, default=5.0, help="seconds measured per run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both modes")
    args = ap.parse_args(argv)
    from benchmarks.rtsp import camera_clip

    print(f"machine: {machine_line()}")
    with tempfile.TemporaryDirectory(prefix="decode-budget-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        clip = camera_clip(work / "cam720.mp4", 6.0)  # looped: 6 GOPs per pass
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode, done in runs.items():
                done.append(run_mode(mode, clip, args.cameras, args.window, work))
        bare = bare_cores_per_camera(clip)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    base = med["eager"]
    ratios = {m: base["cpu_per_video_s"] / r["cpu_per_video_s"] for m, r in med.items()}
    labels = {"eager": "all pictures, every one converted (no budget)",
              "demand": "all pictures, conversion on demand",
              "keyframes": "keyframes only, conversion on demand"}
    print("| mode | source options | CPU s per camera-second of video | vs no budget "
          "| cores per camera (window) | real time | fresh frames/s per camera to the app | app gets/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, r in med.items():
        print(f"| {labels[mode]} | {MODES[mode]} | {r['cpu_per_video_s']:.3f} | {ratios[mode]:.2f}x fewer "
              f"| {r['cores_per_cam']:.3f} | {r['behind']:.2f} | {r['fresh_fps']:.2f} | {r['app_fps']:.2f} |")
    print(f"| bare PyAV loop, 30 fps | - | {bare:.3f} | panoflow without budget = "
          f"{base['cpu_per_video_s'] / bare:.2f}x bare | - | - | - | - |")
    print(f"({args.cameras} realtime looping files of a 720p30 camera-like clip, GOP 30 (1 s); app at 5 fps; "
          f"{args.rounds} alternating rounds of {args.window:g} s per mode, medians; CPU of panoflow run and "
          "its app process from /proc; bare = PyAV decode + to_ndarray(bgr24), slice threads, best of 3: "
          "benchmarks/streams.py)")
    from panoflow.plugins.decoders import DECODERS

    available = DECODERS.availability("h264")
    print("decoders on this machine: " + "; ".join(f"{n} {t}" for n, t in available.items()))
    if available["nvdec"] != "available":
        print("NVDEC: no figure - no NVIDIA GPU machine was at hand for this run (the GPU machines of this "
              "project were not lent to it); the software rows above are the CPU path an NVDEC row would be "
              "compared with")
    print(f"decode budget: keyframes uses {ratios['keyframes']:.2f}x fewer cores per camera; conversion on "
          f"demand alone {ratios['demand']:.2f}x fewer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
