"""Frame bus cost per frame per hop (one put + one get), in microseconds.

Run: ``.venv/bin/python benchmarks/bus.py [--frames N] [--repeat R]``.

Rows:
- ``same-thread``: put then get in one thread (no waiting, no wake-ups): the floor every other row is compared
  to.
- ``queue.SimpleQueue``: the standard library's cheapest thread-safe queue, same thread, for scale.
- ``threads``: one producer thread putting each of ``frames`` frames into ``k`` inboxes in turn, each drained
  by its own consumer thread. Cost = wall time / (frames x k). ``delivered`` is the share of put frames the
  consumers got (``latest`` and ``queue`` drop when consumers fall behind; ``block`` never drops). The
  producer never waits here, so it keeps the GIL for whole switch intervals and lossy consumers starve: for
  those policies the figure is the cost of a put.
- ``latency``: the same topology with a paced producer (one frame per ``--period-ms``, as a camera or decoder
  that releases the GIL between frames): put-to-get latency of each hop, median and 99th percentile, in
  microseconds.

The issue's target is <= 20 us per frame per hop. Figures are medians of ``--repeat`` runs in this process.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time

import numpy as np

from panoflow.core.bus import BusClosed, Inbox, Policy
from panoflow.core.frame import Frame

POLICIES = ("latest", "queue(8)", "block(4)")
CONSUMERS = (1, 2, 4, 8)


def make_frame() -> Frame:
    # A real 1080p image: items are passed by reference, so its size must not matter.
    return Frame(image=np.zeros((1080, 1920, 3), np.uint8), stream_id="cam", seq=0, capture_time=(0, 0))


def same_thread(policy: str, frames: int) -> float:
    inbox: Inbox[Frame] = Inbox("bench", Policy.parse(policy), ["cam"])
    frame = make_frame()
    put, get = inbox.put, inbox.get
    t0 = time.perf_counter()
    for _ in range(frames):
        put("cam", frame)
        get()
    return (time.perf_counter() - t0) / frames * 1e6


def simple_queue(frames: int) -> float:
    q: queue.SimpleQueue[Frame] = queue.SimpleQueue()
    frame = make_frame()
    put, get = q.put, q.get
    t0 = time.perf_counter()
    for _ in range(frames):
        put(frame)
        get()
    return (time.perf_counter() - t0) / frames * 1e6


def threaded(policy: str, consumers: int, frames: int) -> tuple[float, float]:
    inboxes: list[Inbox[Frame]] = [Inbox(f"c{i}", Policy.parse(policy), ["cam"]) for i in range(consumers)]
    frame = make_frame()
    got = [0] * consumers
    start = threading.Barrier(consumers + 1)

    def consume(i: int) -> None:
        get = inboxes[i].get
        n = 0
        start.wait()
        try:
            while True:
                get()
                n += 1
        except BusClosed:
            got[i] = n

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    for t in threads:
        t.start()
    puts = [inbox.put for inbox in inboxes]
    start.wait()
    t0 = time.perf_counter()
    for _ in range(frames):
        for put in puts:
            put("cam", frame)
    for inbox in inboxes:
        inbox.end_stream("cam")
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return elapsed / (frames * consumers) * 1e6, sum(got) / (frames * consumers)


def latency(policy: str, consumers: int, frames: int, period: float) -> tuple[float, float]:
    inboxes: list[Inbox[Frame]] = [Inbox(f"c{i}", Policy.parse(policy), ["cam"]) for i in range(consumers)]
    frame = make_frame()
    samples: list[float] = []  # list.append is atomic under the GIL

    def consume(i: int) -> None:
        get, clock, record = inboxes[i].get, time.perf_counter, samples.append
        try:
            while True:
                _, f = get()
                record(clock() - f.t_produced)
        except BusClosed:
            pass

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    for t in threads:
        t.start()
    for _ in range(frames):
        stamped = frame.replace(t_produced=time.perf_counter())
        for inbox in inboxes:
            inbox.put("cam", stamped)
        time.sleep(period)
    for inbox in inboxes:
        inbox.end_stream("cam")
    for t in threads:
        t.join()
    samples.sort()
    return samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def stdlib_threaded(frames: int, period: float, paced_frames: int) -> tuple[float, float, float]:
    """queue.Queue(8), one producer and one consumer thread: saturated cost, then paced latency p50/p99."""
    q: queue.Queue[float | None] = queue.Queue(8)
    samples: list[float] = []

    def consume(record: bool) -> None:
        while (t := q.get()) is not None:
            if record:
                samples.append(time.perf_counter() - t)

    consumer = threading.Thread(target=consume, args=(False,))
    consumer.start()
    t0 = time.perf_counter()
    for _ in range(frames):
        q.put(0.0)
    q.put(None)
    consumer.join()
    cost = (time.perf_counter() - t0) / frames * 1e6
    consumer = threading.Thread(target=consume, args=(True,))
    consumer.start()
    for _ in range(paced_frames):
        q.put(time.perf_counter())
        time.sleep(period)
    q.put(None)
    consumer.join()
    samples.sort()
    return cost, samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--paced-frames", type=int, default=1000)
    parser.add_argument("--period-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    med = statistics.median

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}, switch interval "
        f"{sys.getswitchinterval() * 1e3:.0f} ms, {args.frames} frames, median of {args.repeat}"
    )
    print(
        f"{'case':<30}{'policy':<10}{'consumers':>10}{'us/frame/hop':>14}{'x baseline':>12}{'delivered':>11}"
        f"{'latency p50':>13}{'p99':>9}"
    )
    base = med(same_thread("queue(8)", args.frames) for _ in range(args.repeat))
    print(f"{'same-thread put+get':<30}{'queue(8)':<10}{1:>10}{base:>14.2f}{1.0:>12.2f}{'100%':>11}")
    for policy in POLICIES[::2]:
        cost = med(same_thread(policy, args.frames) for _ in range(args.repeat))
        print(f"{'same-thread put+get':<30}{policy:<10}{1:>10}{cost:>14.2f}{cost / base:>12.2f}{'100%':>11}")
    ref = med(simple_queue(args.frames) for _ in range(args.repeat))
    print(f"{'queue.SimpleQueue (ref)':<30}{'-':<10}{1:>10}{ref:>14.2f}{ref / base:>12.2f}{'100%':>11}")
    cost, p50, p99 = stdlib_threaded(args.frames, args.period_ms / 1e3, args.paced_frames)
    print(
        f"{'queue.Queue(8) threads (ref)':<30}{'-':<10}{1:>10}{cost:>14.2f}{cost / base:>12.2f}{'100%':>11}"
        f"{p50:>13.1f}{p99:>9.1f}"
    )
    worst = 0.0
    for policy in POLICIES:
        for k in CONSUMERS:
            runs = [threaded(policy, k, args.frames) for _ in range(args.repeat)]
            cost = med(r[0] for r in runs)
            share = med(r[1] for r in runs)
            worst = max(worst, cost)
            p50, p99 = latency(policy, k, args.paced_frames, args.period_ms / 1e3)
            print(
                f"{'threads, a put per inbox':<30}{policy:<10}{k:>10}{cost:>14.2f}{cost / base:>12.2f}"
                f"{share:>11.0%}{p50:>13.1f}{p99:>9.1f}"
            )
    verdict = "meets" if worst <= 20 else "MISSES"
    print(f"worst threaded cost {worst:.2f} us/frame/hop: {verdict} the 20 us target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
