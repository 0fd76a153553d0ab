"""The PostgreSQL store: psycopg 3, one connection behind a lock, the same migrations and semantics as SQLite.

Transactions are serialised: inside one process by one connection behind a lock (as :class:`SqliteStore`
does), and across control planes sharing the database by an advisory lock each transaction holds until it ends
(SQLite's ``BEGIN IMMEDIATE``; waits longer than 30 s fail with a :class:`StoreError`). Tables and columns are
read from ``information_schema`` for the connection's current schema (the first one on its ``search_path``, so
``?options=-csearch_path%3Dname`` selects another one). Migrations run under ``pg_advisory_xact_lock`` so that
two control planes starting at once apply each one exactly once.

To behave exactly like SQLite: text orders bytewise (``COLLATE "C"``), NULLs sort first ascending and last
descending, a duplicate key on insert is a :class:`KeyError`, booleans are stored as integers, and a lookup by
a string holding a NUL character (which PostgreSQL text cannot hold) finds nothing. Passwords in the URL never
appear in errors or logs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog

from panoflow.controlplane.store.base import Row, StoreError, migrations
from panoflow.controlplane.store.sqlite import _Clock, _statements
from panoflow.core.redact import redact_text, redact_url

try:
    import psycopg
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - exercised only without the controlplane extra
    psycopg = None  # type: ignore[assignment]

__all__ = ["PostgresStore"]

log = structlog.get_logger("panoflow.controlplane.store")

# pg_advisory_xact_lock(key, hashtext(current_schema())): locks are per schema, so separate schemas never
# wait.
_MIGRATION_LOCK = 0x70616E6F  # "pano"
# Every transaction holds this lock until it ends, so read-write transactions are serialised across all the
# control planes sharing the database, as SQLite's BEGIN IMMEDIATE does (one round trip: no parameters,
# several statements).
_BEGIN = (f"BEGIN; SET LOCAL lock_timeout = '30s'; "
          f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK + 1}, hashtext(current_schema()))")
_TEXT_TYPES = frozenset({"text", "character varying", "character"})
_CONNECT_TIMEOUT_S = 10

Columns = Mapping[str, Mapping[str, str]]  # table -> column -> information_schema data_type


def _has_nul(values: Any) -> bool:
    return any(isinstance(v, str) and "\x00" in v for v in values)


def _value(v: Any) -> Any:
    """SQLite stores booleans as 0/1; so does this backend (the schema's flag columns are INTEGER)."""
    return int(v) if isinstance(v, bool) else v


class _Tx:
    """One transaction's reads and writes (see :class:`panoflow.controlplane.store.Transaction`)."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]], columns: Columns, clock: _Clock):
        self._conn = conn
        self._columns = columns
        self._clock = clock

    def _check(self, table: str, names: Any) -> Mapping[str, str]:
        known = self._columns.get(table)
        if known is None:
            raise StoreError(f"no table {table!r}")
        unknown = set(names) - set(known)
        if unknown:
            raise StoreError(f"no column(s) {sorted(unknown)} in {table}")
        return known

    @staticmethod
    def _row(raw: Mapping[str, Any]) -> Row:
        cols = {k: v for k, v in raw.items() if k not in ("id", "doc")}
        return Row(raw["id"], cols, json.loads(raw["doc"]))

    @staticmethod
    def _where(where: Mapping[str, Any]) -> str:
        return " AND ".join(f"{k} = %s" for k in where) or "TRUE"

    def get(self, table: str, id: str) -> Row | None:
        """The row ``id`` of ``table``, or None."""
        self._check(table, ())
        if _has_nul([id]):
            return None
        raw = self._conn.execute(f"SELECT * FROM {table} WHERE id = %s", (id,)).fetchone()
        return None if raw is None else self._row(raw)

    def select(self, table: str, where: Mapping[str, Any] | None = None, *, order_by: str = "created_ns",
               descending: bool = False) -> list[Row]:
        """Rows whose columns equal ``where``, ordered by ``order_by`` then ``id``."""
        where = dict(where or {})
        known = self._check(table, [*where, order_by])
        if _has_nul(where.values()):
            return []
        direction = "DESC NULLS LAST" if descending else "ASC NULLS FIRST"
        key = f'{order_by} COLLATE "C"' if known[order_by] in _TEXT_TYPES else order_by
        sql = (f'SELECT * FROM {table} WHERE {self._where(where)} '
               f'ORDER BY {key} {direction}, id COLLATE "C" {direction}')
        return [self._row(r) for r in self._conn.execute(sql, [_value(v) for v in where.values()])]

    def insert(self, table: str, id: str, doc: Mapping[str, Any], **columns: Any) -> Row:
        """Insert a row; :class:`KeyError` when its id or a unique column is taken."""
        columns.setdefault("created_ns", self._clock())
        self._check(table, columns)
        names = ["id", "doc", *columns]
        values = [id, json.dumps(dict(doc)), *(_value(v) for v in columns.values())]
        if _has_nul(values):
            raise StoreError(f"{table}: PostgreSQL text cannot hold NUL characters")
        # ON CONFLICT DO NOTHING keeps the transaction usable after a duplicate, as in SQLite.
        try:
            cur = self._conn.execute(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) "
                "ON CONFLICT DO NOTHING", values)
        except psycopg.IntegrityError as exc:
            raise KeyError(f"{table}: {exc.diag.message_primary or exc}") from None
        if cur.rowcount == 0:
            raise KeyError(f"{table}: a row with id {id!r} or the same unique column values exists")
        return Row(id, dict(columns), dict(doc))

    def update(self, table: str, id: str, doc: Mapping[str, Any] | None = None, **columns: Any) -> None:
        """Set ``doc`` and/or ``columns`` of the row ``id`` (no row: nothing happens)."""
        self._check(table, columns)
        sets = {k: _value(v) for k, v in columns.items()}
        if doc is not None:
            sets["doc"] = json.dumps(dict(doc))
        if not sets or _has_nul([id]):
            return
        if _has_nul(sets.values()):
            raise StoreError(f"{table}: PostgreSQL text cannot hold NUL characters")
        self._conn.execute(f"UPDATE {table} SET {', '.join(f'{k} = %s' for k in sets)} WHERE id = %s",
                           (*sets.values(), id))

    def delete(self, table: str, **where: Any) -> int:
        """Delete the rows whose columns equal ``where`` (all rows without it); how many went."""
        self._check(table, where)
        if _has_nul(where.values()):
            return 0
        cur = self._conn.execute(f"DELETE FROM {table} WHERE {self._where(where)}",
                                 [_value(v) for v in where.values()])
        return cur.rowcount


class PostgresStore:
    """The control plane's state in a PostgreSQL database; thread-safe (one connection behind a lock).

    ``url`` is the URL it was opened with, password included: log ``redact_url(store.url)``, never
    ``store.url``.
    """

    def __init__(self, url: str):
        if psycopg is None:
            raise StoreError("PostgreSQL needs psycopg: pip install 'panoflow[controlplane]'")
        self.url = url
        self._shown = redact_url(url)  # what errors and logs say
        self._password = unquote(urlsplit(url).password or "")
        self._lock = threading.RLock()
        self._clock = _Clock()
        self._conn = self._connect()
        try:
            self._migrate()
            self._columns = self._read_columns()
        except BaseException:
            self._conn.close()
            raise
        log.info("store_opened", db=self._shown, schema_version=self.schema_version())

    def _safe(self, exc: BaseException) -> str:
        """The error's text with any password removed."""
        text = redact_text(" ".join(str(exc).split()))
        return text.replace(self._password, "***") if self._password else text

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   connect_timeout=_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._shown}: {self._safe(exc)} "
                             "(check the host, port, user, password and database in the URL)") from None

    def _begin(self) -> None:
        """BEGIN and take the store's write lock, reconnecting once if the connection broke (the server
        restarted, an idle timeout...)."""
        if not self._conn.closed and not self._conn.broken:
            try:
                self._conn.execute(_BEGIN)
                return
            except psycopg.OperationalError as exc:
                if not (self._conn.closed or self._conn.broken):
                    self._rollback()
                    raise StoreError(f"PostgreSQL at {self._shown}: {self._safe(exc)}") from None
        log.warning("store_reconnecting", db=self._shown)
        self._conn.close()
        self._conn = self._connect()
        try:
            self._conn.execute(_BEGIN)
        except psycopg.Error as exc:
            self._rollback()
            raise StoreError(f"PostgreSQL at {self._shown}: {self._safe(exc)}") from None

    def _rollback(self) -> None:
        if self._conn.closed or self._conn.broken:
            return
        try:
            self._conn.execute("ROLLBACK")
        except psycopg.Error:
            log.warning("store_rollback_failed", db=self._shown)

    @contextmanager
    def _raw_transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self._lock:
            self._begin()
            try:
                yield self._conn
            except psycopg.OperationalError as exc:
                self._rollback()
                raise StoreError(f"PostgreSQL at {self._shown} failed: {self._safe(exc)}") from None
            except BaseException:
                self._rollback()
                raise
            if self._conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                self._rollback()  # COMMIT would silently roll back: say so instead
                raise StoreError(f"PostgreSQL at {self._shown}: the transaction failed earlier and was "
                                 "rolled back")
            try:
                self._conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._rollback()
                raise StoreError(f"PostgreSQL at {self._shown} could not commit: {self._safe(exc)}") from None

    def _migrate(self) -> None:
        """Apply the migrations this database lacks, each in its own transaction under the migration lock."""
        lock = f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK}, hashtext(current_schema()))"
        try:
            with self._raw_transaction() as conn:
                conn.execute(lock)
                conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                             "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)")
        except psycopg.Error as exc:
            raise StoreError(f"cannot create schema_migrations in PostgreSQL at {self._shown}: "
                             f"{self._safe(exc)} (may the user create tables in the database's current "
                             "schema?)") from None
        for version, name, sql in migrations():
            try:
                with self._raw_transaction() as conn:
                    conn.execute(lock)  # held until COMMIT: another control plane waits, then sees it applied
                    applied = "SELECT 1 FROM schema_migrations WHERE version = %s"
                    if conn.execute(applied, (version,)).fetchone():
                        continue
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                                 (version, name, time.time_ns()))
            except psycopg.Error as exc:
                raise StoreError(f"cannot apply migration {version:04d}_{name}.sql to PostgreSQL at "
                                 f"{self._shown}: {self._safe(exc)}") from None
            log.info("store_migrated", db=self._shown, version=version, name=name)

    def _read_columns(self) -> dict[str, dict[str, str]]:
        columns: dict[str, dict[str, str]] = {}
        with self._raw_transaction() as conn:
            for r in conn.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = current_schema()"):
                columns.setdefault(r["table_name"], {})[r["column_name"]] = r["data_type"]
        return columns

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self._raw_transaction() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").fetchone()
        return int(row["v"]) if row else 0

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """One serialised read-write transaction."""
        with self._raw_transaction() as conn:
            yield _Tx(conn, self._columns, self._clock)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
