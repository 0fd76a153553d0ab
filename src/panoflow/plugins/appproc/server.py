"""The runtime's side of one application process: answers its requests on the node's :class:`CodeNodeIO`.

Everything the application sends is untrusted: every field is type-checked, segments are accepted only when
the app holds them, overlays only with coordinates in [0, 1], and a malformed message ends the connection with
one log line (the application then sees its runtime gone and stops). Requests are answered in order, one at a
time, in the thread that calls :meth:`AppServer.serve`:

``hello``  -> the node: id, inputs (media, or parameter with its value), outputs
``get``    -> frames of a media input (shared-memory segments; descriptors for segments the app has not seen
             yet)
``put``    -> frames to a media output (segments the app holds, or pixels sent inline), with overlays; with
             ``noreply`` no answer is sent (the app goes on to its next ``get`` at once, saving a round trip
             per frame), and a failure is the answer to the app's next request instead
``call``   -> a model node's outputs (through the runtime's batcher)
``exit``   -> how the application ended (recorded for the runner)

Every request may carry ``release``: segments the application no longer uses.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from panoflow.core.frame import Frame, Label, Overlay, Rect
from panoflow.core.ports import CodeNodeIO, InputTimeout, MediaInput, ParameterInput, StreamsExhausted
from panoflow.exceptions import ModelError
from panoflow.plugins.appproc.memory import FramePool, PoolExhausted, Segment
from panoramasdk._wire import Channel, WireError, optional_float

__all__ = ["AppExit", "AppServer"]

log = structlog.get_logger(__name__)

_MAX_TEXT = 4096


@dataclass
class AppExit:
    """How the application said it ended: ``exhausted`` (its inputs ran out), ``returned``, ``exited`` (with
    ``code``) or ``raised`` (with ``type`` and ``message``)."""

    status: str
    code: int = 0
    type: str = ""
    message: str = ""


def _text(value: Any, what: str, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise WireError(f"{what} must be a string of at most {limit} characters")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{what} must be an integer")
    return value


def _unit(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise WireError(f"{what} must be a number in [0, 1]")
    return float(value)


def _overlays(items: Any) -> tuple[Overlay, ...]:
    if not isinstance(items, list) or len(items) > 10_000:
        raise WireError("overlays must be a list of at most 10000 items")
    out: list[Overlay] = []
    for item in items:
        if isinstance(item, list) and len(item) == 4 and item[0] == "label":
            out.append(Label(_text(item[1], "a label's text"), _unit(item[2], "label x"),
                             _unit(item[3], "label y")))
        elif isinstance(item, list) and len(item) == 5 and item[0] == "rect":
            out.append(Rect(*(_unit(v, "a rectangle corner") for v in item[1:])))
        else:
            raise WireError(f"unknown overlay {str(item)[:80]!r}")
    return tuple(out)


def _host_array(value: Any) -> np.ndarray:
    """A frame image or model output as a numpy array on the CPU (CuPy arrays come to the host)."""
    if (not isinstance(value, np.ndarray) and hasattr(value, "get")
            and hasattr(value, "__cuda_array_interface__")):
        value = value.get()
    return np.asarray(value)


class AppServer:
    """Serves one application connection until it closes; see the module docstring for the protocol."""

    def __init__(self, io: CodeNodeIO, channel: Channel, pool: FramePool):
        self.io = io
        self.channel = channel
        self.pool = pool
        self.exit: AppExit | None = None
        self.log = log.bind(node_id=io.node_id)
        self.requests = 0
        self._held: dict[int, Segment] = {}  # id(source image) -> the segment the app holds a copy of it in
        self._deferred: dict[str, Any] | None = None  # the error of a put sent without waiting for an answer

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        """Answer requests until the app closes the connection, says it exits, or breaks the protocol."""
        try:
            while True:
                try:
                    message, fds = self.channel.recv()
                except EOFError:
                    return
                for fd in fds:  # the app has no business sending descriptors
                    _close(fd)
                self.requests += 1
                if self._deferred is not None and message.get("op") != "exit":
                    # an earlier put that wanted no answer failed: this request gets its error instead
                    reply, self._deferred = self._deferred, None
                    self.channel.send(reply, [])
                    continue
                reply, send_fds = self._answer(message)
                if message.get("op") == "put" and message.get("noreply") is True:
                    if not reply.get("ok"):
                        error = reply["error"]
                        self._deferred = _refusal(error["type"], f"an earlier put failed: {error['message']}")
                    continue
                self.channel.send(reply, send_fds)
                if message.get("op") == "exit":
                    return
        except WireError as exc:
            self.log.error("app_protocol_error", error=str(exc))
        except OSError as exc:  # the app died mid-message
            self.log.info("app_connection_lost", error=str(exc))

    def _answer(self, message: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        released = message.get("release") or []
        if not isinstance(released, list):
            raise WireError("release must be a list of segment ids")
        for seg_id in released:
            self.pool.released_by_app(_integer(seg_id, "a released segment id"))
        op = message.get("op")
        try:
            if op == "hello":
                return self._hello(), []
            if op == "get":
                return self._get(message)
            if op == "put":
                return self._put(message), []
            if op == "call":
                return self._call(message), []
            if op == "exit":
                return self._exit(message), []
        except StreamsExhausted as exc:
            return _refusal("StreamsExhausted", str(exc)), []
        except InputTimeout as exc:
            return _refusal("TimeoutException", str(exc)), []
        except KeyError as exc:
            return _refusal("KeyError", exc.args[0] if exc.args else "unknown name"), []
        except (ValueError, TypeError) as exc:
            return _refusal(type(exc).__name__, str(exc)), []
        except PoolExhausted as exc:
            return _refusal("RuntimeError", str(exc)), []
        # a model call failed (server down, no result in time): the app can catch it
        except ModelError as exc:
            return _refusal("TimeoutError" if isinstance(exc, TimeoutError) else "RuntimeError", str(exc)), []
        raise WireError(f"unknown request {str(op)[:40]!r}")

    # ------------------------------------------------------------------ requests
    def _hello(self) -> dict[str, Any]:
        self.io.ready.set()
        inputs: dict[str, Any] = {}
        for name, port in self.io.inputs.items():
            if isinstance(port, ParameterInput):
                inputs[name] = {"kind": "parameter", "value": port.value}
            else:
                inputs[name] = {"kind": "media"}
        return {"ok": True, "node_id": self.io.node_id, "inputs": inputs, "outputs": sorted(self.io.outputs)}

    def _get(self, message: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        name = _text(message.get("port"), "port")
        port = self.io.inputs.get(name)
        if not isinstance(port, MediaInput):
            # the app is answered with this ValueError (its exception type travels): it must stay a ValueError
            raise ValueError(f"{name!r} is not a media input of node {self.io.node_id!r}")  # noqa: TRY004
        frames = port.get(optional_float(message.get("timeout"), "timeout"))
        described, announce, fds = [], [], []
        for frame in frames:
            seg = self._segment_for(frame)
            if not seg.sent:
                seg.sent = True
                announce.append({"id": seg.id, "size": seg.size})
                fds.append(seg.fd)
            described.append({
                "segment": seg.id, "shape": list(frame.image.shape), "dtype": frame.image.dtype.str,
                "stream_id": frame.stream_id, "seq": frame.seq, "capture_time": list(frame.capture_time),
                "stream_uri": frame.stream_uri, "is_cached": frame.is_cached, "t": frame.t_produced,
            })
        return {"ok": True, "frames": described, "segments": announce}, fds

    def _segment_for(self, frame: Frame) -> Segment:
        """The segment the app sees ``frame`` in: the one it already holds for this very picture (a cached
        repeat), else a fresh copy. A picture still to be converted (a source's deferred image) is converted
        here, when the app first takes it, and copied into the segment once: PyAV's swscale writes into a
        picture of its own, never into a caller's buffer, so this is the one copy a frame took before too."""
        pixels = frame.pixels
        held = self._held.get(id(pixels))
        if held is not None and held.app_holds and held.source is pixels:
            return held
        seg = self.pool.fill(_host_array(frame.image))
        seg.source = pixels  # keeps the picture (and its converted image) alive while the app holds it
        self._held[id(pixels)] = seg
        if len(self._held) > 4 * self.pool.max_segments:
            self._held = {k: s for k, s in self._held.items() if s.app_holds}
        return seg

    def _put(self, message: dict[str, Any]) -> dict[str, Any]:
        name = _text(message.get("port"), "port")
        output = self.io.outputs.get(name)
        if output is None:
            raise ValueError(f"{name!r} is not an output of node {self.io.node_id!r}")
        items = message.get("frames")
        if not isinstance(items, list) or not items or len(items) > 1024:
            raise WireError("put needs a list of 1 to 1024 frames")
        output.put([self._frame(item) for item in items])
        return {"ok": True}

    def _frame(self, item: Any) -> Frame:
        if not isinstance(item, dict):
            raise WireError("a frame is an object")
        if "segment" in item:
            seg = self.pool.get(_integer(item["segment"], "segment"))
            if seg is None or not seg.app_holds:
                raise WireError(f"frame refers to segment {item['segment']} that the application does not "
                                "hold")
            shape = item.get("shape")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise WireError("a frame's shape is a list of non-negative integers")
            try:
                dtype = np.dtype(_text(item.get("dtype"), "dtype", 8))
            except TypeError:
                raise WireError(f"unknown dtype {item.get('dtype')!r}") from None
            if dtype.kind not in "biuf" or math.prod(shape) * dtype.itemsize > seg.size:
                raise WireError(f"a {shape} {dtype} image does not fit segment {seg.id}")
            image = self.pool.view(seg, tuple(shape), dtype)
        elif isinstance(item.get("image"), np.ndarray):
            image = item["image"]
        else:
            raise WireError("a frame has either a segment or an image")
        capture = item.get("capture_time")
        if not (isinstance(capture, list) and len(capture) == 2 and all(isinstance(v, int) for v in capture)):
            raise WireError("capture_time is [seconds, microseconds]")
        t = item.get("t", 0.0)
        return Frame(
            image=image,
            stream_id=_text(item.get("stream_id"), "stream_id", 256),
            seq=_integer(item.get("seq", 0), "seq"),
            capture_time=(capture[0], capture[1]),
            stream_uri=_text(item.get("stream_uri", ""), "stream_uri"),
            is_cached=bool(item.get("is_cached", False)),
            overlays=_overlays(item.get("overlays", [])),
            t_produced=float(t) if isinstance(t, (int, float)) and 0 <= t <= time.perf_counter() else 0.0,
        )

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        model = _text(message.get("model"), "model", 256)
        inputs = message.get("inputs")
        if isinstance(inputs, dict):
            if not all(isinstance(v, np.ndarray) for v in inputs.values()):
                raise TypeError("call() inputs must be arrays")
        elif not isinstance(inputs, np.ndarray):
            raise TypeError("call() input must be an array or a mapping of input name to array")
        outputs = self.io.call(model, inputs, optional_float(message.get("timeout"), "timeout"))
        return {"ok": True, "outputs": [_host_array(o) for o in (outputs or ())]}

    def _exit(self, message: dict[str, Any]) -> dict[str, Any]:
        status = message.get("status")
        if status not in ("exhausted", "returned", "exited", "raised"):
            raise WireError(f"unknown exit status {str(status)[:40]!r}")
        code = message.get("code", 0)
        self.exit = AppExit(
            status, code=code if isinstance(code, int) and not isinstance(code, bool) else 1,
            type=str(message.get("type", ""))[:200], message=str(message.get("message", ""))[:2000],
        )
        return {"ok": True}


def _refusal(kind: str, text: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": str(text)}}


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
