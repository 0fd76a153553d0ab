"""The frame bus: policies, counters, closing, threads and asyncio, and a stateful model check."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque

import anyio
import anyio.lowlevel
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from panoflow.core.bus import BusClosed, Inbox, Policy

EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "100"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- Policy
# -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "size"),
    [
        ("latest", "latest", 1),
        ("latest(1)", "latest", 1),
        ("queue", "queue", 8),
        ("queue(3)", "queue", 3),
        (" queue ( 3 ) ", "queue", 3),
        ("block", "block", 4),
        ("block(16)", "block", 16),
    ],
)
def test_policy_parse(text: str, kind: str, size: int) -> None:
    policy = Policy.parse(text)
    assert (policy.kind, policy.size) == (kind, size)
    assert Policy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["", "fifo", "queue()", "queue(0)", "queue(-1)", "block(x)", "latest(2)", "queue(2"]
)
def test_policy_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="policy"):
        Policy.parse(text)


def test_policy_constructor_checks() -> None:
    assert Policy("queue").size == 8
    with pytest.raises(ValueError, match="latest"):
        Policy("latest", 3)
    with pytest.raises(ValueError, match="unknown"):
        Policy("fifo", 2)  # type: ignore[arg-type]


# ---- single-threaded behaviour per policy
# -----------------------------------------------------------------------------
def test_latest_keeps_newest_and_counts_drops() -> None:
    inbox: Inbox[int] = Inbox("sink", "latest", ["a"])
    for i in range(5):
        assert inbox.put("a", i)
    assert inbox.get(timeout=0) == ("a", 4)
    stats = inbox.stats.streams["a"]
    assert (stats.put, stats.delivered, stats.dropped, stats.depth, stats.high_water) == (5, 1, 4, 0, 1)


def test_queue_drops_oldest() -> None:
    inbox: Inbox[int] = Inbox("sink", Policy("queue", 3), ["a"])
    for i in range(5):
        inbox.put("a", i)
    assert [inbox.get(timeout=0)[1] for _ in range(3)] == [2, 3, 4]
    assert inbox.stats.total.dropped == 2
    with pytest.raises(TimeoutError):
        inbox.get(timeout=0)


def test_block_put_times_out_when_full() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(2)", ["a"])
    assert inbox.put("a", 1) and inbox.put("a", 2)
    t0 = time.monotonic()
    assert inbox.put("a", 3, timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.04
    assert inbox.stats.total.put == 2 and inbox.stats.total.dropped == 0


def test_items_are_passed_by_reference() -> None:
    payload = bytearray(1000)
    inbox: Inbox[bytearray] = Inbox("sink", "queue", ["a"])
    inbox.put("a", payload)
    assert inbox.get()[1] is payload


def test_round_robin_across_streams() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue(8)", ["a", "b"])
    for i in range(3):
        inbox.put("a", i)
    inbox.put("b", 10)
    assert [inbox.get(timeout=0) for _ in range(4)] == [("a", 0), ("b", 10), ("a", 1), ("a", 2)]


def test_get_batch_one_per_stream() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue(8)", ["a", "b", "c"])
    inbox.put("a", 1)
    inbox.put("a", 2)
    inbox.put("c", 3)
    assert inbox.get_batch(timeout=0) == {"a": 1, "c": 3}
    assert inbox.get_batch(timeout=0) == {"a": 2}


def test_unknown_and_ended_streams() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue")
    with pytest.raises(KeyError, match="add_stream"):
        inbox.put("a", 1)
    with pytest.raises(KeyError):
        inbox.end_stream("a")
    inbox.add_stream("a")
    inbox.add_stream("a")
    assert inbox.streams == ("a",)
    inbox.end_stream("a")
    inbox.end_stream("a")
    with pytest.raises(ValueError, match="ended"):
        inbox.put("a", 1)


def test_end_streams_then_drain_then_closed() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue", ["a", "b"])
    inbox.put("a", 1)
    inbox.end_stream("a")
    assert not inbox.ended
    inbox.end_stream("b")
    assert inbox.ended and not inbox.closed
    assert inbox.get(timeout=0) == ("a", 1)
    with pytest.raises(BusClosed, match="sink"):
        inbox.get()
    with pytest.raises(BusClosed):
        inbox.get_batch()


def test_inbox_without_streams_is_not_ended() -> None:
    inbox: Inbox[int] = Inbox("sink", "latest")
    assert not inbox.ended
    with pytest.raises(TimeoutError):
        inbox.get(timeout=0.01)


def test_close_drain_and_no_drain() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue", ["a"])
    inbox.put("a", 1)
    inbox.close()
    assert inbox.put("a", 2) is False
    assert inbox.get() == ("a", 1)
    with pytest.raises(BusClosed):
        inbox.get()

    inbox = Inbox("sink", "queue", ["a"])
    inbox.put("a", 1)
    inbox.close(drain=False)
    with pytest.raises(BusClosed):
        inbox.get()
    assert inbox.stats.total.dropped == 1


def test_stats_snapshot_is_plain_data() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(2)", ["a"])
    inbox.put("a", 1)
    snap = inbox.stats.snapshot()
    assert snap["policy"] == "block(2)"
    assert {k: snap[k] for k in ("put", "delivered", "dropped", "depth", "high_water")} == {
        "put": 1,
        "delivered": 0,
        "dropped": 0,
        "depth": 1,
        "high_water": 1,
    }
    assert snap["streams"]["a"]["depth"] == 1


# ---- threads
# ------------------------------------------------------------------------------------------------------
def test_block_back_pressure_slows_producer_and_keeps_everything() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(2)", ["a"])
    n, delay = 30, 0.002
    received: list[int] = []

    def consume() -> None:
        try:
            while True:
                received.append(inbox.get()[1])
                time.sleep(delay)
        except BusClosed:
            pass

    consumer = threading.Thread(target=consume)
    consumer.start()
    t0 = time.monotonic()
    for i in range(n):
        assert inbox.put("a", i)
    produced_in = time.monotonic() - t0
    inbox.end_stream("a")
    consumer.join(5)
    assert received == list(range(n))
    stats = inbox.stats.total
    assert stats.dropped == 0 and stats.high_water <= 2
    assert produced_in >= (n - 3) * delay * 0.8  # the producer ran at the consumer's pace


def test_blocked_put_returns_false_on_close() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(1)", ["a"])
    inbox.put("a", 0)
    result: list[bool] = []
    producer = threading.Thread(target=lambda: result.append(inbox.put("a", 1)))
    producer.start()
    _wait_for(lambda: inbox.waiting == 1)
    inbox.close()
    producer.join(5)
    assert result == [False]
    assert inbox.stats.total.put == 1


def test_blocked_get_wakes_on_put_and_on_end() -> None:
    inbox: Inbox[int] = Inbox("sink", "latest", ["a"])
    got: list[object] = []

    def consume() -> None:
        try:
            while True:
                got.append(inbox.get(timeout=5))
        except BusClosed as exc:
            got.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    _wait_for(lambda: inbox.waiting == 1)
    inbox.put("a", 7)
    _wait_for(lambda: len(got) == 1 and inbox.waiting == 1)
    inbox.end_stream("a")
    consumer.join(5)
    assert got[0] == ("a", 7) and isinstance(got[1], BusClosed)


def test_many_producers_many_streams_nothing_lost() -> None:
    streams = [f"s{i}" for i in range(4)]
    inbox: Inbox[int] = Inbox("sink", "block(3)", streams)
    n = 300

    def produce(stream: str) -> None:
        for i in range(n):
            inbox.put(stream, i)
        inbox.end_stream(stream)

    producers = [threading.Thread(target=produce, args=(s,)) for s in streams]
    for p in producers:
        p.start()
    seen: dict[str, list[int]] = {s: [] for s in streams}
    try:
        while True:
            for stream, item in inbox.get_batch(timeout=5).items():
                seen[stream].append(item)
    except BusClosed:
        pass
    for p in producers:
        p.join(5)
    assert all(items == list(range(n)) for items in seen.values())


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


# ---- asyncio
# ------------------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_aget_receives_from_thread_producer() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(2)", ["a"])

    def produce() -> None:
        for i in range(20):
            inbox.put("a", i)
        inbox.end_stream("a")

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    with anyio.fail_after(5):
        try:
            while True:
                got.append((await inbox.aget())[1])
        except BusClosed:
            pass
    producer.join(5)
    assert got == list(range(20))


@pytest.mark.anyio
async def test_aput_waits_for_thread_consumer_and_aget_batch() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(1)", ["a", "b"])
    received: list[dict[str, int]] = []

    def consume() -> None:
        try:
            while True:
                received.append(inbox.get_batch(timeout=5))
        except BusClosed:
            pass

    consumer = threading.Thread(target=consume)
    consumer.start()
    with anyio.fail_after(5):
        for i in range(10):
            assert await inbox.aput("a", i)
            assert await inbox.aput("b", i)
        inbox.end_stream("a")
        inbox.end_stream("b")
    consumer.join(5)
    assert [d["a"] for d in received if "a" in d] == list(range(10))
    assert [d["b"] for d in received if "b" in d] == list(range(10))

    batch_inbox: Inbox[int] = Inbox("b", "queue", ["x", "y"])
    batch_inbox.put("y", 1)
    assert await batch_inbox.aget_batch() == {"y": 1}


@pytest.mark.anyio
async def test_aput_returns_false_when_closed_while_waiting() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(1)", ["a"])
    await inbox.aput("a", 0)
    async with anyio.create_task_group() as tg:
        result: list[bool] = []

        async def put() -> None:
            result.append(await inbox.aput("a", 1))

        tg.start_soon(put)
        await _await_for(lambda: inbox.waiting == 1)
        inbox.close()
    assert result == [False]


@pytest.mark.anyio
async def test_cancelled_aget_and_aput_leave_no_waiter() -> None:
    inbox: Inbox[int] = Inbox("sink", "block(1)", ["a"])
    with anyio.move_on_after(0.02):
        await inbox.aget()
    assert inbox.waiting == 0
    inbox.put("a", 1)
    with anyio.move_on_after(0.02):
        await inbox.aput("a", 2)
    assert inbox.waiting == 0
    assert await inbox.aget() == ("a", 1)


@pytest.mark.anyio
async def test_wakeup_of_cancelled_waiter_is_passed_on() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue", ["a"])
    first = asyncio.create_task(inbox.aget())
    second = asyncio.create_task(inbox.aget())
    await _await_for(lambda: inbox.waiting == 2)
    inbox.put("a", 1)  # wakes ``first`` (its resolution is scheduled, not yet run)...
    first.cancel()  # ...which is cancelled before it runs: ``second`` must get the item
    with anyio.fail_after(5):
        assert await second == ("a", 1)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert inbox.waiting == 0


@pytest.mark.anyio
async def test_aget_raises_busclosed() -> None:
    inbox: Inbox[int] = Inbox("sink", "queue", ["a"])
    task = asyncio.create_task(inbox.aget())
    await _await_for(lambda: inbox.waiting == 1)
    inbox.close()
    with pytest.raises(BusClosed):
        await task


@pytest.mark.anyio
async def test_mixed_thread_and_async_consumers_get_everything_once() -> None:
    streams = ("a", "b", "c")
    inbox: Inbox[tuple[str, int]] = Inbox("sink", "block(1)", streams)
    n = 200
    taken: list[tuple[str, int]] = []  # list.append is atomic

    def produce(stream: str) -> None:
        for i in range(n):
            assert inbox.put(stream, (stream, i))
        inbox.end_stream(stream)

    def consume() -> None:
        try:
            while True:
                taken.append(inbox.get(timeout=5)[1])
        except BusClosed:
            pass

    threads = [threading.Thread(target=produce, args=(s,)) for s in streams]
    threads += [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    with anyio.fail_after(10):
        try:
            while True:
                taken.append((await inbox.aget())[1])
                await anyio.lowlevel.checkpoint()
        except BusClosed:
            pass
    for t in threads:
        t.join(5)
    assert sorted(taken) == sorted((s, i) for s in streams for i in range(n))


async def _await_for(condition: object, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.001)


# ---- stateful model check
# -----------------------------------------------------------------------------------------
STREAMS = ("a", "b", "c")


class InboxModel(RuleBasedStateMachine):
    """Single-threaded rules against a tiny model (per-stream deques, a round-robin ready list, counters)."""

    @initialize(policy=st.sampled_from(["latest", "queue(1)", "queue(3)", "block(1)", "block(2)"]))
    def setup(self, policy: str) -> None:
        self.policy = Policy.parse(policy)
        self.inbox: Inbox[int] = Inbox("model", self.policy, STREAMS[:2])
        self.queues: dict[str, deque[int]] = {s: deque() for s in STREAMS[:2]}
        self.ready: deque[str] = deque()
        self.counts = {s: [0, 0, 0] for s in STREAMS}  # put, delivered, dropped
        self.ended: set[str] = set()
        self.closed = False
        self.next_item = 0

    def finished(self) -> bool:
        return self.closed or (bool(self.queues) and self.ended == set(self.queues))

    @rule(stream=st.sampled_from(STREAMS))
    def add_stream(self, stream: str) -> None:
        self.inbox.add_stream(stream)
        self.queues.setdefault(stream, deque())

    @rule(stream=st.sampled_from(STREAMS), count=st.integers(1, 4))
    def put(self, stream: str, count: int) -> None:
        for _ in range(count):
            self.put_one(stream)

    def put_one(self, stream: str) -> None:
        item, self.next_item = self.next_item, self.next_item + 1
        if stream not in self.queues:
            with pytest.raises(KeyError):
                self.inbox.put(stream, item, timeout=0)
            return
        if stream in self.ended:
            with pytest.raises(ValueError):
                self.inbox.put(stream, item, timeout=0)
            return
        accepted = self.inbox.put(stream, item, timeout=0)
        queue = self.queues[stream]
        full = len(queue) >= self.policy.size
        if self.closed or (full and self.policy.kind == "block"):
            assert accepted is False
            return
        assert accepted is True
        if not queue:
            self.ready.append(stream)
        elif full:
            queue.popleft()
            self.counts[stream][2] += 1
        queue.append(item)
        self.counts[stream][0] += 1

    def take(self, stream: str) -> int:
        item = self.queues[stream].popleft()
        self.counts[stream][1] += 1
        if self.queues[stream]:
            self.ready.append(stream)
        return item

    @rule()
    def get(self) -> None:
        if not self.ready:
            with pytest.raises(BusClosed if self.finished() else TimeoutError):
                self.inbox.get(timeout=0)
            return
        stream = self.ready.popleft()
        assert self.inbox.get(timeout=0) == (stream, self.take(stream))

    @rule()
    def get_batch(self) -> None:
        if not self.ready:
            with pytest.raises(BusClosed if self.finished() else TimeoutError):
                self.inbox.get_batch(timeout=0)
            return
        order = list(self.ready)
        self.ready.clear()
        expected = {s: self.take(s) for s in order}
        batch = self.inbox.get_batch(timeout=0)
        assert batch == expected and list(batch) == order

    @rule(stream=st.sampled_from(STREAMS))
    def end_stream(self, stream: str) -> None:
        if stream not in self.queues:
            with pytest.raises(KeyError):
                self.inbox.end_stream(stream)
            return
        self.inbox.end_stream(stream)
        self.ended.add(stream)

    @precondition(lambda self: not self.closed and self.next_item > 8)  # closing early ends the story
    @rule(drain=st.booleans())
    def close(self, drain: bool) -> None:
        self.inbox.close(drain=drain)
        self.closed = True
        if not drain:
            for stream, queue in self.queues.items():
                self.counts[stream][2] += len(queue)
                queue.clear()
            self.ready.clear()

    @invariant()
    def counters_match(self) -> None:
        stats = self.inbox.stats
        assert set(stats.streams) == set(self.queues)
        for stream, queue in self.queues.items():
            s = stats.streams[stream]
            assert len(queue) <= self.policy.size and s.high_water <= self.policy.size  # memory bounded
            assert (s.put, s.delivered, s.dropped, s.depth) == (*self.counts[stream], len(queue))
            assert s.put == s.delivered + s.dropped + s.depth
        assert stats.total.depth == self.inbox.depth == sum(len(q) for q in self.queues.values())
        assert self.inbox.ended == (bool(self.queues) and self.ended == set(self.queues))
        assert self.inbox.closed == self.closed
        assert self.inbox.waiting == 0


InboxModel.TestCase.settings = settings(max_examples=EXAMPLES, deadline=None, stateful_step_count=40)
TestInboxModel = InboxModel.TestCase
