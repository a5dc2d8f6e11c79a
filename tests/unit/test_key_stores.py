"""One key-store contract, two backends (issues #14, #12): ``data/keys.sqlite``, and PostgreSQL's
``api_keys`` when ``RAG_DATABASE_URL`` is set, each opened through the one factory
(stack.pipeline.backends.open_keys).  The Postgres runs use a real private cluster
(tests/support/postgres_server.py) and are slow (it starts once per session).

"Replicas" here are store objects with connections of their own on the same database (a second
pool for Postgres, as another host has; another process too), never the first store's cache."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from stack import keys as keys_module
from stack.keys import PREFIX, KeyRefused, PostgresKeyStore, SqliteKeyStore, hash_key
from stack.pipeline.backends import open_keys
from stack.pipeline.errors import StoreUnavailable
from stack.settings import load_settings
from tests.support.access import ADMIN, client, new_key
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.support.suite import REPO

SQLITE, POSTGRES = "sqlite", pytest.param("postgres", marks=pytest.mark.slow)


@pytest.fixture(params=[SQLITE, POSTGRES])
def settings(request, tmp_path):
    overrides = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    return load_settings(tmp_path / "project", overrides)


@pytest.fixture
def replica(settings):
    """Another replica's store on the same state: its own SQLite connections, or its own Postgres pool."""
    from stack.pipeline.backends import database_url

    opened = []

    def make():
        url = database_url(settings)
        if url is None:
            return SqliteKeyStore(settings.data_path / "keys.sqlite")
        from stack.pipeline.postgres import Database

        opened.append(Database(url, pool_size=2))
        return PostgresKeyStore(opened[-1])

    yield make
    for db in opened:
        db.close()


def stored_bytes(settings) -> bytes:
    """Everything the store keeps, as the disk or the server holds it."""
    from stack.pipeline.backends import database_url

    url = database_url(settings)
    if url is None:
        return b"".join(path.read_bytes() for path in settings.data_path.glob("keys.sqlite*"))
    import psycopg

    with psycopg.connect(url) as db:
        return json.dumps(db.execute("SELECT json_agg(k) FROM api_keys k").fetchone()[0]).encode()


def refused(call) -> KeyRefused:
    with pytest.raises(KeyRefused) as caught:
        call()
    return caught.value


def test_the_factory_picks_the_store(settings):
    store = open_keys(settings)
    postgres = settings.database_url is not None
    assert type(store) is (PostgresKeyStore if postgres else SqliteKeyStore)
    store.create("probe", "ask")
    # With a database URL nothing of the keys lands on the replica's disk.
    assert (settings.data_path / "keys.sqlite").exists() is not postgres


def test_create_lookup_list_and_revoke(settings):
    store = open_keys(settings)
    before = time.time()
    record, key = store.create("web-team", "ask")
    assert key.startswith(PREFIX) and len(key) == len(PREFIX) + 43 and key.startswith(record.prefix)
    assert (record.name, record.role, len(record.prefix), record.active) == ("web-team", "ask", 9, True)
    assert before <= record.created_at <= time.time() and record.last_used_at is None
    ops, _ = store.create("ops", "admin")
    found = store.lookup(key)
    assert (found.name, found.role, found.prefix, found.revoked_at) == ("web-team", "ask", record.prefix, None)
    assert found.created_at == pytest.approx(record.created_at)
    assert store.lookup(key + "x") is None and store.lookup("not-a-key") is None
    assert store.lookup(PREFIX + "A" * 43) is None
    assert [k.name for k in store.list()] == ["web-team", "ops"]  # in the order they were made
    assert store.list()[0].last_used_at is not None  # the lookup recorded its use
    # Only the hash and the prefix are kept, never the key.
    raw = stored_bytes(settings)
    assert hash_key(key).encode() in raw and key.encode() not in raw
    # Revocation: at once, kept with its time; the record is still found, so the caller says 401 "revoked".
    revoked = store.revoke("web-team")
    assert not revoked.active and revoked.revoked_at >= record.created_at
    assert store.lookup(key).revoked_at == pytest.approx(revoked.revoked_at)
    assert store.revoke("web-team").revoked_at == pytest.approx(revoked.revoked_at)  # a second revoke keeps it
    assert [(k.name, k.active) for k in store.list()] == [("web-team", False), ("ops", True)]
    assert [k.to_dict()["active"] for k in store.list()] == [False, True] and ops.role == "admin"


