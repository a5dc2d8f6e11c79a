"""Moving a one-host project's state into PostgreSQL (issue #12, stack/pipeline/state_move.py).

A real SQLite project (the samples ingested by the real pipeline, two collections, an API key in
``data/keys.sqlite``) is moved into a fresh database on the session's real PostgreSQL: the
Postgres-backed pipeline over the same project (same Chroma) then lists the same documents and
gives the same hits and answers; a second move is refused, ``replace=True`` redoes it; a
difference found by the verification (a row deleted mid-way through the move's progress hook, or
uploaded bytes that no longer hash to their document id) rolls the whole move back; the project's
own files are never changed.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from stack.pipeline.state_move import STATE_TABLES, MoveMismatch, TargetNotEmpty, move_to_postgres
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow

SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".hwpx", ".pdf", ".docx", ".md"})
QUESTIONS = ["연차 휴가는 며칠인가요?", "What time do nightly backups run?", "휴가 신청", "expense approval limit"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A one-host project: every sample in 'default', one of them in 'other' too; one API key."""
    from stack.keys import key_store
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    pipeline = Pipeline(load_settings(tmp_path_factory.mktemp("project")))
    results = [pipeline.ingest_file(path) for path in SAMPLE_FILES]
    results.append(pipeline.ingest_file(SAMPLE_FILES[-1], collection="other"))
    assert [r.status for r in results] == ["done"] * len(results), [r.error for r in results]
    _, key = key_store(pipeline.settings.data_path).create("web-team", "ask")
    # As a stack's worker leaves a document: two tasks (the first re-queued), attempts, a log.
    record = pipeline.documents()[0]
    for task_id, reason in (("task-0001-first", "registered"), ("task-0002-second", "re-queued")):
        record.task_id, record.attempts = task_id, record.attempts + 1
        record.note(f"{reason} as {task_id}")
        assert not pipeline.catalog.upsert(record, reason=reason).fenced
    return pipeline, key


def _files(settings) -> dict[str, str]:
    """SHA-256 of every file of the project's one-host state; of a SQLite file, of its rows (a WAL
    checkpoint, which any connection's close may run, rewrites the bytes but not the content)."""
    roots = [settings.data_path / "catalog.sqlite", settings.data_path / "keys.sqlite",
             settings.data_path / "lexical", settings.data_path / "uploads", settings.extracted_path]
    found = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            if path.name.endswith(("-wal", "-shm")):
                continue
            if path.suffix == ".sqlite":
                with closing(sqlite3.connect(path)) as db:
                    content = "\n".join(db.iterdump()).encode()
            else:
                content = path.read_bytes()
            found[str(path)] = hashlib.sha256(content).hexdigest()
    return found


def _rows(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in STATE_TABLES}


def _on_postgres(pipeline, url: str):
    from stack.pipeline.service import Pipeline

    return Pipeline(pipeline.settings.model_copy(update={"database_url": url}))


def _summary(pipeline) -> list[tuple]:
    return sorted((r.collection, r.id, r.file_name, r.status, r.chunks, r.task_id, r.attempts, r.created_at,
                   tuple(r.log), tuple(sorted(r.timings.items())), tuple(pipeline.catalog.task_ids(r.collection, r.id)))
                  for r in pipeline.documents())


def test_move_answers_the_same_and_is_refused_twice(source, postgres_url, tmp_path):  # noqa: F811
    from pydantic import SecretStr

    from stack.pipeline.backends import open_keys
    from stack.pipeline.postgres import PostgresCatalog

    lite, key = source
    before = _files(lite.settings)
    steps: list[str] = []
    report = move_to_postgres(lite.settings, postgres_url, progress=lambda step, done, total: steps.append(step))

    assert report.verified and report.keys == 1 and report.seconds > 0 and report.missing_bytes == []
    n = len(SAMPLE_FILES)
    assert {c: (m.documents, m.texts, m.blobs) for c, m in report.collections.items()} == {
        "default": (n, n, n), "other": (1, 1, 1)}
    assert report.collections["default"].chunks == lite.lexical("default").count() > n
    assert report.task_ids == 2
    assert {"catalog", "postings:default", "postings:other", "keys", "verify"} <= set(steps)

    pg = _on_postgres(lite, SecretStr(postgres_url))
    assert isinstance(pg.catalog, PostgresCatalog)
    assert _summary(pg) == _summary(lite)
    for question in QUESTIONS:
        ours, theirs = lite.search(question), pg.search(question)
        assert ours and [h.chunk_id for h in theirs] == [h.chunk_id for h in ours], question
        assert [round(h.score, 6) for h in theirs] == [round(h.score, 6) for h in ours], question
        a, b = lite.ask(question), pg.ask(question)
        assert (b.answer, [s.chunk_id for s in b.sources]) == (a.answer, [s.chunk_id for s in a.sources]), question
    assert "15일" in pg.ask("연차 휴가는 며칠인가요?").answer
    # The bytes are in the database now, under their own SHA-256; the texts too.
    for record in pg.documents():
        assert record.stored_path.startswith("postgresql-blob:")
        local = pg.blobs.local(record.stored_path, tmp_path / record.collection)
        assert hashlib.sha256(local.read_bytes()).hexdigest() == record.id
        assert pg.texts.text(record.id) == lite.texts.text(record.id) and pg.texts.data(record.id) == lite.texts.data(record.id)
    # The key made on the SQLite store opens the Postgres one.
    found = open_keys(pg.settings).lookup(key)
    assert found is not None and (found.name, found.role) == ("web-team", "ask")

    # A second move would double it: refused, nothing written; replace=True redoes it.
    rows = _rows(postgres_url)
    with pytest.raises(TargetNotEmpty, match="holds ragctl state already"):
        move_to_postgres(lite.settings, postgres_url)
    assert _rows(postgres_url) == rows
    again = move_to_postgres(lite.settings, postgres_url, replace=True)
    assert again.verified and again.collections == report.collections and _rows(postgres_url) == rows
    assert _summary(pg) == _summary(lite)
    assert [h.chunk_id for h in pg.search(QUESTIONS[0])] == [h.chunk_id for h in lite.search(QUESTIONS[0])]

    assert _files(lite.settings) == before


