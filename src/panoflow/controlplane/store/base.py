"""The repository interface of the control plane's store: :class:`Row`, the :class:`Transaction` and
:class:`Store` protocols, :class:`StoreError` and the SQL :func:`migrations` every backend applies (see the
package's docstring). The backends (:mod:`.sqlite`, :mod:`.postgres`) import this module; the package imports
them and picks one in :func:`~panoflow.controlplane.store.open_store`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from panoflow.exceptions import PanoflowError

__all__ = ["MIGRATIONS_DIR", "Row", "Store", "StoreError", "Transaction", "migrations"]

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
