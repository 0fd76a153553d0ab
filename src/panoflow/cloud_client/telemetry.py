"""Logs and metrics for the control plane (docs/device-protocol.md section 4).

Log lines come from the daemon's own files (``apps/<name>/logs/instance.log``, ``<node>/console_output`` and
the device log ``logs/daemon.log``, all already redacted of URL credentials by the daemon and redacted again
here), read from where the tailer last stopped, across rotations. They wait in a :class:`LogBuffer` of at most
10 000 lines: while the control plane is out of reach the oldest are dropped and counted. Uploads go in
batches of at most 500 lines and 256 KiB.

Read positions survive restarts: :meth:`LogTailer.save` writes, for every file followed, the position (inode,
device, byte offset) of the first line not yet uploaded (or dropped) to ``STATE_DIR/cloud-log-offsets.json``,
and a new :class:`LogTailer` over that file resumes there: in the same file when its inode still matches (from
0 when it was truncated below the offset), in the backup ``.1`` when the file was rotated meanwhile (then the
new file from 0). Lines the buffer still held when the daemon stopped are read again, so a line is uploaded at
least once across restarts (docs/daemon.md, "Joining a control plane", says precisely when twice).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from panoflow.core.redact import redact_text
from panoflow.daemon.logfiles import read_range
from panoflow.daemon.store import atomic_write_json, read_json

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_LINES", "MAX_BUFFERED", "MAX_LINE_CHARS", "OFFSETS_FILE",
           "LogBuffer",
           "LogTailer", "Source"]

log = structlog.get_logger("panoflow.cloud")

MAX_BUFFERED = 10_000
MAX_BATCH_LINES = 500
MAX_BATCH_BYTES = 256 * 1024
#: a longer line is cut (a batch must hold at least one line)
MAX_LINE_CHARS = 16 * 1024
_ENTRY_OVERHEAD = 64  # JSON punctuation and key names around each line, over-estimated
#: where :meth:`LogTailer.save` keeps the read positions (in STATE_DIR)
OFFSETS_FILE = "cloud-log-offsets.json"
#: file timestamps come from a coarse kernel clock: a backup written this close to (or after) the moment our
#: own file was last seen current is taken as newer than it (re-reading beats losing)
_MTIME_SLACK_NS = 50_000_000

#: how many of a file's first bytes tell it from another file that got the same inode number later
HEAD_BYTES = 64

#: where a line starts: (file key, inode, device, byte offset, the file's first bytes as far as read)
Mark = tuple[str, int, int, int, bytes]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LogBuffer:
    """A bounded FIFO of log entries (``{"Time", "Instance", "Node", "Line"}``) with a count of dropped lines.

    Each entry may carry a :data:`Mark` (where its line starts in its file) so the tailer can tell how far
    each file has been dealt with (sent or dropped): :meth:`oldest_marks`."""

    def __init__(self, max_lines: int = MAX_BUFFERED):
        self.max_lines = max_lines
        # (sequence, entry, encoded size, mark)
        self._entries: deque[tuple[int, dict[str, str], int, Mark | None]] = deque()
        self._seq = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, instance: str, node: str, line: str, time: str | None = None,
            mark: Mark | None = None) -> None:
        entry = {"Time": time or now_iso(), "Instance": instance, "Node": node, "Line": line[:MAX_LINE_CHARS]}
        size = len(json.dumps(entry).encode()) + _ENTRY_OVERHEAD
        if len(self._entries) >= self.max_lines:
            self._entries.popleft()
            self.dropped += 1
        self._seq += 1
        self._entries.append((self._seq, entry, size, mark))

    def batch(self, max_lines: int = MAX_BATCH_LINES, max_bytes: int = MAX_BATCH_BYTES
              ) -> tuple[int, list[dict[str, str]]]:
        """The oldest entries that fit one upload, and the sequence number to :meth:`commit` once it is
        sent."""
        out: list[dict[str, str]] = []
        total, last = 16, 0
        for seq, entry, size, _mark in self._entries:
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

    def oldest_marks(self) -> dict[str, Mark]:
        """For each file with lines still waiting here, where the oldest of them starts."""
        out: dict[str, Mark] = {}
        for _seq, _entry, _size, mark in self._entries:
            if mark is not None and mark[0] not in out:
                out[mark[0]] = mark
        return out


@dataclass
class Source:
    """One log file to follow, with the instance and node its lines are reported under."""

    path: Path
    instance: str
    node: str


@dataclass
class _Position:
    inode: int | None = None
    device: int = 0
    offset: int = 0  # bytes consumed from the file (``partial`` included)
    partial: bytes = b""
    seen_ns: int = 0  # when the file was last seen at its path (a backup newer than that is newer than it)
    head: bytes = b""  # the file's first bytes (up to HEAD_BYTES), as far as read
    head_sha: str | None = None  # restored: the saved file's head (checked against the file found), then None
    head_len: int = 0

    def switch(self, st: os.stat_result, now: int) -> None:
        """Follow ``st``'s file from its start."""
        self.inode, self.device, self.offset, self.partial, self.seen_ns, self.head = \
            st.st_ino, st.st_dev, 0, b"", now, b""


