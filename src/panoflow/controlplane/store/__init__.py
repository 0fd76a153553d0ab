"""Where the control plane keeps its state: a small repository interface over SQL tables.

Every table (see ``migrations/*.sql``) has an ``id`` primary key, a ``created_ns`` clock used for stable ordering,
a few plain columns the API filters on, and ``doc``, the rest of the resource as JSON. The interface is deliberately
narrow (get, select with equality filters, insert, update, delete) and has two implementations over the same
migrations: ``sqlite:///path.db`` (:mod:`.sqlite`, stdlib ``sqlite3``) and ``postgresql://user:password@host/db``
(:mod:`.postgres`, psycopg 3; ``postgres://`` works too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from panoflow.core.redact import redact_url
from panoflow.exceptions import PanoflowError

__all__ = ["MIGRATIONS_DIR", "Row", "Store", "StoreError", "Transaction", "migrations", "open_store"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class StoreError(PanoflowError, RuntimeError):
    """The database cannot be opened or migrated."""


@dataclass
class Row:
    """One row: its id, its plain columns and its JSON document."""

    id: str
    columns: dict[str, Any]
    doc: dict[str, Any] = field(default_factory=dict)


class Transaction(Protocol):
    """Reads and writes inside one transaction (committed when the ``with`` block ends without an error)."""

    def get(self, table: str, id: str) -> Row | None: ...

    def select(self, table: str, where: Mapping[str, Any] | None = None, *, order_by: str = "created_ns",
               descending: bool = False) -> list[Row]: ...

    def insert(self, table: str, id: str, doc: Mapping[str, Any], **columns: Any) -> Row: ...

    def update(self, table: str, id: str, doc: Mapping[str, Any] | None = None, **columns: Any) -> None: ...

    def delete(self, table: str, **where: Any) -> int: ...


class Store(Protocol):
    """A database holding the control plane's state."""

    url: str

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


def migrations() -> Iterator[tuple[int, str, str]]:
    """``(version, name, sql)`` for every migration, in order (``0001_initial.sql`` is version 1)."""
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        yield int(number), name, path.read_text(encoding="utf-8")


def open_store(url: str) -> Store:
    """Open (creating and migrating as needed) the database at ``url``.

    ``sqlite:///path.db`` (the file is created with mode 0600) or ``postgresql://user:password@host:port/db``
    (``postgres://`` too; the database must exist, its tables are created). Any libpq URL parameter works, e.g.
    ``?sslmode=require`` or ``?options=-csearch_path%3Dpanoflow`` to keep the tables in another schema.
    Raises :class:`StoreError` when the database cannot be opened or migrated.
    """
    if url.startswith("sqlite:///"):
        from panoflow.controlplane.store.sqlite import SqliteStore

        return SqliteStore(url)
    if url.startswith(("postgres://", "postgresql://")):
        from panoflow.controlplane.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db or "
                     "postgresql://user:password@host/db")
