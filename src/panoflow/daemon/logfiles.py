"""Log files the appliance's way: one file per instance and per node, rotated at 10 MiB with one backup.

The daemon is the only writer of these files (it captures each instance process's stdout and stderr), so a
writer is a plain object, shared by every version of an application during a replacement. Readers (``panoflow
logs``) see the backup and the current file as one stream: :func:`tail_lines` and :func:`follow`.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Collection
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import anyio

from panoflow.core.redact import redact_text

__all__ = [
    "MAX_BYTES",
    "MAX_NODE_LOGS",
    "MAX_OPEN_FILES",
    "LineSplitter",
    "OutputRouter",
    "RotatingWriter",
    "TeeStream",
    "follow",
    "read_range",
    "tail_lines",
]

#: rotate a log file when it would grow past this (the appliance's policy: 10 MiB, one backup)
MAX_BYTES = 10 * 1024 * 1024
#: a line longer than this is cut (and its rest written as further lines)
MAX_LINE = 64 * 1024
#: at most this many log files are open at once per set of writers (the least recently written are closed;
#: they reopen on their next line): an app cannot exhaust the daemon's descriptors
MAX_OPEN_FILES = 64
#: without the graph's node names, at most this many per-node log files per application (lines for more go to
#: instance.log)
MAX_NODE_LOGS = 256


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class RotatingWriter:
    """Appends text lines to ``path``; when the file would pass ``max_bytes`` it becomes ``path.1`` (replacing
    the previous backup) and a new file starts."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self._file: io.BufferedWriter | None = None
        self._size = 0

    def _open(self) -> io.BufferedWriter:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "ab")
            self._size = os.fstat(fd).st_size
        return self._file

    def write_line(self, line: str) -> None:
        data = (line.rstrip("\n") + "\n").encode("utf-8", "backslashreplace")
        f = self._open()
        if self._size and self._size + len(data) > self.max_bytes:
            self.close()
            os.replace(self.path, backup_of(self.path))
            f = self._open()
        f.write(data)
        f.flush()
        self._size += len(data)

    @property
    def is_open(self) -> bool:
        """Whether the file is open now (it opens on the next line otherwise)."""
        return self._file is not None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TeeStream(io.TextIOBase):
    """A text stream for structlog: each line goes to ``echo`` (the terminal) and to a
    :class:`RotatingWriter`."""

    def __init__(self, echo: TextIO, writer: RotatingWriter):
        self._echo, self._writer = echo, writer
        self._buf = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        try:
            self._echo.write(text)
        except (OSError, ValueError):  # the terminal went away: the log file still gets everything
            pass
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._writer.write_line(line)
        return len(text)

    def flush(self) -> None:
        try:
            self._echo.flush()
        except (OSError, ValueError):
            pass