class LogTailer:
    """Reads what was appended to each :class:`Source` since the last :meth:`poll` (blocking: call it in a
    thread).

    Without ``state_file``, or when it does not exist yet (the device's first start), files there at the first
    poll are read from their end, so a device does not upload its whole history; files that appear later (a
    new instance, a new node) are read from their start. With a ``state_file`` that :meth:`save` wrote, every
    file resumes where it was saved (see the module docstring) and a file it does not list is read from its
    start."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._pos: dict[str, _Position] = {}
        self._polled = False
        self.state_file = state_file
        self._saved: dict[str, Any] | None = None  # what the state file holds (None: no state file)
        self._restore: dict[str, _Position] = {}
        if state_file is not None:
            self._load(state_file)

    # ------------------------------------------------------------------ saved positions
    def _key(self, path: Path) -> str:
        """Files under the state file's folder are saved relative to it (the state directory may move)."""
        if self.state_file is not None:
            try:
                return str(path.relative_to(self.state_file.parent))
            except ValueError:
                pass
        return str(path)

    def _load(self, state_file: Path) -> None:
        try:
            doc = read_json(state_file)
            files = doc["files"]
            saved_ns = int(doc["saved_ns"])
            for key, item in files.items():
                self._restore[str(key)] = _Position(
                    int(item["inode"]), int(item["device"]), int(item["offset"]), b"", saved_ns, b"",
                    str(item["head_sha256"]), int(item["head_bytes"]))
            self._saved = {"files": files}
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # unreadable: start over as if positions were saved but lost (files are read from their start)
            log.error("cloud_log_offsets_unreadable", path=str(state_file), error=str(exc),
                      what_now="log files are read again from their start")
            self._restore.clear()
            self._saved = {"files": {}}

    def checkpoint(self, buffer: LogBuffer) -> dict[str, dict[str, Any]]:
        """For each file followed: where the first line not yet sent nor dropped starts."""
        pending = buffer.oldest_marks()
        out: dict[str, dict[str, Any]] = {}
        for key, pos in self._pos.items():
            if key in pending:
                _key, inode, device, offset, head = pending[key]
            elif pos.inode is not None:
                inode, device, offset, head = pos.inode, pos.device, pos.offset - len(pos.partial), pos.head
            else:
                continue
            out[key] = {"inode": inode, "device": device, "offset": offset, "head_bytes": len(head),
                        "head_sha256": hashlib.sha256(head).hexdigest()}
        return out

    def save(self, buffer: LogBuffer) -> bool:
        """Write the :meth:`checkpoint` to the state file (atomically) when it changed; ``True`` when
        written."""
        if self.state_file is None:
            return False
        files = self.checkpoint(buffer)
        if self._saved is not None and self._saved.get("files") == files:
            return False
        atomic_write_json(self.state_file, {"version": 1, "saved_ns": time.time_ns(), "files": files})
        self._saved = {"files": files}
        return True

    # ------------------------------------------------------------------ reading
    def poll(self, sources: Iterable[Source], buffer: LogBuffer, *, max_bytes: int = 4 * 1024 * 1024) -> int:
        count = 0
        live = set()
        first, self._polled = not self._polled, True
        for src in sources:
            key = self._key(src.path)
            live.add(key)
            for mark, line in self._read(key, src.path, first, max_bytes):
                buffer.add(src.instance, src.node, redact_text(line), mark=mark)
                count += 1
        for gone in [k for k in self._pos if k not in live]:
            del self._pos[gone]
        return count

    def _start(self, key: str, path: Path, first: bool) -> _Position:
        saved = self._restore.pop(key, None)
        if saved is not None:
            self._check_head(saved, path)
            return saved
        pos = _Position(seen_ns=time.time_ns())
        st = _stat(path)
        if st is not None:  # else created later: read it from its start
            pos.switch(st, pos.seen_ns)
            if first and self._saved is None:  # the device's first start: do not upload its history
                pos.head = read_range(path, 0, HEAD_BYTES)
                pos.offset = st.st_size
        return pos

    @staticmethod
    def _check_head(pos: _Position, path: Path) -> None:
        """A restored position's inode may have been freed and given to another file while the daemon was
        down: the file holding it must also start with the saved bytes, else the saved file is gone."""
        for file in (path, path.with_name(path.name + ".1")):
            st = _stat(file)
            if st is None or (st.st_ino, st.st_dev) != (pos.inode, pos.device):
                continue
            head = read_range(file, 0, pos.head_len)
            if len(head) == pos.head_len and hashlib.sha256(head).hexdigest() == pos.head_sha:
                pos.head = head
            else:
                pos.inode = -1  # matches no file: read as "gone"
            break
        pos.head_sha = None

    def _read(self, key: str, path: Path, first: bool, max_bytes: int) -> list[tuple[Mark, str]]:
        pos = self._pos.get(key)
        if pos is None:
            pos = self._pos[key] = self._start(key, path, first)
        out: list[tuple[Mark, str]] = []
        budget = max_bytes
        for _ in range(4):  # at most: the rest of our file in the backup, then the current file
            now = time.time_ns()
            cur = _stat(path)
            if cur is not None and pos.inode is None:  # it appeared: from its start
                pos.switch(cur, now)
            if pos.inode is None:
                return out
            if cur is not None and (cur.st_ino, cur.st_dev) == (pos.inode, pos.device):
                if cur.st_size < pos.offset:  # truncated: what is there now is new
                    self._flush(key, pos, out)
                    pos.switch(cur, now)
                pos.seen_ns = now
                self._consume(key, pos, path, budget, out)
                return out
            # our file is no longer at ``path``: rotated (its rest is the backup) or replaced
            backup = path.with_name(path.name + ".1")
            bk = _stat(backup)
            if bk is not None and (bk.st_ino, bk.st_dev) == (pos.inode, pos.device):
                if bk.st_size < pos.offset:
                    self._flush(key, pos, out)
                    pos.switch(bk, now)
                data_len = self._consume(key, pos, backup, budget, out)
                budget -= data_len
                if pos.offset < bk.st_size or budget <= 0:
                    return out  # more of the backup next time
                self._flush(key, pos, out)
                if cur is None:
                    return out
                pos.switch(cur, now)
                continue
            # our file is gone (rotated twice, or removed): a backup written since we last saw ours is newer
            self._flush(key, pos, out)
            if bk is not None and bk.st_mtime_ns >= pos.seen_ns - _MTIME_SLACK_NS \
                    and (cur is None or (bk.st_ino, bk.st_dev) != (cur.st_ino, cur.st_dev)):
                log.warning("cloud_log_lines_lost", file=key,
                            why="the file rotated more than once since it was last read")
                pos.switch(bk, now)
                continue
            if cur is None:
                pos.inode, pos.offset = None, 0  # wait for it
                return out
            pos.switch(cur, now)
        return out

    def _consume(self, key: str, pos: _Position, file: Path, budget: int, out: list[tuple[Mark, str]]) -> int:
        """Read up to ``budget`` bytes of ``file`` (which holds ``pos``'s inode) into complete lines."""
        assert pos.inode is not None
        data = read_range(file, pos.offset, budget)
        if len(pos.head) < HEAD_BYTES and pos.offset <= len(pos.head):
            pos.head = (pos.head + data[len(pos.head) - pos.offset:])[:HEAD_BYTES]
        base = pos.offset - len(pos.partial)  # where ``partial`` starts
        pos.offset += len(data)
        *lines, pos.partial = (pos.partial + data).split(b"\n")
        for raw in lines:
            if raw.strip():
                out.append(((key, pos.inode, pos.device, base, pos.head), raw.decode("utf-8", "replace")))
            base += len(raw) + 1
        if len(pos.partial) > MAX_LINE_CHARS:
            self._flush(key, pos, out)
        return len(data)

    def _flush(self, key: str, pos: _Position, out: list[tuple[Mark, str]]) -> None:
        """An unfinished last line is a line when its file ends for good (or is too long to wait for)."""
        if pos.partial.strip() and pos.inode is not None:
            out.append(((key, pos.inode, pos.device, pos.offset - len(pos.partial), pos.head),
                        pos.partial.decode("utf-8", "replace")))
        pos.partial = b""


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def dropped_metric(dropped: int) -> str:
    """The buffer's drop counter as Prometheus text, appended to the device's metrics upload."""
    return ("# HELP panoflow_cloud_log_lines_dropped_total Log lines dropped while the control plane was "
            "out of reach (the device keeps at most 10000)\n# TYPE panoflow_cloud_log_lines_dropped_total "
            f"counter\npanoflow_cloud_log_lines_dropped_total {dropped}\n")