def test_a_difference_rolls_the_move_back(source, postgres_url):  # noqa: F811
    from stack.pipeline.backends import database_url
    from stack.pipeline.postgres import PostgresTexts, database

    lite, _ = source
    before = _files(lite.settings)
    victim = lite.documents()[0].id

    def hook(step, done, total):  # runs inside the move's transaction: deletes a row it wrote
        if step == "texts":
            PostgresTexts(database(postgres_url)).delete(victim)

    with pytest.raises(MoveMismatch) as caught:
        move_to_postgres(lite.settings, postgres_url, progress=hook)
    assert any(victim[:12] in d and "extracted text" in d for d in caught.value.differences), caught.value.differences
    assert "rolled back" in caught.value.message
    assert _rows(postgres_url) == dict.fromkeys(STATE_TABLES, 0)  # nothing of the move is left
    assert _files(lite.settings) == before and database_url(lite.settings) is None
    assert move_to_postgres(lite.settings, postgres_url).verified  # and a clean run then succeeds


def test_a_compose_projects_bytes_are_found_checked_and_a_failed_replace_keeps_the_old_state(
        source, postgres_url, tmp_path):  # noqa: F811
    from stack.settings import load_settings

    lite, _ = source
    before = _files(lite.settings)
    root = tmp_path / "copy"
    shutil.copytree(lite.settings.project_root, root, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    settings = load_settings(root)
    # A Compose stack's catalog names the uploads as its containers see them (./data is /app/project/data).
    with closing(sqlite3.connect(settings.data_path / "catalog.sqlite")) as db, db:
        db.execute("UPDATE documents SET stored_path = replace(stored_path, ?, '/app/project/data')",
                   (str(lite.settings.data_path),))
    first = move_to_postgres(settings, postgres_url)
    assert first.verified and first.missing_bytes == []
    assert {c: m.blobs for c, m in first.collections.items()} == {"default": len(SAMPLE_FILES), "other": 1}
    rows = _rows(postgres_url)
    ids = {r.id for r in lite.documents()}
    assert _blob_hashes(postgres_url) == {i: i for i in ids}

    # Bytes changed after upload no longer hash to their document id: the replace fails, whole.
    record = lite.documents()[0]
    changed = settings.data_path / "uploads" / record.id / Path(record.stored_path).name
    changed.write_bytes(changed.read_bytes() + b"edited after upload")
    with pytest.raises(MoveMismatch) as caught:
        move_to_postgres(settings, postgres_url, replace=True)
    assert any(record.id[:12] in d and "SHA-256" in d for d in caught.value.differences), caught.value.differences
    assert _rows(postgres_url) == rows and _blob_hashes(postgres_url) == {i: i for i in ids}

    # Bytes that are gone: nothing to move for that document, and the report names it.
    changed.unlink()
    again = move_to_postgres(settings, postgres_url, replace=True)
    assert again.verified and again.missing_bytes == [f"default/{record.id}"]
    assert again.collections["default"].blobs == len(SAMPLE_FILES) - 1
    assert _files(lite.settings) == before


def _blob_hashes(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url) as db:
        return dict(db.execute("SELECT document_id, encode(sha256(data), 'hex') FROM blobs").fetchall())


def test_the_stack_side_commands_move_list_and_report_a_refusal_as_data(source, postgres_url):  # noqa: F811
    """What ``ragctl upgrade`` and a restore run inside the stack's container (``python -m
    stack.maintenance move-state|documents``): the move's report, or its refusal as data with its
    code (the CLI reads the last JSON line); the catalog's ids through either backend."""
    from pydantic import SecretStr

    from stack.maintenance import documents, move_state

    pipeline, _ = source
    on_postgres = pipeline.settings.model_copy(update={"database_url": SecretStr(postgres_url)})
    assert move_state(pipeline.settings.model_copy(update={"database_url": None}))["code"] == "no_database"
    moved = move_state(on_postgres)
    assert moved["moved"] and moved["verified"] and moved["keys"] == 1
    assert documents(on_postgres) == documents(pipeline.settings) != {}
    refused = move_state(on_postgres)
    assert refused == {"moved": False, "code": "target_not_empty", "error": refused["error"],
                       "hint": refused["hint"]} and "holds ragctl state already" in refused["error"]
    assert move_state(on_postgres, replace=True)["moved"]
    assert documents(on_postgres) == documents(pipeline.settings)
