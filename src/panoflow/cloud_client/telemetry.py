"""Logs and metrics for the control plane (docs/device-protocol.md section 4).

Log lines come from the daemon's own files (``apps/<name>/logs/instance.log`` and ``<node>/console_output``, both
already redacted of URL credentials by the daemon), read from where the tailer last stopped, across rotations.
They wait in a :class:`LogBuffer` of at most 10 000 lines: while the control plane is out of reach the oldest are
dropped and counted. Uploads go in batches of at most 500 lines and 256 KiB.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from panoflow.core.redact import redact_text

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_LINES", "MAX_BUFFERED", "MAX_LINE_CHARS", "LogBuffer", "LogTailer",
           "Source"]

MAX_BUFFERED = 10_000
MAX_BATCH_LINES = 500
MAX_BATCH_BYTES = 256 * 1024
#: a longer line is cut (a batch must hold at least one line)
MAX_LINE_CHARS = 16 * 1024
_ENTRY_OVERHEAD = 64  # JSON punctuation and key names around each line, over-estimated


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogBuffer:
    """A bounded FIFO of log entries (``{"Time", "Instance", "Node", "Line"}``) with a count of dropped lines."""

    def __init__(self, max_lines: int = MAX_BUFFERED):
        self.max_lines = max_lines
        self._entries: deque[tuple[int, dict[str, str], int]] = deque()  # (sequence, entry, encoded size)
        self._seq = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, instance: str, node: str, line: str, time: str | None = None) -> None:
        entry = {"Time": time or now_iso(), "Instance": instance, "Node": node, "Line": line[:MAX_LINE_CHARS]}
        size = len(json.dumps(entry).encode()) + _ENTRY_OVERHEAD
        if len(self._entries) >= self.max_lines:
            self._entries.popleft()
            self.dropped += 1
        self._seq += 1
        self._entries.append((self._seq, entry, size))

    def batch(self, max_lines: int = MAX_BATCH_LINES, max_bytes: int = MAX_BATCH_BYTES
              ) -> tuple[int, list[dict[str, str]]]:
        """The oldest entries that fit one upload, and the sequence number to :meth:`commit` once it is sent."""
        out: list[dict[str, str]] = []
        total, last = 16, 0
        for seq, entry, size in self._entries:
            if len(out) >= max_lines or (out and total + size > max_bytes):
                break
            out.append(entry)
            total += size
            last = seq
        return last, out

    def commit(self, upto: int) -> None:
        """Forget the entries up to sequence ``upto`` (sent). Entries dropped meanwhile are simply gone."""
        while self._entries and self._entries[0][0] <= upto:
            self._entries.popleft()


@dataclass
class Source:
    """One log file to follow, with the instance and node its lines are reported under."""

    path: Path
    instance: str
    node: str


@dataclass
class _Position:
    inode: int | None = None
    offset: int = 0
    partial: bytes = b""
    seen: bool = field(default=False)


class LogTailer:
    """Reads what was appended to each :class:`Source` since the last :meth:`poll` (blocking: call it in a
    thread). Files there at the first poll are read from their end, so a device that restarts does not upload its
    whole history again; files that appear later (a new instance, a new node) are read from their start."""

    def __init__(self) -> None:
        self._pos: dict[Path, _Position] = {}
        self._polled = False

    def poll(self, sources: Iterable[Source], buffer: LogBuffer, *, max_bytes: int = 4 * 1024 * 1024) -> int:
        count = 0
        live = set()
        from_start, self._polled = self._polled, True
        for src in sources:
            live.add(src.path)
            for line in self._read(src.path, from_start, max_bytes):
                buffer.add(src.instance, src.node, redact_text(line))
                count += 1
        for gone in [p for p in self._pos if p not in live]:
            del self._pos[gone]
        return count

    def _read(self, path: Path, from_start: bool, max_bytes: int) -> list[str]:
        pos = self._pos.setdefault(path, _Position())
        try:
            st = path.stat()
        except FileNotFoundError:
            pos.seen = True  # created later: read it from its start
            return []
        if not pos.seen:
            pos.seen = True
            pos.inode = st.st_ino
            pos.offset = 0 if from_start else st.st_size
        chunks = b""
        if pos.inode != st.st_ino or st.st_size < pos.offset:  # rotated: the rest of the old file is the backup
            if pos.inode is not None and pos.inode != st.st_ino:
                chunks += _read_range(path.with_name(path.name + ".1"), pos.offset, max_bytes)
            pos.inode, pos.offset = st.st_ino, 0
        data = _read_range(path, pos.offset, max_bytes)
        pos.offset += len(data)
        *lines, pos.partial = (pos.partial + chunks + data).split(b"\n")
        if len(pos.partial) > MAX_LINE_CHARS:
            lines.append(pos.partial)
            pos.partial = b""
        return [raw.decode("utf-8", "replace") for raw in lines if raw.strip()]


def _read_range(path: Path, offset: int, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(max_bytes)
    except FileNotFoundError:
        return b""


def dropped_metric(dropped: int) -> str:
    """The buffer's drop counter as Prometheus text, appended to the device's metrics upload."""
    return ("# HELP panoflow_cloud_log_lines_dropped_total Log lines dropped while the control plane was out of "
            "reach (the device keeps at most 10000)\n"
            "# TYPE panoflow_cloud_log_lines_dropped_total counter\n"
            f"panoflow_cloud_log_lines_dropped_total {dropped}\n")