class LineSplitter:
    """Bytes in, complete text lines out (a line over :data:`MAX_LINE` is cut)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        while len(self._buf) > MAX_LINE:
            lines.append(self._buf[:MAX_LINE])
            self._buf = self._buf[MAX_LINE:]
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, b""
        return [rest.decode("utf-8", "replace")] if rest else []


_NODE_LINE = re.compile(r"\[(?P<node>[^\]\s/]{1,128})\] ?(?P<text>.*)", re.DOTALL)
#: a node name as a file name: Panorama's node-name characters, never "." or ".." (matched whole: no "\n"
#: tail)
_NODE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")


class OutputRouter:
    """Sorts an instance process's output lines into its log files.

    ``[node] text`` lines (the app's stdout/stderr, as ``panoflow run`` prefixes them) go to that node's
    ``console_output``; JSON lines (panoflow's own structlog output) go to ``instance.log`` as they are;
    anything else (start-up errors, the end-of-run summary) goes to ``instance.log`` wrapped in a JSON object.
    Every line is redacted of URL credentials first. The last lines are kept for the failure reason of a
    start-up.

    Only nodes of the graph get a file (``nodes``; without it, names that are valid node names, at most
    :data:`MAX_NODE_LOGS` of them): an app printing ``[anything]`` cannot create files at will, and ``[..]``
    is not a node. Other ``[x]`` lines go to ``instance.log`` like any other output. At most
    :data:`MAX_OPEN_FILES` files are open at once (docs/security.md)."""

    def __init__(self, logs_dir: Path, writers: dict[Path, RotatingWriter],
                 nodes: Collection[str] | None = None):
        self.logs_dir = logs_dir
        self._writers = writers  # shared with the other versions of the same application
        self.nodes = frozenset(nodes) if nodes is not None else None
        self.recent: deque[str] = deque(maxlen=40)
        # node names that have a file (this version's, earlier versions', or on disk from a previous daemon)
        self._named = {p.parent.name for p in writers if p.parent.parent == logs_dir}
        if logs_dir.is_dir():
            self._named.update(p.name for p in logs_dir.iterdir() if (p / "console_output").exists())

    def writer(self, path: Path) -> RotatingWriter:
        w = self._writers.pop(path, None)  # re-inserted last: the dict's order is least recently used first
        if w is None:
            w = RotatingWriter(path)
        self._writers[path] = w
        if len(self._writers) > MAX_OPEN_FILES:
            opened = [x for x in self._writers.values() if x.is_open]
            for stale in opened[:max(0, len(opened) - MAX_OPEN_FILES + 1)]:
                if stale is not w:
                    stale.close()
        return w

    def _node_file(self, node: str) -> Path | None:
        """The console_output file of ``node``, or None when ``node`` may not have one."""
        if self.nodes is not None:
            allowed = node in self.nodes
        else:
            allowed = node in self._named or len(self._named) < MAX_NODE_LOGS
        if not allowed or not _NODE_NAME.fullmatch(node) or node.strip(".") == "":
            return None
        self._named.add(node)
        return self.logs_dir / node / "console_output"

    def instance_log(self) -> RotatingWriter:
        return self.writer(self.logs_dir / "instance.log")

    def route(self, line: str, stream: str) -> None:
        line = redact_text(line)
        m = _NODE_LINE.fullmatch(line)
        target = self._node_file(m["node"]) if m else None
        if m and target is not None:
            self.writer(target).write_line(m["text"])
            self.recent.append(line)
            return
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                self.instance_log().write_line(line)
                if event.get("level") in ("error", "critical", "warning"):
                    self.recent.append(_describe(event))
                return
        if not line.strip():
            return
        self.recent.append(line)
        self.event("instance_output", level="info", stream=stream, text=line)

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        """A line of the daemon's own about this instance (started, exited, restarting) in its
        instance.log."""
        record = {"event": event, "level": level, "timestamp": _now(), **fields}
        self.instance_log().write_line(redact_text(json.dumps(record)))


def _describe(event: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level", "timestamp"))
    return f"{event.get('event')}" + (f" ({extra})" if extra else "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _last_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of one file, reading backwards in blocks (files are at most ``MAX_BYTES``)."""
    if n <= 0:
        return []
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return []
    with f:
        end = f.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:]


def tail_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of ``path``, continuing into its backup ``path.1`` when the file holds fewer."""
    lines = _last_lines(path, n)
    if len(lines) < n:
        lines = _last_lines(backup_of(path), n - len(lines)) + lines
    return lines


async def follow(path: Path, poll_s: float = 0.25) -> AsyncIterator[str]:
    """Yield lines appended to ``path`` from now on, across rotations, until the caller stops iterating."""
    pos = path.stat().st_size if path.exists() else 0
    ino = path.stat().st_ino if path.exists() else None
    partial = b""
    while True:
        try:
            st = path.stat()
        except FileNotFoundError:
            await anyio.sleep(poll_s)
            continue
        # rotated (or truncated): the new file is read from its start
        if st.st_ino != ino or st.st_size < pos:
            if ino is not None and st.st_ino != ino:  # first the rest of the old one, now the backup
                for line in _read_from(backup_of(path), pos, partial):
                    yield line
            ino, pos, partial = st.st_ino, 0, b""
        if st.st_size > pos:
            data = read_range(path, pos, st.st_size - pos)
            pos += len(data)
            *lines, partial = (partial + data).split(b"\n")
            for raw in lines:
                yield raw.decode("utf-8", "replace")
        else:
            await anyio.sleep(poll_s)


def read_range(path: Path, pos: int, size: int) -> bytes:
    """Up to ``size`` bytes of ``path`` from ``pos`` (empty when the file is gone)."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            return f.read(size)
    except FileNotFoundError:
        return b""


def _read_from(path: Path, pos: int, partial: bytes) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = partial + f.read()
    except FileNotFoundError:
        return []
    return [line.decode("utf-8", "replace") for line in data.split(b"\n") if line]
