"""Soak: 2 applications x 4 RTSP cameras for 30 minutes, every camera's server restarted once a minute.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--apps 2] [--cameras 4] [--size 640x360]
                                        [--restart-every 60] [--json FILE]

Each camera is a GStreamer RTSP server process of its own (``tests/fixtures/gst_rtsp_server.py`` under
``/usr/bin/python3``) serving a 30 fps H.264 clip (a pipeline per client, so each connection starts at the
clip's first frame; the clip is longer than the restart period, so streams end only by restarts). Each
application is a real ``panoflow run`` process with a pass-through app on all the cameras (RTP over TCP).
Camera ``k``'s server is stopped (SIGTERM) and started again on the same port every ``--restart-every``
seconds, staggered so that the restarts are spread over the minute. Measured per app from ``/proc`` and its
logs: frames produced and delivered to the app, bus drops, server restarts it lived through, reconnections
(``camera_streaming`` events after the first per camera), RSS, open file descriptors and threads at the start
(20 s in) and at the end.

640x360 by default so that 8 camera sessions, 4 servers and the machine's other work fit on 2 cores; say so
when quoting the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import cpu_seconds, machine_line, open_fds, panoflow_cmd, rss_mib, threads
from tests.support.rtsp import GstServer, gst_unavailable, h264_launch

FPS = 30
START_AT_S = 20.0  # "start" figures: both apps streaming, imports and first connections done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--apps", type=int, default=2)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--restart-every", type=float, default=60.0,
                    help="seconds between restarts of one camera")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON (for run-all)")
    args = ap.parse_args(argv)
    reason = gst_unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from benchmarks.common import PASS_THROUGH
    from tests.media import make_clip
    from tests.support.apps import write_app

    size = tuple(int(x) for x in args.size.split("x"))
    seconds = args.minutes * 60
    machine = machine_line()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        app = write_app(work / "app", code=PASS_THROUGH)
        clip_s = args.restart_every + 20
        clip = make_clip(work / "cam.mp4", frames=int(clip_s * FPS), size=size)
        servers = [GstServer({"/cam": h264_launch(clip)}) for _ in range(args.cameras)]
        for s in servers:
            s.start()
        urls = [s.url("/cam") for s in servers]
        procs, logs = [], []
        for a in range(args.apps):
            log = open(work / f"app{a}.log", "w")  # noqa: SIM115 (closed with the others below)
            logs.append(log)
            cmd = panoflow_cmd(app, urls, state=work / f"state{a}", duration=seconds, log_level="info",
                               extra=["--summary-json", str(work / f"summary{a}.json")])
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log))
        t0 = time.monotonic()
        restarts = 0
        next_restart = [args.restart_every * (1 + k / args.cameras) for k in range(args.cameras)]
        start: list[dict[str, float]] = [{} for _ in procs]
        last: list[dict[str, float]] = [{} for _ in procs]
        samples: list[tuple[float, list[float]]] = []
        server_cpu = 0.0
        try:
            while any(p.poll() is None for p in procs):
                t = time.monotonic() - t0
                for k, s in enumerate(servers):
                    if t >= next_restart[k] and t < seconds - 5:
                        assert s.proc is not None
                        server_cpu += cpu_seconds(s.proc.pid)
                        s.stop()
                        s.start()
                        restarts += 1
                        next_restart[k] += args.restart_every
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        now = {"t": t, "rss": rss_mib(p.pid), "fds": open_fds(p.pid),
                               "threads": threads(p.pid), "cpu": cpu_seconds(p.pid)}
                        if now["rss"] and t <= seconds - 1:  # not while it shuts down
                            last[i] = now
                            if not start[i] and t >= START_AT_S:
                                start[i] = now
                samples.append((t, [x.get("rss", 0.0) for x in last]))
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait()
            for s in servers:
                if s.proc is not None:
                    server_cpu += cpu_seconds(s.proc.pid)
                s.stop()
            for log in logs:
                log.close()
        wall = time.monotonic() - t0
        results = []
        for i, p in enumerate(procs):
            summary = json.loads((work / f"summary{i}.json").read_text())
            events: dict[str, dict[str, int]] = {}
            for line in (work / f"app{i}.log").read_text().splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                ev = e.get("event", "")
                if ev in ("camera_streaming", "camera_down"):
                    d = events.setdefault(e.get("stream_id", "?"), {"camera_streaming": 0, "camera_down": 0})
                    d[ev] += 1
            streams = summary["streams"]
            results.append(
                {
                    "returncode": p.returncode,
                    "ok": summary["ok"],
                    "produced": sum(s["frames"] for s in streams.values()),
                    "delivered": sum(s["delivered"] for s in streams.values()),
                    "dropped": sum(s["dropped"] for s in streams.values()),
                    "per_stream_delivered": {k: s["delivered"] for k, s in streams.items()},
                    "reconnects": sum(max(0, d["camera_streaming"] - 1) for d in events.values()),
                    "down_events": sum(d["camera_down"] for d in events.values()),
                    "start": start[i],
                    "end": last[i],
                    "cores": (last[i]["cpu"] - start[i]["cpu"]) / (last[i]["t"] - start[i]["t"])
                    if start[i]
                    else 0.0,
                    "elapsed": summary["elapsed_s"],
                }
            )
    expected = args.cameras * FPS * seconds
    table = [
        ("| app | frames to the app | share of 30 fps x cameras x duration | bus drops | server restarts | "
        "reconnects | RSS start -> end (MiB) | fds start -> end | threads start -> end | CPU (cores) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, r in enumerate(results):
        s, e = r["start"], r["end"]
        table.append(
            f"| {i} | {r['delivered']} of {r['produced']} decoded | {r['delivered'] / expected:.3f} | "
            f"{r['dropped']} | {restarts} | {r['reconnects']} ({r['down_events']} camera_down) | "
            f"{s.get('rss', 0):.1f} -> {e.get('rss', 0):.1f} "
            f"({(e.get('rss', 0) / s['rss'] - 1) * 100 if s else 0:+.1f} %) | {s.get('fds', 0)} -> "
            f"{e.get('fds', 0)} | {s.get('threads', 0)} -> {e.get('threads', 0)} | {r['cores']:.2f} |")
    step = 300.0 if seconds >= 1200 else 60.0
    marks, trend = [step * k for k in range(1, int(seconds // step) + 1)], []
    for m in marks:
        near = [rss for t, rss in samples if t <= min(m, seconds - 1)]
        if near:
            trend.append((m, near[-1]))
    table += ["", "| minute | " + " | ".join(f"app {i} RSS (MiB)" for i in range(len(procs))) + " |",
              "| --- |" + " --- |" * len(procs)]
    table += [f"| {m / 60:g} | " + " | ".join(f"{x:.1f}" for x in rss) + " |" for m, rss in trend]
    ok = all(r["returncode"] == 0 for r in results)
    print(f"machine: {machine}")
    print("\n".join(table))
    print(f"({args.apps} apps x {args.cameras} cameras, {size[0]}x{size[1]} {FPS} fps H.264 over RTP/TCP "
          f"from {args.cameras} GStreamer servers, each restarted every {args.restart_every:g} s; "
          f"{args.minutes:g} min ({wall:.0f} s wall); start = {START_AT_S:g} s in, end = last sample 1 s "
          f"before the duration ends; servers used {server_cpu / wall:.2f} cores on average; every app "
          f"exited {'0' if ok else 'NON-ZERO'})")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "table": table, "results": results, "restarts": restarts, "rss_trend": trend,
            "minutes": args.minutes, "size": args.size, "when": time.strftime("%Y-%m-%d %H:%M"), "ok": ok,
            "command": " ".join(["benchmarks/soak.py", *(argv if argv is not None else sys.argv[1:])]),
        }, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