def test_refusals_are_the_same_in_both(settings):
    store = open_keys(settings)
    store.create("web-team", "ask")
    taken = refused(lambda: store.create("web-team", "admin"))
    assert (taken.code, taken.http_status) == ("key_exists", 409) and "web-team" in str(taken)
    store.revoke("web-team")
    assert refused(lambda: store.create("web-team", "ask")).code == "key_exists"  # names stay taken
    missing = refused(lambda: store.revoke("nobody"))
    assert (missing.code, missing.http_status) == ("key_not_found", 404)
    assert refused(lambda: store.create("admin", "ask")).code == "invalid_key_name"
    assert refused(lambda: store.create("-x", "ask")).code == "invalid_key_name"
    assert refused(lambda: store.create("x" * 65, "ask")).code == "invalid_key_name"
    assert refused(lambda: store.create("x", "root")).code == "invalid_role"
    assert [k.name for k in store.list()] == ["web-team"]


def test_last_used_is_written_at_most_every_touch_interval(settings, monkeypatch):
    monkeypatch.setattr(keys_module, "TOUCH_EVERY_S", 0.5)
    store = open_keys(settings)
    _, key = store.create("reader", "ask")
    store.lookup(key)
    first = store.list()[0].last_used_at
    assert first is not None
    store.lookup(key)
    assert store.list()[0].last_used_at == first  # within the interval: not rewritten
    time.sleep(0.6)
    store.lookup(key)
    second = store.list()[0].last_used_at
    assert second > first
    store.revoke("reader")
    time.sleep(0.6)
    assert store.lookup(key).revoked_at is not None
    assert store.list()[0].last_used_at == second  # a revoked key's use is not recorded


def test_a_key_made_on_one_replica_works_on_another_and_its_revocation_holds_at_once(settings, replica):
    a, b = open_keys(settings), replica()
    assert b is not a
    _, key = a.create("analyst", "ask")
    assert b.lookup(key).name == "analyst" and [k.name for k in b.list()] == ["analyst"]
    assert b.lookup(key).active  # b has read it (and would have cached it, if it cached)
    b.revoke("analyst")
    assert a.lookup(key).revoked_at is not None  # the very next lookup on a
    assert refused(lambda: b.create("analyst", "admin")).code == "key_exists"
    _, other = b.create("second", "admin")
    assert a.lookup(other).role == "admin"


REPLICA_PROCESS = """
import sys
from stack.keys import PostgresKeyStore, SqliteKeyStore
from pathlib import Path
kind, where = sys.argv[1], sys.argv[2]
if kind == "postgres":
    from stack.pipeline.postgres import database
    store = PostgresKeyStore(database(where))
else:
    store = SqliteKeyStore(Path(where))
print("ready", flush=True)
for line in sys.stdin:
    record = store.lookup(line.strip())
    print("none" if record is None else ("revoked" if record.revoked_at else "active:" + record.name), flush=True)
"""


