"""The SQLite store: one file, stdlib ``sqlite3``, created with mode 0600 (it holds access-key secrets)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panoflow.controlplane.store.base import Row, StoreError, migrations

__all__ = ["SqliteStore"]


class _Tx:
    def __init__(self, conn: sqlite3.Connection, columns: Mapping[str, frozenset[str]], clock: _Clock):
        self._conn = conn
        self._columns = columns
        self._clock = clock

    def _check(self, table: str, names: Any) -> None:
        known = self._columns.get(table)
        if known is None:
            raise StoreError(f"no table {table!r}")
        unknown = set(names) - known
        if unknown:
            raise StoreError(f"no column(s) {sorted(unknown)} in {table}")

    def _row(self, table: str, raw: sqlite3.Row) -> Row:
        cols = {k: raw[k] for k in raw.keys() if k not in ("id", "doc")}  # noqa: SIM118 - sqlite3.Row: `in` looks at values
        return Row(raw["id"], cols, json.loads(raw["doc"]))

    def get(self, table: str, id: str) -> Row | None:
        self._check(table, ())
        raw = self._conn.execute(f"SELECT * FROM {table} WHERE id = ?", (id,)).fetchone()
        return None if raw is None else self._row(table, raw)

    def select(self, table: str, where: Mapping[str, Any] | None = None, *, order_by: str = "created_ns",
               descending: bool = False) -> list[Row]:
        where = dict(where or {})
        self._check(table, [*where, order_by])
        clause = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
        direction = "DESC" if descending else "ASC"
        sql = f"SELECT * FROM {table} WHERE {clause} ORDER BY {order_by} {direction}, id {direction}"
        return [self._row(table, r) for r in self._conn.execute(sql, tuple(where.values()))]

    def insert(self, table: str, id: str, doc: Mapping[str, Any], **columns: Any) -> Row:
        columns.setdefault("created_ns", self._clock())
        self._check(table, columns)
        names = ["id", "doc", *columns]
        values = [id, json.dumps(dict(doc)), *columns.values()]
        try:
            marks = ", ".join("?" * len(names))
            self._conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values)
        except sqlite3.IntegrityError as exc:
            raise KeyError(f"{table}: {exc}") from None
        return Row(id, dict(columns), dict(doc))

    def update(self, table: str, id: str, doc: Mapping[str, Any] | None = None, **columns: Any) -> None:
        self._check(table, columns)
        sets = dict(columns)
        if doc is not None:
            sets["doc"] = json.dumps(dict(doc))
        if sets:
            self._conn.execute(f"UPDATE {table} SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                               (*sets.values(), id))

    def delete(self, table: str, **where: Any) -> int:
        self._check(table, where)
        clause = " AND ".join(f"{k} = ?" for k in where) or "1 = 1"
        return self._conn.execute(f"DELETE FROM {table} WHERE {clause}", tuple(where.values())).rowcount


def _statements(sql: str) -> list[str]:
    """The statements of a migration file (``--`` comments removed; no ``;`` inside string literals, by
    rule)."""
    text = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


class _Clock:
    """Strictly increasing nanoseconds, so rows created in one tick still sort in creation order."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


class SqliteStore:
    """The control plane's state in one SQLite file; thread-safe (one connection behind a lock)."""

    def __init__(self, url: str):
        self.url = url
        path = url.removeprefix("sqlite:///")
        if not path:
            raise StoreError("sqlite URL without a path: use sqlite:///path/to/panoflow.db")
        if path != ":memory:":
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)  # secrets live here: owner-only from the start
            os.close(fd)
            os.chmod(p, 0o600)
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._lock = threading.RLock()
        self._clock = _Clock()
        self._migrate()
        self._columns = self._read_columns()

    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                               "name TEXT NOT NULL, applied_ns BIGINT NOT NULL)")
            done = {r[0] for r in self._conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                       (version, name, time.time_ns()))
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise

    def _read_columns(self) -> dict[str, frozenset[str]]:
        tables = [r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: frozenset(r[1] for r in self._conn.execute(f"PRAGMA table_info({t})")) for t in tables}

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self._lock:
            row = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
            return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """One serialised read-write transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._conn, self._columns, self._clock)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

