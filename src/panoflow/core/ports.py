"""What a code node sees: its input ports, output ports and model calls, independent of ``panoramasdk``.

The runtime builds one :class:`CodeNodeIO` per business-logic node; the ``panoramasdk`` facade and native
async nodes both work on it. Media inputs follow Panorama's semantics (SDK >= 1.2): ``get`` blocks until at
least one stream has a new frame and returns one frame per stream that has ever delivered, in camera order,
re-delivering the last frame of a stream without a new one with ``is_cached=True``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from panoflow.core.bus import BusClosed, Inbox
from panoflow.core.frame import Frame
from panoflow.exceptions import PanoflowError

__all__ = [
    "CodeNodeIO",
    "InputTimeout",
    "MediaInput",
    "MediaOutput",
    "ParameterInput",
    "StreamsExhausted",
    "no_model_call",
]


class InputTimeout(PanoflowError, TimeoutError):
    """No new frame arrived within the ``timeout`` given to ``get`` (``panoramasdk.TimeoutException``)."""


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

    def __repr__(self) -> str:
        return f"StreamsExhausted({self.message!r})"


class MediaInput:
    """One media input port of a code node, fed by ``inbox`` (whose streams are the port's cameras).

    ``streams`` gives the camera order of the returned lists; a stream the inbox learns about later is placed
    after them, in order of first arrival. Meant for one consumer (the node's code).
    """

    def __init__(self, name: str, inbox: Inbox[Frame], streams: Sequence[str]):
        self.name = name
        self.inbox = inbox
        self._order: list[str] = list(dict.fromkeys(streams))
        self._last: dict[str, Frame] = {}
        self._exhausted: str | None = None  # why there is nothing more, once known

    def __repr__(self) -> str:
        return f"<MediaInput {self.name!r} streams={self._order}>"

    def get(self, timeout: float | None = None) -> list[Frame]:
        """Block until at least one stream has a new frame (up to ``timeout`` seconds; ``None`` waits
        forever).

        Raises :class:`InputTimeout` when the time is up, :class:`StreamsExhausted` when there is nothing more
        to come (and on every later call). The runtime stops a node with ``inbox.close(drain=False)``.
        """
        if self._exhausted is not None:
            raise StreamsExhausted(self._exhausted)
        try:
            fresh = self.inbox.get_batch(timeout)
        except BusClosed:
            raise self._exhaust() from None
        except TimeoutError:
            raise InputTimeout(f"input {self.name!r}: no new frame within {timeout} s") from None
        return self._assemble(fresh)

    async def aget(self) -> list[Frame]:
        """:meth:`get` for native async nodes (cancellable; use ``anyio.fail_after`` for a timeout)."""
        if self._exhausted is not None:
            raise StreamsExhausted(self._exhausted)
        try:
            fresh = await self.inbox.aget_batch()
        except BusClosed:
            raise self._exhaust() from None
        return self._assemble(fresh)

    def _exhaust(self) -> StreamsExhausted:
        why = "the runtime is stopping" if self.inbox.closed else "every input stream has ended"
        self._exhausted = f"input {self.name!r}: {why}"
        return StreamsExhausted(self._exhausted)

    def _assemble(self, fresh: dict[str, Frame]) -> list[Frame]:
        last = self._last
        for stream in fresh:
            if stream not in last and stream not in self._order:
                self._order.append(stream)
        last.update(fresh)
        out: list[Frame] = []
        for stream in self._order:
            frame = fresh.get(stream)
            if frame is not None:
                out.append(frame)
            elif stream in last:
                out.append(last[stream].replace(is_cached=True))
        return out


class ParameterInput:
    """A parameter input port: the same typed value on every ``get``."""

    def __init__(self, name: str, value: Any):
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"<ParameterInput {self.name!r}={self.value!r}>"

    def get(self, timeout: float | None = None) -> Any:
        """The parameter's value; ``timeout`` is accepted for symmetry with media ports and ignored."""
        return self.value


class MediaOutput:
    """One media output port: each frame put goes to every target inbox under its ``stream_id``."""

    def __init__(self, name: str, targets: Sequence[Inbox[Frame]], node_id: str):
        self.name = name
        self.targets: tuple[Inbox[Frame], ...] = tuple(targets)
        self.node_id = node_id
        self._sent: list[set[str]] = [set() for _ in self.targets]
        self._lock = threading.Lock()
        #: frames put on this port (also counted when no target takes them)
        self.frames_put = 0

    def __repr__(self) -> str:
        return f"<MediaOutput {self.node_id}.{self.name} -> {[t.name for t in self.targets]}>"

    def put(self, frames: Sequence[Frame]) -> None:
        """Send ``frames`` (no copy). Blocks per the target policies; frames for a closed target are
        discarded."""
        if not frames:
            raise ValueError(f"output {self.name!r} of node {self.node_id!r}: put needs at least one frame")
        self.frames_put += len(frames)
        for frame in frames:
            stream = frame.stream_id
            for i, inbox in enumerate(self.targets):
                self._announce(i, inbox, stream)
                inbox.put(stream, frame)

    async def aput(self, frames: Sequence[Frame]) -> None:
        """:meth:`put` for native async nodes."""
        if not frames:
            raise ValueError(f"output {self.name!r} of node {self.node_id!r}: put needs at least one frame")
        self.frames_put += len(frames)
        for frame in frames:
            stream = frame.stream_id
            for i, inbox in enumerate(self.targets):
                self._announce(i, inbox, stream)
                await inbox.aput(stream, frame)

    def close(self) -> None:
        """End every stream this port sent. A target that never got a stream from anyone is closed, since
        nothing will ever arrive there. Idempotent."""
        with self._lock:
            for sent, inbox in zip(self._sent, self.targets, strict=True):
                for stream in sorted(sent):
                    inbox.end_stream(stream)
                if not sent and not inbox.streams:
                    inbox.close()

    def _announce(self, i: int, inbox: Inbox[Frame], stream: str) -> None:
        sent = self._sent[i]
        if stream not in sent:
            with self._lock:
                inbox.add_stream(stream)
                sent.add(stream)


def no_model_call(name: str, inputs: Any, timeout: float | None = None) -> tuple[Any, ...]:
    """The ``call`` of a node whose application has no model nodes: always KeyError."""
    raise KeyError(f"no model node named {name!r}: this application has no model nodes")


@dataclass
class CodeNodeIO:
    """Everything one business-logic node's code can reach; built by the runtime.

    ``call(model_node_name, inputs, timeout)`` runs a model node and returns a tuple of arrays; ``inputs`` is
    a mapping of input name to array, or a bare array. It raises KeyError for a name that is not a model node.
    ``acall`` is the same for native async nodes (None when the application has no model nodes).
    ``stop_event`` is set when the runtime wants the node to stop; ``ready`` once its code is running and
    connected (an application process said hello), which is when ``--duration`` starts counting.
    """

    node_id: str
    inputs: dict[str, MediaInput | ParameterInput] = field(default_factory=dict)
    outputs: dict[str, MediaOutput] = field(default_factory=dict)
    call: Callable[..., tuple[Any, ...]] = no_model_call
    acall: Callable[..., Awaitable[tuple[Any, ...]]] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)

    def close_outputs(self) -> None:
        """End the streams of every output port (the runtime calls it once the node's code has returned)."""
        for output in self.outputs.values():
            output.close()
