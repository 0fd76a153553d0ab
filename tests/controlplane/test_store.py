"""The store backends (SQLite, PostgreSQL) behave identically: a stateful model test of the repository
interface, idempotent migrations, serialised concurrent transactions and clear errors (never with a password
in them)."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from panoflow.controlplane.store import Row, Store, StoreError, migrations, open_store
from tests.support.control_plane import postgres_schema

# each example is 25 transactions (and the suite runs it on both backends): at most 100 even under CI
EXAMPLES = min(int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "30")), 100)

# The model covers two tables of migration 0001: a unique text column (devices.name), a nullable integer
# column (claim_tokens.used_ns) and text and integer ordering.
UNIQUE = {"devices": ("name",), "claim_tokens": ()}
NOT_NULL = {"devices": ("name", "aggregated_status"), "claim_tokens": ("device_id", "expires_ns")}
NULLABLE = {"devices": (), "claim_tokens": ("used_ns",)}
ORDER = {"devices": ("created_ns", "name", "aggregated_status", "id"),
         "claim_tokens": ("created_ns", "device_id", "expires_ns", "used_ns", "id")}

_ids = st.sampled_from(["a", "B", "b", "é", "z1", "Z", "ü-2"])
# Case, accents and non-BMP characters: text must order bytewise (code points) on both backends.
_text = st.sampled_from(["", "a", "A", "b", "B", "é", "e", "Ω", "😀", "a b", "ab"])
_ints = st.sampled_from([0, 1, -1, 2, 10**18, -(10**18), 2**63 - 1, -(2**63)])
_docs = st.dictionaries(st.sampled_from(["k", "n", "é"]),
                        st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4), max_size=3)
_tables = st.sampled_from(sorted(UNIQUE))


def _value(table: str, column: str) -> st.SearchStrategy[Any]:
    if column in ("name", "aggregated_status", "device_id"):
        return _text
    value = _ints
    return value | st.none() if column in NULLABLE[table] else value


def _view(table: str, row: Row) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """What the model knows of a row (later migrations may add columns)."""
    known = (*NOT_NULL[table], *NULLABLE[table], "created_ns")
    return row.id, {k: row.columns[k] for k in known}, row.doc


class StoreModel(RuleBasedStateMachine):
    """Random insert/get/select/update/delete (and rolled-back transactions) against a dict model."""

    def __init__(self, store: Store):
        super().__init__()
        self.store = store
        self.model: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {t: {} for t in UNIQUE}
        with store.transaction() as tx:
            for table in UNIQUE:
                tx.delete(table)

    def _expected(self, table: str, id: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        cols, doc = self.model[table][id]
        return id, cols, doc

    @rule(data=st.data(), table=_tables, id=_ids, doc=_docs)
    def insert(self, data: st.DataObject, table: str, id: str, doc: dict[str, Any]) -> None:
        cols = {c: data.draw(_value(table, c), label=c) for c in (*NOT_NULL[table], *NULLABLE[table])}
        rows = self.model[table]
        clash = id in rows or any(rows[r][0][u] == cols[u] for u in UNIQUE[table] for r in rows)
        with self.store.transaction() as tx:
            if clash:
                with pytest.raises(KeyError):
                    tx.insert(table, id, doc, **cols)
                return
            row = tx.insert(table, id, doc, **cols)
        assert row.id == id and row.doc == doc
        created = row.columns["created_ns"]
        assert all(created > c["created_ns"] for t in self.model.values() for c, _ in t.values())
        rows[id] = ({**cols, "created_ns": created}, dict(doc))

    @rule(table=_tables, id=_ids)
    def get(self, table: str, id: str) -> None:
        with self.store.transaction() as tx:
            row = tx.get(table, id)
        if id in self.model[table]:
            assert row is not None and _view(table, row) == self._expected(table, id)
        else:
            assert row is None

    @rule(data=st.data(), table=_tables, descending=st.booleans())
    def select(self, data: st.DataObject, table: str, descending: bool) -> None:
        filterable = (*NOT_NULL[table], *NULLABLE[table])
        names = data.draw(st.lists(st.sampled_from(filterable), unique=True, max_size=2), label="where")
        where = {n: data.draw(_value(table, n).filter(lambda v: v is not None), label=n) for n in names}
        order_by = data.draw(st.sampled_from(ORDER[table]), label="order_by")
        with self.store.transaction() as tx:
            got = [_view(table, r) for r in tx.select(table, where, order_by=order_by, descending=descending)]
        expected = [self._expected(table, i) for i, (c, _) in self.model[table].items()
                    if all(c[k] == v for k, v in where.items())]

        def key(e: tuple[str, dict[str, Any], dict[str, Any]]) -> tuple[Any, ...]:
            v = e[0] if order_by == "id" else e[1][order_by]
            return (v is not None, v if v is not None else 0, e[0])  # NULLs first ascending, as SQLite

        assert got == sorted(expected, key=key, reverse=descending)

    @rule(data=st.data(), table=_tables, id=_ids, doc=st.none() | _docs)
    def update(self, data: st.DataObject, table: str, id: str, doc: dict[str, Any] | None) -> None:
        settable = [c for c in (*NOT_NULL[table], *NULLABLE[table]) if c not in UNIQUE[table]]
        names = data.draw(st.lists(st.sampled_from(settable), unique=True, max_size=2), label="columns")
        cols = {n: data.draw(_value(table, n), label=n) for n in names}
        with self.store.transaction() as tx:
            tx.update(table, id, doc, **cols)
        if id in self.model[table]:
            old_cols, old_doc = self.model[table][id]
            self.model[table][id] = ({**old_cols, **cols}, dict(doc) if doc is not None else old_doc)

    @rule(data=st.data(), table=_tables)
    def delete(self, data: st.DataObject, table: str) -> None:
        filterable = ("id", *NOT_NULL[table], *NULLABLE[table])
        names = data.draw(st.lists(st.sampled_from(filterable), unique=True, min_size=1, max_size=2),
                          label="where")
        where = {n: data.draw(_ids if n == "id" else _value(table, n).filter(lambda v: v is not None),
                              label=n)
                 for n in names}
        gone = [i for i, (c, _) in self.model[table].items()
                if all((i if k == "id" else c[k]) == v for k, v in where.items())]
        with self.store.transaction() as tx:
            assert tx.delete(table, **where) == len(gone)
        for i in gone:
            del self.model[table][i]

    @precondition(lambda self: any(self.model.values()))
    @rule(table=_tables, doc=_docs)
    def rolled_back(self, table: str, doc: dict[str, Any]) -> None:
        """An exception inside the ``with`` block undoes every write of the transaction."""
        with pytest.raises(RuntimeError), self.store.transaction() as tx:
            for id in self.model[table]:
                tx.update(table, id, doc)
            tx.delete(table)
            raise RuntimeError("undo")

    @invariant()
    def same_rows(self) -> None:
        with self.store.transaction() as tx:
            for table in UNIQUE:
                assert sorted(_view(table, r) for r in tx.select(table)) == sorted(
                    self._expected(table, i) for i in self.model[table])


def _applied(url: str) -> list[tuple[Any, ...]]:
    """``schema_migrations`` as the database driver sees it."""
    query = "SELECT version, name, applied_ns FROM schema_migrations ORDER BY version"
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return [tuple(r) for r in conn.execute(query)]
    import psycopg

    with psycopg.connect(url) as pg:
        return [tuple(r) for r in pg.execute(query)]


def test_store_matches_model(store: Store) -> None:
    run_state_machine_as_test(
        lambda: StoreModel(store),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_reopening_a_migrated_database_changes_nothing(store_url: str) -> None:
    first = open_store(store_url)
    with first.transaction() as tx:
        tx.insert("tags", "arn:x", {"k": "v"})
    first.close()
    applied = _applied(store_url)
    assert [(v, n) for v, n, _ in applied] == [(v, n) for v, n, _ in migrations()]
    for _ in range(2):
        again = open_store(store_url)
        assert again.schema_version() == applied[-1][0]
        with again.transaction() as tx:
            assert [r.doc for r in tx.select("tags")] == [{"k": "v"}]
        again.close()
        assert _applied(store_url) == applied


def test_concurrent_transactions_are_serialised(store_url: str) -> None:
    """Read-modify-write from two threads on one store, and from two stores (two control planes) at once."""
    stores = [open_store(store_url), open_store(store_url)]
    with stores[0].transaction() as tx:
        tx.insert("tags", "counter", {"n": 0})
    rounds = 40
    errors: list[BaseException] = []

    def bump(store: Store) -> None:
        try:
            for i in range(rounds):
                with store.transaction() as tx:
                    row = tx.get("tags", "counter")
                    assert row is not None
                    tx.insert("template_jobs", f"{threading.get_ident()}-{i}", {})
                    tx.update("tags", "counter", {"n": row.doc["n"] + 1})
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(s,)) for s in (stores[0], stores[0], stores[1], stores[1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        with stores[1].transaction() as tx:
            assert tx.get("tags", "counter").doc == {"n": 4 * rounds}  # type: ignore[union-attr]
            assert len(tx.select("template_jobs")) == 4 * rounds
            created = [r.columns["created_ns"] for r in tx.select("template_jobs")]
            assert len(set(created)) == len(created)
    finally:
        for s in stores:
            s.close()


def test_unknown_tables_and_columns_are_store_errors(store: Store) -> None:
    with store.transaction() as tx:
        with pytest.raises(StoreError, match=r"no column\(s\) \['colour'\] in devices"):
            tx.select("devices", {"colour": "red"})
        with pytest.raises(StoreError, match="no column"):
            tx.select("devices", order_by="colour; DROP TABLE devices")
        with pytest.raises(StoreError, match="no column"):
            tx.insert("devices", "d", {}, name="n", aggregated_status="s", colour="red")
        with pytest.raises(StoreError, match="no column"):
            tx.update("devices", "d", colour="red")
        with pytest.raises(StoreError, match="no column"):
            tx.delete("devices", colour="red")
        with pytest.raises(StoreError, match="no table 'nope'"):
            tx.get("nope", "x")
        tx.insert("devices", "d", {"ok": True}, name="n", aggregated_status="s")
    with store.transaction() as tx:  # the errors above left the transaction usable
        row = tx.get("devices", "d")
    assert row is not None and row.doc == {"ok": True}


def test_nul_characters_find_nothing(store: Store) -> None:
    """Lookups by a string PostgreSQL text cannot hold (a NUL) find nothing on either backend."""
    with store.transaction() as tx:
        assert tx.get("devices", "a\x00b") is None
        assert tx.select("devices", {"name": "\x00"}) == []
        assert tx.delete("devices", name="\x00") == 0


def test_a_transaction_is_rolled_back_on_error(store: Store) -> None:
    with pytest.raises(ValueError), store.transaction() as tx:
        tx.insert("tags", "arn:y", {})
        raise ValueError("boom")
    with store.transaction() as tx:
        assert tx.get("tags", "arn:y") is None


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://cp:Sup3r-s3cret@127.0.0.1:1/panoflow")
    text = str(info.value)
    assert "cannot connect to PostgreSQL at postgresql://cp:***@127.0.0.1:1/panoflow" in text
    assert "Sup3r-s3cret" not in text and "Sup3r-s3cret" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


def test_wrong_postgres_password_is_a_store_error_without_it(pg_url: str) -> None:
    u = urlsplit(pg_url)
    bad = urlunsplit(u._replace(netloc=f"{u.username}:Wr0ng-pa55@{u.hostname}:{u.port}"))
    with pytest.raises(StoreError, match="password authentication failed") as info:
        open_store(bad)
    assert "Wr0ng-pa55" not in str(info.value)
    assert u.password and u.password not in str(info.value)


class _Proxy:
    """A TCP forwarder to PostgreSQL: cutting its connections is what a server restart does to a client."""

    def __init__(self, host: str, port: int):
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                self._threads.append(t)
                t.start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        """Close every forwarded connection (new ones are still accepted)."""
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._socks.clear()

    def close(self) -> None:
        """Stop accepting and cut: the server is gone."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()
        for t in self._threads:
            t.join(5)


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[str, _Proxy]]:
    u = urlsplit(pg_url)
    proxy = _Proxy(u.hostname or "127.0.0.1", u.port or 5432)
    try:
        yield urlunsplit(u._replace(netloc=f"{u.username}:{u.password}@127.0.0.1:{proxy.port}")), proxy
    finally:
        proxy.close()


def test_postgres_reconnects_once_after_losing_its_connection(proxied: tuple[str, _Proxy]) -> None:
    url, proxy = proxied
    store = open_store(url)
    try:
        with store.transaction() as tx:
            tx.insert("tags", "arn:z", {"a": 1})
        proxy.cut()
        with store.transaction() as tx:
            assert tx.get("tags", "arn:z").doc == {"a": 1}  # type: ignore[union-attr]
    finally:
        store.close()


def test_postgres_gone_is_a_store_error_without_the_password(proxied: tuple[str, _Proxy]) -> None:
    url, proxy = proxied
    password = urlsplit(url).password
    store = open_store(url)
    try:
        proxy.close()
        with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info, store.transaction():
            pass
        assert password and password not in str(info.value)
    finally:
        store.close()


def test_postgres_migrations_do_not_race(pg_url: str) -> None:
    """Two control planes starting at once on an empty database: each migration is applied exactly once."""
    opened: list[Store] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(open_store(pg_url))
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert len(opened) == len(threads)
        assert [(v, n) for v, n, _ in _applied(pg_url)] == [(v, n) for v, n, _ in migrations()]
    finally:
        for s in opened:
            s.close()
