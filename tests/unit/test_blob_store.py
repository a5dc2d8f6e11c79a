"""The blob store takes ownership of a received upload (``adopt``), and PostgreSQL's connections are
capped per process (issue #12).

The folder store renames the temporary file into ``uploads/<id>/<safe name>`` and, on any failure,
leaves nothing behind; the PostgreSQL store streams the bytes in and out a slice at a time and
removes the temporary file whatever happens.  A process holds at most ``RAG_DATABASE_POOL``
connections: the threads beyond wait, then fail with ``store_unavailable`` naming the limit; the
connections are given back and reused.  Real PostgreSQL (tests/support/postgres_server.py)."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from stack.pipeline import storage
from stack.pipeline.errors import StoreUnavailable
from stack.pipeline.storage import BlobMissing, FolderBlobs, safe_file_name
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures

NAME = "휴가 규정 [v2].hwpx"


def received(tmp_path, data: bytes = b"PK\x03\x04 the bytes") -> Path:
    incoming = tmp_path / "uploads" / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{os.urandom(8).hex()}.part"
    path.write_bytes(data)
    return path


# -- the folder store --------------------------------------------------------------------------
def test_the_folder_store_adopts_a_received_file_with_one_rename(tmp_path):
    source = received(tmp_path)
    inode = source.stat().st_ino
    blobs = FolderBlobs(tmp_path / "uploads")
    ref = blobs.adopt("d1", NAME, source)
    assert ref == str(tmp_path / "uploads" / "d1" / safe_file_name(NAME))
    assert not source.exists() and os.stat(ref).st_ino == inode  # moved, not copied
    assert blobs.local(ref, tmp_path / "scratch") == tmp_path / "uploads" / "d1" / NAME
    assert not (tmp_path / "scratch").exists()  # the folder's own file: nothing copied


def test_a_failed_adopt_leaves_nothing_behind(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    blobs = FolderBlobs(tmp_path / "uploads")
    monkeypatch.setattr(storage.os, "replace", refuse)
    source = received(tmp_path)
    with pytest.raises(OSError, match="No space"):
        blobs.adopt("d1", NAME, source)
    assert not source.exists() and not (tmp_path / "uploads" / "d1").exists()
    # A folder that was there before (an earlier copy of the same bytes) stays, with what it held.
    monkeypatch.undo()
    kept = blobs.adopt("d2", "a.md", received(tmp_path))
    monkeypatch.setattr(storage.os, "replace", refuse)
    source = received(tmp_path)
    with pytest.raises(OSError):
        blobs.adopt("d2", "b.md", source)
    assert not source.exists() and [p.name for p in (tmp_path / "uploads" / "d2").iterdir()] == ["a.md"]
    assert blobs.exists(kept)


def test_a_missing_blob_names_where_it_should_be(tmp_path):
    blobs = FolderBlobs(tmp_path / "uploads")
    ref = str(tmp_path / "uploads" / "d9" / "gone.md")
    with pytest.raises(BlobMissing) as caught:
        blobs.local(ref, tmp_path / "scratch")
    assert caught.value.code == "blob_missing" and ref in caught.value.message
    assert isinstance(caught.value, FileNotFoundError)


# -- the PostgreSQL store ----------------------------------------------------------------------
@pytest.mark.slow  # a PostgreSQL cluster
def test_postgres_streams_a_large_upload_in_and_out_in_bounded_memory(tmp_path, postgres_url):  # noqa: F811
    from stack.pipeline.postgres import BLOB_CHUNK, Database, PostgresBlobs

    db = Database(postgres_url)
    blobs = PostgresBlobs(db)
    data = os.urandom(24 * 1024 * 1024 + 17)  # 24 MB and a bit: not a whole number of slices
    source = received(tmp_path, data)
    del data
    tracemalloc.start()
    try:
        ref = blobs.adopt("d1", NAME, source)
        _, peak_in = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        local = blobs.local(ref, tmp_path / "scratch")
        _, peak_out = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not source.exists() and ref == f"postgresql-blob:d1/{safe_file_name(NAME)}"
    assert local == tmp_path / "scratch" / "d1" / NAME and local.stat().st_size == 24 * 1024 * 1024 + 17
    # A slice and its hex form at a time, never the whole 24 MB file.
    assert peak_in < 6 * BLOB_CHUNK and peak_out < 6 * BLOB_CHUNK, (peak_in, peak_out)
    with db.transaction() as tx:
        row = tx.execute("SELECT size, length(data) AS stored, md5(data) AS md5 FROM blobs WHERE document_id = 'd1'"
                         ).fetchone()


    assert row["size"] == row["stored"] == local.stat().st_size
    assert row["md5"] == hashlib.md5(local.read_bytes()).hexdigest()

    # The same bytes adopted again (another upload of them): the one row stays; the temporary file goes.
    again = received(tmp_path, b"whatever: the id says the bytes are the same")
    assert blobs.adopt("d1", NAME, again) == ref and not again.exists()
    empty = received(tmp_path, b"")
    assert blobs.local(blobs.adopt("d0", "empty.md", empty), tmp_path / "s2").read_bytes() == b""
    blobs.delete("d1")
    with pytest.raises(BlobMissing) as caught:
        blobs.local(ref, tmp_path / "scratch3")
    assert "blobs/d1" in caught.value.message and db.where in caught.value.message
    assert postgres_url.split("@")[0].split(":")[-1] not in caught.value.message  # never the password


@pytest.mark.slow  # a PostgreSQL cluster
def test_a_failed_postgres_adopt_removes_the_temporary_file(tmp_path, postgres_server):  # noqa: F811
    from stack.pipeline.postgres import Database, PostgresBlobs

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    unreachable = postgres_server.url().replace(f":{postgres_server.port}/", f":{closed_port}/")
    source = received(tmp_path)
    with pytest.raises(StoreUnavailable):
        PostgresBlobs(Database(unreachable)).adopt("d1", NAME, source)
    assert not source.exists()


# -- the connection pool -----------------------------------------------------------------------
def _server_connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND pid <> pg_backend_pid()").fetchone()[0]


@pytest.mark.slow  # a PostgreSQL cluster
def test_a_process_never_holds_more_than_the_pool(postgres_url):  # noqa: F811
    from stack.pipeline.postgres import Database

    size, extra = 3, 2
    db = Database(postgres_url, pool_size=size, timeout_s=1.0)
    with db.transaction():
        pass  # the schema, once
    held, release = threading.Barrier(size + 1), threading.Event()
    pids: list[int] = []
    errors: list[tuple[float, Exception]] = []

    def hold() -> None:
        with db.transaction() as tx:
            pids.append(tx.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
            held.wait(30)
            release.wait(30)

    def late() -> None:
        started = time.monotonic()
        try:
            with db.transaction():
                pass
        except StoreUnavailable as exc:
            errors.append((time.monotonic() - started, exc))

    holders = [threading.Thread(target=hold) for _ in range(size)]
    for t in holders:
        t.start()
    held.wait(30)  # all three hold a connection
    latecomers = [threading.Thread(target=late) for _ in range(extra)]
    for t in latecomers:
        t.start()
    for t in latecomers:
        t.join(30)
    assert _server_connections(postgres_url) == size and db.in_use == size
    release.set()
    for t in holders:
        t.join(30)

    assert len(errors) == extra
    for waited, exc in errors:
        assert 0.9 <= waited < 10, waited  # waited for the timeout, then gave up
        assert exc.code == "store_unavailable" and exc.transient
        assert "All 3 connections" in exc.message and "RAG_DATABASE_POOL=3" in exc.message
        assert "RAG_DATABASE_POOL" in exc.hint and db.where in exc.message

    # Given back and reused: twenty more transactions from eight threads run on the same three sessions.
    used: set[int] = set()

    def work() -> None:
        for _ in range(20):
            with db.transaction() as tx:
                used.add(tx.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])

    workers = [threading.Thread(target=work) for _ in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert used and used <= set(pids) and db.in_use <= size
    db.close()
    assert db.in_use == 0


@pytest.mark.slow  # a PostgreSQL cluster
def test_a_waiting_thread_gets_the_connection_given_back_and_nesting_takes_none(postgres_url):  # noqa: F811
    from stack.pipeline.postgres import Database

    db = Database(postgres_url, pool_size=1, timeout_s=20)
    got: list[float] = []
    with db.transaction() as outer:
        first = outer.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        with db.transaction() as inner:  # the same thread, nested: its own connection, a savepoint
            assert inner.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] == first

        def wait_for_it() -> None:
            started = time.monotonic()
            with db.transaction() as tx:
                assert tx.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] == first
            got.append(time.monotonic() - started)

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        time.sleep(0.5)
        assert not got  # still waiting: the one connection is ours
    waiter.join(20)
    assert got and 0.4 < got[0] < 20
    assert db.in_use == 1


def test_the_pool_setting_is_named_once_and_reaches_the_database(tmp_path, monkeypatch):
    from stack.pipeline import backends
    from stack.settings import load_settings

    settings = load_settings(tmp_path, {"database_url": "postgresql://u:p@127.0.0.1:1/db", "database_pool": 3,
                                        "database_pool_timeout_s": 2.5})
    db = backends._database(settings, backends.database_url(settings))
    assert (db.pool_size, db.timeout_s) == (3, 2.5)
    assert load_settings(tmp_path).database_pool == 8
    monkeypatch.setenv("RAG_DATABASE_POOL", "5")
    assert load_settings(tmp_path).database_pool == 5


# -- documents show reads the text store -------------------------------------------------------
@pytest.mark.slow  # a PostgreSQL cluster
@pytest.mark.parametrize("backend", ["folder", "postgres"])
def test_documents_show_names_the_extracted_text_where_the_store_keeps_it(tmp_path, monkeypatch, backend, request):
    """``ragctl documents show`` (embedded mode, the real CLI and pipeline) reads the extracted text's
    place through ``pipeline.texts``: a file under extracted_results/, or the database's row."""
    import json

    from typer.testing import CliRunner

    from ragctl.cli import app
    from ragctl.project import init_project
    from stack.pipeline.catalog import DocumentRecord
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    root = tmp_path / "p"
    init_project(root)
    if backend == "postgres":
        monkeypatch.setenv("RAG_DATABASE_URL", request.getfixturevalue("postgres_url"))
    pipeline = Pipeline(load_settings(root))
    doc = "cd" * 32
    pipeline.catalog.upsert(DocumentRecord(id=doc, collection="default", file_name="[v2] 규정.md", size=10,
                                           status="failed", created_at=1.0, updated_at=2.0))

    def show() -> dict:
        result = CliRunner().invoke(app, ["--project", str(root), "documents", "show", doc[:8], "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert show()["extracted_text"] is None  # nothing extracted yet
    pipeline.texts.save(doc, "[v2] 규정.md", "본문", {"blocks": []})
    where = show()["extracted_text"]
    if backend == "postgres":
        assert where == f"postgresql {pipeline.texts.db.where} extracted/{doc}"
        assert not (root / "extracted_results" / f"{doc}.txt").exists()
    else:
        assert where == str(root / "extracted_results" / f"{doc}.txt")
    result = CliRunner().invoke(app, ["--project", str(root), "documents", "show", doc[:8]])
    assert result.exit_code == 0 and "extracted text" in result.stdout
