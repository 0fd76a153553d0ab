"""The wire between an application process and the panoflow runtime: framed messages on a unix stream socket.

Both sides import this module: the runtime (trusted, panoflow's environment) and the application process
(untrusted, its own interpreter, Python 3.8+ with numpy 1.x or 2.x). So it uses only the standard library and
numpy, and Python 3.8 syntax.

A message is a JSON object plus zero or more binary buffers (tensors, pixels)::

    b"PFW1" | u32 json length | u32 buffer count | u64 length of each buffer | JSON (UTF-8) | buffers

Arrays inside the JSON are ``{"__array__": INDEX, "dtype": "<f4", "shape": [..]}``, where INDEX names one of
the buffers; only plain numeric and boolean dtypes travel (no object arrays, no pickle: the runtime never
unpickles what an application sends). Shared-memory segments travel as file descriptors (SCM_RIGHTS) attached
to a message. Every length is checked against a limit before anything is allocated, and every malformed
message is a
:class:`WireError` naming what was wrong.
"""

from __future__ import annotations

import array
import json
import socket
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "MAGIC",
    "MAX_BUFFERS",
    "MAX_BUFFER_BYTES",
    "MAX_FDS",
    "MAX_JSON_BYTES",
    "Channel",
    "WireError",
    "decode_payload",
    "encode_payload",
]

MAGIC = b"PFW1"
_HEAD = struct.Struct("<4sII")
MAX_JSON_BYTES = 1 << 20  # 1 MiB of metadata
MAX_BUFFERS = 64
MAX_BUFFER_BYTES = 1 << 30  # one tensor or image: 1 GiB
MAX_FDS = 16
_ALLOWED_KINDS = "biufc"  # bool, signed, unsigned, float, complex


class WireError(Exception):
    """A message that does not follow the protocol (or a peer that went away mid-message)."""


def _array_ref(arr: np.ndarray, buffers: List[Any]) -> Dict[str, Any]:
    if arr.dtype.kind not in _ALLOWED_KINDS:
        raise WireError(f"cannot send an array of dtype {arr.dtype} (only numeric and boolean arrays travel)")
    data = np.ascontiguousarray(arr)
    buffers.append(data.data.cast("B") if data.nbytes else b"")
    return {"__array__": len(buffers) - 1, "dtype": data.dtype.str, "shape": list(data.shape)}


