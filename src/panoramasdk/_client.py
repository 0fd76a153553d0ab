"""The application process's connection to the panoflow runtime (one per process, like the device's SDK).

Unmodified Panorama code calls ``panoramasdk.node()`` with no arguments, so the SDK finds its runtime by
itself: the runtime starts the application process with the connected socket as an inherited descriptor named
by ``PANOFLOW_SDK_FD`` (tests may :func:`bind` a client of their own). Requests are serialised: one request
and its answer at a time, whichever thread of the app asks.

Frames arrive as shared-memory segments (file descriptors sent once per segment, mapped once): ``media.image``
is a writable numpy view of the runtime's copy of the frame, so drawing on it in place shows on the output.
When the last array on a segment is garbage, the segment is handed back to the runtime with the next request.
"""

from __future__ import annotations

import collections
import mmap
import os
import socket
import threading
import weakref
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from panoramasdk._wire import Channel, WireError

__all__ = ["Client", "RemoteError", "StreamsExhausted", "TimeoutException", "bind", "current", "unbind"]

ENV_FD = "PANOFLOW_SDK_FD"
UNBOUND_MESSAGE = (
    "panoramasdk.node() needs the panoflow runtime: run this application with `panoflow run APP_DIR` "
    "(or deploy it to `panoflow serve`)"
)


class TimeoutException(TimeoutError):
    """No new frame arrived within the ``timeout`` given to ``port.get``
    (``panoramasdk.TimeoutException``)."""


class StreamsExhausted(SystemExit):
    """Every input stream has ended and its frames were consumed, or the runtime is stopping.

    A :class:`SystemExit` on purpose: application loops written as ``while True: try: ... except Exception:``
    cannot swallow it, and when nothing catches it the application ends cleanly (exit status 0).
    """

    def __init__(self, message: str = "every input stream has ended"):
        super().__init__(0)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RemoteError(RuntimeError):
    """The runtime refused a request for a reason that has no closer Python exception."""


_ERRORS = {
    "KeyError": KeyError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "TimeoutException": TimeoutException,
    "StreamsExhausted": StreamsExhausted,
    "TimeoutError": TimeoutError,  # call(..., time_out=) got no result in time
}


class Client:
    """Request/answer over one :class:`~panoramasdk._wire.Channel`, plus the shared-memory segments it
    received."""

    def __init__(self, sock: socket.socket):
        self.channel = Channel(sock)
        self._lock = threading.Lock()
        self._segments: Dict[int, mmap.mmap] = {}
        self._refs: Dict[int, int] = {}
        self._released: Deque[int] = collections.deque()  # appended from finalizers, any thread
        self._refs_lock = threading.Lock()  # never held while a finalizer could need it (they only append)
        self.node: Dict[str, Any] = {}
        self.closed = False

    def hello(self) -> Dict[str, Any]:
        """Introduce this process; the answer describes the node (id, inputs with parameter values,
        outputs)."""
        self.node = self.request({"op": "hello", "pid": os.getpid()})
        return self.node

    def request(self, message: Dict[str, Any], answer: bool = True) -> Dict[str, Any]:
        """Send ``message`` and return the runtime's answer; a refusal is raised as the matching exception.
        ``answer=False`` (``put``) does not wait: a failure comes back as the answer to the next request."""
        with self._lock:
            if self.closed:
                raise StreamsExhausted("the runtime has stopped")
            released = self._take_released()
            if released:
                message["release"] = released
            if not answer:
                message["noreply"] = True
            try:
                self.channel.send(message)
                if not answer:
                    return {"ok": True}
                reply, fds = self.channel.recv()
            except (EOFError, OSError, WireError):
                self.closed = True
                raise StreamsExhausted("the runtime has stopped") from None
            try:
                self._map_segments(reply.get("segments") or [], fds)
            finally:
                for fd in fds:
                    os.close(fd)
        if reply.get("ok"):
            return reply
        error = reply.get("error") or {}
        kind = _ERRORS.get(str(error.get("type")), RemoteError)
        raise kind(str(error.get("message", "the runtime refused the request")))

    def send_exit(self, status: str, **details: Any) -> None:
        """Tell the runtime how the application ended (best effort: it may be gone already)."""
        with self._lock:
            if self.closed:
                return
            try:
                self.channel.send({"op": "exit", "status": status, **details})
                self.channel.recv()
            except (EOFError, OSError, WireError):
                pass
            self.closed = True

    def image(self, segment: int, shape: List[int], dtype: str) -> np.ndarray:
        """A writable array on a segment the runtime sent; the segment is released when the array is
        garbage."""
        mm = self._segments.get(segment)
        if mm is None:
            raise RemoteError(f"the runtime sent a frame in unknown segment {segment}")
        arr: np.ndarray = np.ndarray(tuple(shape), dtype=np.dtype(dtype), buffer=mm)
        with self._refs_lock:
            self._refs[segment] = self._refs.get(segment, 0) + 1
        weakref.finalize(arr, self._released.append, segment)
        return arr

    def _map_segments(self, segments: List[Dict[str, Any]], fds: List[int]) -> None:
        if len(segments) != len(fds):
            raise RemoteError(f"the runtime announced {len(segments)} segments with {len(fds)} descriptors")
        for info, fd in zip(segments, fds):
            # a mapping is never closed explicitly: arrays on it keep the mmap object alive, and closing it
            # under them would leave them pointing at unmapped memory
            self._segments[int(info["id"])] = mmap.mmap(fd, int(info["size"]))

    def _take_released(self) -> List[int]:
        """Segments whose last array died since the last request (each reported once no array is left)."""
        out: List[int] = []
        with self._refs_lock:
            while self._released:
                segment = self._released.popleft()
                left = self._refs.get(segment, 0) - 1
                if left <= 0:
                    self._refs.pop(segment, None)
                    out.append(segment)
                else:
                    self._refs[segment] = left
        return out


_bound_lock = threading.Lock()
_bound: Optional[Client] = None


def bind(client: Client) -> None:
    """Make ``client`` the connection that ``panoramasdk.node()`` uses (tests, and the bootstrap)."""
    global _bound
    with _bound_lock:
        _bound = client


def unbind() -> None:
    global _bound
    with _bound_lock:
        _bound = None


def current() -> Client:
    """The process's connection, made on first use from ``PANOFLOW_SDK_FD``; RuntimeError outside panoflow."""
    global _bound
    with _bound_lock:
        if _bound is None:
            fd = os.environ.get(ENV_FD, "")
            if not fd.isdigit():
                raise RuntimeError(UNBOUND_MESSAGE)
            client = Client(socket.socket(fileno=int(fd)))
            client.hello()
            _bound = client
        return _bound


def connection_state() -> Tuple[bool, int]:
    """(bound, segments mapped): for tests and diagnostics."""
    client = _bound
    return (client is not None, len(client._segments) if client is not None else 0)