def test_another_process_sees_a_revocation_on_its_next_lookup(settings):
    from stack.pipeline.backends import database_url

    url = database_url(settings)
    kind, where = ("postgres", url) if url else ("sqlite", str(settings.data_path / "keys.sqlite"))
    store = open_keys(settings)
    _, key = store.create("remote", "ask")
    other = subprocess.Popen([sys.executable, "-c", REPLICA_PROCESS, kind, where], cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline().strip() == "ready"

        def ask(k: str) -> str:
            other.stdin.write(k + "\n")
            other.stdin.flush()
            return other.stdout.readline().strip()

        assert ask(key) == "active:remote"
        assert ask(key) == "active:remote"
        store.revoke("remote")
        assert ask(key) == "revoked"
        assert ask(PREFIX + "nope") == "none"
    finally:
        other.stdin.close()
        other.wait(timeout=30)


def test_concurrent_creates_of_one_name_let_exactly_one_win(settings, replica):
    stores = [replica() for _ in range(6)]
    start = threading.Barrier(len(stores))
    won: list[str] = []
    lost: list[KeyRefused] = []

    def create(store, n):
        start.wait()
        try:
            won.append(store.create("shared", "ask" if n % 2 else "admin")[1])
        except KeyRefused as exc:
            lost.append(exc)

    threads = [threading.Thread(target=create, args=(store, n)) for n, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(won) == 1 and len(lost) == len(stores) - 1, (won, lost)
    assert {(e.code, e.http_status) for e in lost} == {("key_exists", 409)}
    (listed,) = open_keys(settings).list()
    assert open_keys(settings).lookup(won[0]).name == listed.name == "shared"


# -- PostgreSQL only ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_version_1_database_gains_the_keys_table(postgres_url, tmp_path):  # noqa: F811 - fixture
    """A stack whose database was made before the keys moved there: the next process migrates it."""
    import psycopg

    from stack.pipeline import postgres

    assert postgres.SCHEMA_VERSION == max(postgres._MIGRATIONS) == 4
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE ragctl_schema (version INTEGER NOT NULL)")
        db.execute(postgres._MIGRATIONS[1])
        db.execute("INSERT INTO ragctl_schema (version) VALUES (1)")
        db.execute("INSERT INTO extracted (document_id, file_name, text, data) VALUES ('d1', 'a.md', 't', '{}')")
    settings = load_settings(tmp_path / "project", {"database_url": postgres_url})
    _, key = open_keys(settings).create("after-upgrade", "ask")
    assert open_keys(settings).lookup(key).name == "after-upgrade"
    with psycopg.connect(postgres_url) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM ragctl_schema ORDER BY version")]
        kept = db.execute("SELECT file_name FROM extracted WHERE document_id = 'd1'").fetchone()
    assert versions == [1, 2, 3, 4] and kept == ("a.md",)


def test_an_unreachable_database_is_store_unavailable_not_a_wrong_key():
    """The API turns StoreUnavailable into 503: a replica cut from PostgreSQL never says 401."""
    from stack.pipeline.postgres import Database

    with pytest.raises(StoreUnavailable) as caught:
        PostgresKeyStore(Database("postgresql://nobody:secret@127.0.0.1:1/none", timeout_s=1)).lookup(PREFIX + "x")
    assert "127.0.0.1:1/none" in str(caught.value) and "secret" not in str(caught.value)


@pytest.mark.slow
def test_two_api_replicas_without_a_shared_disk_share_keys_through_postgres(make_app, postgres_url):  # noqa: F811
    """Two API apps with separate data folders (two hosts) and one RAG_DATABASE_URL."""
    app_a = make_app(database_url=postgres_url, data_dir="data-host-a")
    app_b = make_app(database_url=postgres_url, data_dir="data-host-b")
    key = new_key(app_a, "team")
    assert client(app_b, key).get("/api/whoami").json() == {"name": "team", "role": "ask", "collections": None}
    assert [k["name"] for k in client(app_b, ADMIN).get("/api/keys").json()] == ["team"]
    assert client(app_b, ADMIN).delete("/api/keys/team").status_code == 200
    response = client(app_a, key).get("/api/whoami")
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert client(app_a, ADMIN).post("/api/keys", json={"name": "team", "role": "ask"}).status_code == 409
    for app in (app_a, app_b):
        assert not (app.state.settings.data_path / "keys.sqlite").exists()


def test_a_key_keeps_its_collections_in_both_stores(settings):
    store = open_keys(settings)
    scoped, key = store.create("hr-team", "editor", ["policies", "hr", "hr"])
    assert scoped.collections == ("hr", "policies")  # sorted, once each
    assert store.lookup(key).collections == ("hr", "policies") and store.lookup(key).role == "editor"
    _, everything = store.create("readers", "ask")
    assert store.lookup(everything).collections is None  # no list: every collection, as keys made before
    assert {k.name: k.to_dict()["collections"] for k in store.list()} == {"hr-team": ["hr", "policies"],
                                                                         "readers": None}
    for role, scope, code in (("admin", ["hr"], "invalid_scope"), ("ask", [], "invalid_scope"),
                              ("ask", ["a b"], "invalid_scope"), ("owner", None, "invalid_role")):
        with pytest.raises(KeyRefused) as caught:
            store.create(f"x-{code}-{role}", role, scope)
        assert caught.value.code == code


def test_a_key_store_made_before_scopes_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "keys.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE api_keys (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, "
                   "prefix TEXT NOT NULL, created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL)")
        db.execute("INSERT INTO api_keys VALUES ('old', 'ask', ?, 'rk_old', 1.0, NULL, NULL)", (hash_key("rk_old"),))
    store = SqliteKeyStore(path)
    assert store.lookup("rk_old").collections is None  # an existing key keeps every collection
