"""The frame bus: one bounded :class:`Inbox` per consuming node, fed by one or more producer streams.

Decoders and Panorama code run in worker threads, so an inbox is built on :mod:`threading` (one lock,
conditions sharing it) and offers awaitable variants (:meth:`Inbox.aget`, :meth:`Inbox.aget_batch`,
:meth:`Inbox.aput`) for asyncio code. An awaiting task parks an asyncio future that the thread making progress
resolves with ``loop.call_soon_threadsafe``: no worker thread is held, and cancelling the task removes its
waiter.

Every stream of an inbox has its own bounded queue, so memory is bounded under every :class:`Policy`:

``latest``
    one pending item per stream; a new item replaces it (the replaced one is counted as dropped). Live
    cameras.
``queue(n)``
    FIFO of at most ``n`` items per stream; when full the oldest is dropped (counted).
``block(n)``
    FIFO of at most ``n`` items per stream; when full :meth:`Inbox.put` waits (back-pressure). Lossless.

Items are passed by reference: a frame's pixels are never copied. Consumers take items fairly, round-robin
across streams. Counters obey ``put == delivered + dropped + depth`` per stream at every instant.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, TypeVar

from panoflow.exceptions import PanoflowError

__all__ = ["BusClosed", "Inbox", "InboxStats", "Policy", "StreamStats"]

T = TypeVar("T")
R = TypeVar("R")
PolicyKind = Literal["latest", "queue", "block"]

_DEFAULT_SIZE: dict[str, int] = {"latest": 1, "queue": 8, "block": 4}
_POLICY_RE = re.compile(r"^\s*(latest|queue|block)\s*(?:\(\s*([0-9]+)\s*\))?\s*$")


@dataclass(frozen=True)
class Policy:
    """How an inbox treats a stream whose queue is full. ``size`` 0 means the kind's default (queue 8, block
    4)."""

    kind: PolicyKind
    size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _DEFAULT_SIZE:
            raise ValueError(f"unknown bus policy kind {self.kind!r}: expected latest, queue or block")
        if self.size == 0:
            object.__setattr__(self, "size", _DEFAULT_SIZE[self.kind])
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"bus policy {self.kind} needs a size >= 1, got {self.size!r}")
        if self.kind == "latest" and self.size != 1:
            raise ValueError(f"bus policy latest keeps exactly one item per stream, got size {self.size}")

    @classmethod
    def parse(cls, text: str) -> Policy:
        """``"latest"``, ``"queue"``, ``"queue(8)"``, ``"block"`` or ``"block(4)"`` (spaces allowed)."""
        match = _POLICY_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"invalid bus policy {text!r}: expected latest, queue, queue(N), block or "
                             "block(N) with N >= 1")
        kind, size = match.group(1), match.group(2)
        if size is not None and int(size) < 1:
            raise ValueError(f"invalid bus policy {text!r}: the size must be >= 1")
        return cls(kind, int(size) if size is not None else 0)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "latest" if self.kind == "latest" else f"{self.kind}({self.size})"


@dataclass(frozen=True)
class StreamStats:
    """Counters of one stream (or the inbox total). ``put == delivered + dropped + depth`` always holds;
    ``high_water`` is the largest depth seen."""

    put: int = 0
    delivered: int = 0
    dropped: int = 0
    depth: int = 0
    high_water: int = 0


@dataclass(frozen=True)
class InboxStats:
    """A consistent snapshot of an inbox's counters: per stream, and ``total`` (whose ``high_water`` is the
    largest total depth seen)."""

    name: str
    policy: str
    streams: Mapping[str, StreamStats]
    total: StreamStats

    def snapshot(self) -> dict[str, Any]:
        """Plain dicts for JSON, logs and metrics: the totals at the top level, each stream under
        ``streams``."""
        return {
            "name": self.name,
            "policy": self.policy,
            **asdict(self.total),
            "streams": {name: asdict(s) for name, s in self.streams.items()},
        }


class BusClosed(PanoflowError):
    """Raised by an inbox's ``get`` once it is closed (or every stream has ended) and nothing is left to
    take."""


class _Stream:
    """One producer stream of an inbox: its queue, counters and the waiters blocked on it being full."""

    __slots__ = (
        "aputters",
        "delivered",
        "dropped",
        "ended",
        "high",
        "items",
        "name",
        "not_full",
        "put",
        "putters",
    )

    def __init__(self, name: str, lock: threading.Lock):
        self.name = name
        self.items: deque[Any] = deque()
        self.ended = False
        self.not_full = threading.Condition(lock)
        self.putters = 0  # threads waiting in put
        self.aputters: deque[asyncio.Future[None]] = deque()
        self.put = self.delivered = self.dropped = self.high = 0


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    """Resolve the oldest parked future (from any thread). Caller holds the inbox lock."""
    while waiters:
        fut = waiters.popleft()
        try:
            fut.get_loop().call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # its event loop is closed: nobody is waiting there any more
            continue
        return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        _wake_one(waiters)


class Inbox(Generic[T]):
    """A bounded, thread-safe inbox with one queue per producer stream. See the module docstring.

    ``put`` comes from producers (any thread), ``get``/``get_batch`` from the consuming node. A stream must be
    known (``streams`` or :meth:`add_stream`) before it is put to. The inbox is finished when it is closed or
    every stream has ended; ``get*`` then drain what is pending and raise :class:`BusClosed`.
    """

    def __init__(self, name: str, policy: Policy | str, streams: Sequence[str] = ()):
        self.name = name
        self.policy = Policy.parse(policy) if isinstance(policy, str) else policy
        self._size = self.policy.size
        self._blocking = self.policy.kind == "block"
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._streams: dict[str, _Stream] = {}
        self._ready: deque[_Stream] = deque()  # streams with pending items, in round-robin order
        self._n_ended = 0
        self._depth = 0
        self._high = 0
        self._closed = False
        self._getters = 0  # threads waiting in get/get_batch
        self._agetters: deque[asyncio.Future[None]] = deque()
        for stream in streams:
            self.add_stream(stream)

    def __repr__(self) -> str:
        return f"<Inbox {self.name!r} {self.policy} streams={list(self._streams)} depth={self._depth}>"

    # ---- producers
    # -------------------------------------------------------------------------------------------
    def add_stream(self, stream: str) -> None:
        """Announce a producer stream. Idempotent; an ended stream stays ended."""
        with self._lock:
            if stream not in self._streams:
                self._streams[stream] = _Stream(stream, self._lock)

    def put(self, stream: str, item: T, timeout: float | None = None) -> bool:
        """Hand ``item`` to the consumer under ``stream``, per the policy (``block`` waits while the stream is
        full). Returns False, without delivering, if the inbox closed, the stream ended while waiting, or
        ``timeout`` seconds passed. Raises KeyError for an unknown stream, ValueError for an ended one."""
        with self._lock:
            st = self._producer_stream(stream)
            if self._closed:
                return False
            if self._blocking and len(st.items) >= self._size:
                deadline = None if timeout is None else time.monotonic() + timeout
                while len(st.items) >= self._size:
                    if self._closed or st.ended:
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    st.putters += 1
                    try:
                        st.not_full.wait(remaining)
                    finally:
                        st.putters -= 1
                if self._closed or st.ended:
                    return False
            self._append(st, item)
            return True

    async def aput(self, stream: str, item: T) -> bool:
        """:meth:`put` for asyncio code: waits (cancellably) instead of blocking the thread."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                st = self._producer_stream(stream)
                if self._closed:
                    return False
                if not self._blocking or len(st.items) < self._size:
                    self._append(st, item)
                    return True
                fut: asyncio.Future[None] = loop.create_future()
                st.aputters.append(fut)
            try:
                await fut
            except BaseException:
                with self._lock:
                    self._forget(st.aputters, fut, functools.partial(self._wake_putters, st))
                raise
            with self._lock:
                if st.ended:
                    return False

    def end_stream(self, stream: str) -> None:
        """The producer of ``stream`` has finished. Once every stream has ended and all is drained, ``get*``
        raise :class:`BusClosed`. Idempotent; waiters blocked putting to ``stream`` return False."""
        with self._lock:
            st = self._streams.get(stream)
            if st is None:
                raise KeyError(f"inbox {self.name!r} has no stream {stream!r}")
            if st.ended:
                return
            st.ended = True
            self._n_ended += 1
            st.not_full.notify_all()
            _wake_all(st.aputters)
            if self._all_ended():
                self._not_empty.notify_all()
                _wake_all(self._agetters)

    def close(self, drain: bool = True) -> None:
        """Stop the inbox: blocked and later puts return False; ``get*`` raise :class:`BusClosed` once
        drained. With ``drain=False`` pending items are discarded (counted as dropped) so the consumer stops
        at once."""
        with self._lock:
            self._closed = True
            if not drain:
                for st in self._streams.values():
                    st.dropped += len(st.items)
                    st.items.clear()
                self._ready.clear()
                self._depth = 0
            for st in self._streams.values():
                st.not_full.notify_all()
                _wake_all(st.aputters)
            self._not_empty.notify_all()
            _wake_all(self._agetters)

    # ---- consumers
    # -------------------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> tuple[str, T]:
        """Take the next item, round-robin across streams (FIFO within one). Blocks up to ``timeout`` seconds
        (``None`` forever, 0 polls). Raises TimeoutError, or :class:`BusClosed` when finished and drained."""
        with self._lock:
            if not self._ready:
                self._wait_ready(timeout)
            return self._take_one()

    def get_batch(self, timeout: float | None = None) -> dict[str, T]:
        """Take the next item of every stream that has one (at least one; per-stream order kept)."""
        with self._lock:
            if not self._ready:
                self._wait_ready(timeout)
            return self._take_batch()

    async def aget(self) -> tuple[str, T]:
        """:meth:`get` for asyncio code (cancellable; use ``anyio.fail_after`` for a timeout)."""
        return await self._aget(self._take_one)

    async def aget_batch(self) -> dict[str, T]:
        """:meth:`get_batch` for asyncio code."""
        return await self._aget(self._take_batch)

    # ---- state
    # -----------------------------------------------------------------------------------------------
    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self._streams)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ended(self) -> bool:
        """True when at least one stream exists and every stream has ended."""
        return self._all_ended()

    @property
    def depth(self) -> int:
        """Items pending across all streams."""
        return self._depth

    @property
    def waiting(self) -> int:
        """Consumers (threads and tasks) and producers currently waiting on this inbox."""
        with self._lock:
            putters = sum(st.putters + len(st.aputters) for st in self._streams.values())
            return self._getters + len(self._agetters) + putters

    @property
    def stats(self) -> InboxStats:
        """A consistent snapshot of the counters, per stream and in total."""
        with self._lock:
            per = {
                st.name: StreamStats(st.put, st.delivered, st.dropped, len(st.items), st.high)
                for st in self._streams.values()
            }
            total = StreamStats(
                sum(s.put for s in per.values()),
                sum(s.delivered for s in per.values()),
                sum(s.dropped for s in per.values()),
                self._depth,
                self._high,
            )
        return InboxStats(self.name, str(self.policy), per, total)

    # ---- internals (called with the lock held)
    # ---------------------------------------------------------------
    def _producer_stream(self, stream: str) -> _Stream:
        st = self._streams.get(stream)
        if st is None:
            raise KeyError(f"inbox {self.name!r} has no stream {stream!r}: call add_stream first")
        if st.ended:
            raise ValueError(f"stream {stream!r} of inbox {self.name!r} has ended")
        return st

    def _all_ended(self) -> bool:
        return bool(self._streams) and self._n_ended == len(self._streams)

    def _finished(self) -> bool:
        return self._closed or self._all_ended()

    def _closed_error(self) -> BusClosed:
        why = "is closed" if self._closed else "has no more streams"
        return BusClosed(f"inbox {self.name!r} {why} and drained")

    def _append(self, st: _Stream, item: T) -> None:
        items = st.items
        if not items:
            self._ready.append(st)
        elif len(items) >= self._size:  # latest / queue: drop the oldest (block never gets here full)
            items.popleft()
            st.dropped += 1
            self._depth -= 1
        items.append(item)
        st.put += 1
        self._depth += 1
        st.high = max(st.high, len(items))
        self._high = max(self._high, self._depth)
        if self._getters:
            self._not_empty.notify()
        if self._agetters:
            _wake_one(self._agetters)

    def _wait_ready(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._finished():
                raise self._closed_error()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"inbox {self.name!r}: nothing arrived within {timeout} s")
            self._getters += 1
            try:
                self._not_empty.wait(remaining)
            finally:
                self._getters -= 1

    def _took(self, st: _Stream) -> None:
        st.delivered += 1
        self._depth -= 1
        if st.putters or st.aputters:
            self._wake_putters(st)

    def _wake_putters(self, st: _Stream) -> None:
        if st.putters:
            st.not_full.notify()
        if st.aputters:
            _wake_one(st.aputters)

    def _wake_getters(self) -> None:
        if self._getters:
            self._not_empty.notify()
        if self._agetters:
            _wake_one(self._agetters)

    def _take_one(self) -> tuple[str, T]:
        st = self._ready.popleft()
        item = st.items.popleft()
        if st.items:
            self._ready.append(st)
        self._took(st)
        return st.name, item

    def _take_batch(self) -> dict[str, T]:
        out: dict[str, T] = {}
        for _ in range(len(self._ready)):
            st = self._ready.popleft()
            out[st.name] = st.items.popleft()
            if st.items:
                self._ready.append(st)
            self._took(st)
        return out

    async def _aget(self, take: Callable[[], R]) -> R:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._ready:
                    return take()
                if self._finished():
                    raise self._closed_error()
                fut: asyncio.Future[None] = loop.create_future()
                self._agetters.append(fut)
            try:
                await fut
            except BaseException:
                with self._lock:
                    self._forget(self._agetters, fut, self._wake_getters)
                raise

    @staticmethod
    def _forget(
        waiters: deque[asyncio.Future[None]], fut: asyncio.Future[None], pass_on: Callable[[], None]
    ) -> None:
        """A parked task was cancelled: drop its waiter, or, if it had already been woken, wake the next one
        so the wake-up is not lost."""
        try:
            waiters.remove(fut)
        except ValueError:
            pass_on()
