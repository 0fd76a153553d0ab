"""Where the control plane keeps its state: a small repository interface over SQL tables.

Every table (see ``migrations/*.sql``) has an ``id`` primary key, a ``created_ns`` clock used for stable
ordering, a few plain columns the API filters on, and ``doc``, the rest of the resource as JSON. The interface
is deliberately narrow (get, select with equality filters, insert, update, delete) and has two implementations
over the same migrations: ``sqlite:///path.db`` (:mod:`.sqlite`, stdlib ``sqlite3``) and
``postgresql://user:password@host/db`` (:mod:`.postgres`, psycopg 3; ``postgres://`` works too).
"""

from __future__ import annotations

from panoflow.controlplane.store.base import MIGRATIONS_DIR, Row, Store, StoreError, Transaction, migrations
from panoflow.controlplane.store.postgres import PostgresStore
from panoflow.controlplane.store.sqlite import SqliteStore
from panoflow.core.redact import redact_url

__all__ = ["MIGRATIONS_DIR", "PostgresStore", "Row", "SqliteStore", "Store", "StoreError", "Transaction",
           "migrations", "open_store"]


def open_store(url: str) -> Store:
    """Open (creating and migrating as needed) the database at ``url``.

    ``sqlite:///path.db`` (the file is created with mode 0600) or ``postgresql://user:password@host:port/db``
    (``postgres://`` too; the database must exist, its tables are created). Any libpq URL parameter works,
    e.g. ``?sslmode=require`` or ``?options=-csearch_path%3Dpanoflow`` to keep the tables in another schema.
    Raises :class:`StoreError` when the database cannot be opened or migrated.
    """
    if url.startswith("sqlite:///"):
        return SqliteStore(url)
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresStore(url)
    raise StoreError(f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db or "
                     "postgresql://user:password@host/db")