def _encode_value(value: Any, buffers: List[Any]) -> Any:
    if isinstance(value, np.ndarray):
        return _array_ref(value, buffers)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise WireError(f"mapping keys must be strings, got {type(key).__name__}")
            out[key] = _encode_value(item, buffers)
        return out
    if isinstance(value, (list, tuple)):
        return [_encode_value(item, buffers) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise WireError(f"cannot send a value of type {type(value).__name__}")


def encode_payload(message: Dict[str, Any]) -> Tuple[bytes, List[Any]]:
    """The JSON bytes and the buffers of ``message`` (numpy arrays anywhere inside become buffer
    references)."""
    buffers: List[Any] = []
    body = json.dumps(_encode_value(message, buffers), separators=(",", ":"), allow_nan=True).encode("utf-8")
    if len(body) > MAX_JSON_BYTES:
        raise WireError(f"message metadata is {len(body)} bytes, over the {MAX_JSON_BYTES}-byte limit")
    if len(buffers) > MAX_BUFFERS:
        raise WireError(f"message has {len(buffers)} arrays, over the limit of {MAX_BUFFERS}")
    return body, buffers


def _decode_array(ref: Dict[str, Any], buffers: Sequence[Any]) -> np.ndarray:
    index, dtype_text, shape = ref.get("__array__"), ref.get("dtype"), ref.get("shape")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(buffers):
        raise WireError(f"array refers to buffer {index!r}, but the message has {len(buffers)}")
    if not isinstance(dtype_text, str) or len(dtype_text) > 8:
        raise WireError(f"array dtype must be a short string, got {dtype_text!r}")
    try:
        dtype = np.dtype(dtype_text)
    except TypeError:
        raise WireError(f"unknown array dtype {dtype_text!r}") from None
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {dtype_text!r} is not a plain numeric type")
    if (not isinstance(shape, list) or len(shape) > 32
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise WireError(f"array shape must be a list of at most 32 non-negative integers, got {shape!r}")
    count = 1
    for dim in shape:
        count *= dim
    data = buffers[index]
    if count * dtype.itemsize != len(data):
        raise WireError(f"array of shape {shape} and dtype {dtype_text} needs {count * dtype.itemsize} "
                        f"bytes, its buffer has {len(data)}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def _decode_value(value: Any, buffers: Sequence[Any], depth: int = 0) -> Any:
    if depth > 32:
        raise WireError("message nests deeper than 32 levels")
    if isinstance(value, dict):
        if "__array__" in value:
            return _decode_array(value, buffers)
        return {k: _decode_value(v, buffers, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_value(v, buffers, depth + 1) for v in value]
    return value


def decode_payload(body: bytes, buffers: Sequence[Any]) -> Dict[str, Any]:
    """The message encoded as ``body`` + ``buffers`` (arrays are read-only views on the buffers, no copy)."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"message metadata is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError(f"a message is a JSON object, got {type(value).__name__}")
    result = _decode_value(value, buffers)
    assert isinstance(result, dict)
    return result


class Channel:
    """One end of the socket: :meth:`send` and :meth:`recv` whole messages (each thread-safe on its own only
    if the caller serialises sends and receives; the SDK client and the runtime's server each do)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._pending_fds: List[int] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        for fd in self._pending_fds:
            _close_quietly(fd)
        self._pending_fds = []
        self.sock.close()

    # -------------------------------------------------------------- sending
    def send(self, message: Dict[str, Any], fds: Sequence[int] = ()) -> None:
        body, buffers = encode_payload(message)
        if len(fds) > MAX_FDS:
            raise WireError(f"at most {MAX_FDS} descriptors travel with one message, got {len(fds)}")
        sizes = [len(b) if not isinstance(b, memoryview) else b.nbytes for b in buffers]
        head = _HEAD.pack(MAGIC, len(body), len(buffers)) + struct.pack(f"<{len(sizes)}Q", *sizes) + body
        if fds:
            self.sock.sendmsg([head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.sock.sendall(head)
        for buf in buffers:
            if len(buf):
                self.sock.sendall(buf)

    # -------------------------------------------------------------- receiving
    def recv(self) -> Tuple[Dict[str, Any], List[int]]:
        """The next message and the descriptors that came with it (the caller owns and closes them).
        EOFError when the peer closed the connection between messages."""
        head = self._read_exact(_HEAD.size, first=True)
        magic, json_len, count = _HEAD.unpack(head)
        if magic != MAGIC:
            raise WireError(f"bad message header {magic!r} (expected {MAGIC!r}): not a panoflow peer")
        if json_len > MAX_JSON_BYTES:
            raise WireError(f"message metadata of {json_len} bytes is over the {MAX_JSON_BYTES}-byte limit")
        if count > MAX_BUFFERS:
            raise WireError(f"message announces {count} buffers, over the limit of {MAX_BUFFERS}")
        sizes = struct.unpack(f"<{count}Q", self._read_exact(8 * count)) if count else ()
        for size in sizes:
            if size > MAX_BUFFER_BYTES:
                raise WireError(f"message buffer of {size} bytes is over the {MAX_BUFFER_BYTES}-byte limit")
        body = self._read_exact(json_len)
        buffers = [self._read_into(size) for size in sizes]
        fds, self._pending_fds = self._pending_fds, []
        try:
            return decode_payload(body, buffers), fds
        except BaseException:
            for fd in fds:
                _close_quietly(fd)
            raise

    def _read_exact(self, n: int, first: bool = False) -> bytes:
        if n == 0:
            return b""
        buf = self._read_into(n, first=first)
        return bytes(buf)

    def _read_into(self, n: int, first: bool = False) -> Any:
        out = bytearray(n)
        view = memoryview(out)
        got = 0
        fd_space = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
        while got < n:
            nbytes, ancdata, _flags, _addr = self.sock.recvmsg_into([view[got:]], fd_space)
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
                    self._pending_fds.extend(fds)
            if nbytes == 0:
                if first and got == 0:
                    raise EOFError("the peer closed the connection")
                raise WireError(f"the peer closed the connection in the middle of a message ({got} of {n} "
                                "bytes)")
            got += nbytes
        return out


def _close_quietly(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass


def optional_float(value: Any, what: str) -> Optional[float]:
    """``value`` as a float or None (timeouts), with a WireError naming ``what`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"{what} must be a number or null, got {type(value).__name__}")
    return float(value)
