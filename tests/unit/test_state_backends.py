"""One contract, two backends (issue #12): the catalog, the BM25 postings and the extracted text
behave the same in SQLite (files under the project) and in PostgreSQL (``RAG_DATABASE_URL``).

Every test here runs against both, each opened through the one factory
(stack.pipeline.backends); the Postgres runs use a real private cluster (tests/support/postgres_server.py)
and are slow (they start it once per session).  A last group compares the two side by side."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stack.names import IN_PROGRESS, DocumentStatus
from stack.pipeline.backends import open_catalog, open_lexical, open_texts
from stack.pipeline.catalog import DocumentRecord
from stack.settings import load_settings
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.support.texts import COMPOUNDS, CORPUS

T1 = "abcd1111-0000-4000-8000-000000000001"
T2 = "abcd2222-0000-4000-8000-000000000002"
T3 = "ef01_333-0000-4000-8000-000000000003"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def settings(request, tmp_path):
    overrides = {}
    if request.param == "postgres":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    return load_settings(tmp_path / "project", overrides)


def record(doc: str, task: str | None, status=DocumentStatus.QUEUED, collection="default", **more) -> DocumentRecord:
    return DocumentRecord(id=doc, collection=collection, file_name=f"{doc}.md", size=1, status=status, task_id=task,
                          **more)


def test_the_factory_picks_the_backend(settings):
    catalog, texts = open_catalog(settings), open_texts(settings)
    kind = "Postgres" if settings.database_url else ""
    assert type(catalog).__name__ == f"{kind}Catalog" if kind else type(catalog).__name__ == "Catalog"
    assert type(texts).__name__ == ("PostgresTexts" if kind else "FolderTexts")
    # Nothing of the catalog lands on disk with a database URL.
    assert (settings.data_path / "catalog.sqlite").exists() is not bool(kind)


# -- the catalog ------------------------------------------------------------------------------


def test_records_round_trip_every_field(settings):
    catalog = open_catalog(settings)
    written = record("d1", None, DocumentStatus.EMBEDDING, stored_path="/x/d1.md", format="markdown", parser="md",
                     chunks=3, error_code=None, embed_model="m", timings={"parsing": 0.25}, progress=0.5,
                     worker="w1", heartbeat_at=123.5, attempts=2)
    written.note("parsing")
    catalog.upsert(written)
    got = catalog.get("default", "d1")
    assert got.to_dict() == written.to_dict()
    assert got.created_at > 0 and got.updated_at >= got.created_at
    assert catalog.get("default", "nope") is None and catalog.get("other", "d1") is None
    # A replace keeps one row, with the new values.
    got.status, got.chunks, got.log = DocumentStatus.DONE, 7, ["a", "한글 [v2]"]
    catalog.upsert(got)
    again = catalog.get("default", "d1")
    assert (again.status, again.chunks, again.log, again.created_at) == ("done", 7, ["a", "한글 [v2]"], got.created_at)
    assert len(catalog.list()) == 1


def test_find_list_and_delete(settings):
    catalog = open_catalog(settings)
    for doc, collection, status in (("aa11", "default", "done"), ("aa22", "default", "queued"),
                                    ("bb33", "default", "done"), ("aa44", "other", "done")):
        catalog.upsert(record(doc, None, status, collection=collection))
    assert [r.id for r in catalog.find("default", "AA")] == ["aa11", "aa22"]
    assert catalog.find("default", "a_") == [] and catalog.find("default", "%") == []
    assert [r.id for r in catalog.list()] == ["aa11", "aa22", "bb33", "aa44"]
    assert [r.id for r in catalog.list("default")] == ["aa11", "aa22", "bb33"]
    assert [r.id for r in catalog.list(status="done")] == ["aa11", "bb33", "aa44"]
    assert [r.id for r in catalog.list("default", "queued")] == ["aa22"]
    catalog.delete("default", "aa11")
    catalog.delete("default", "missing")  # nothing to delete: nothing happens
    assert [r.id for r in catalog.list("default")] == ["aa22", "bb33"]


def test_history_fences_writes_of_a_superseded_or_deleted_task(settings):
    catalog = open_catalog(settings)
    first = catalog.upsert(record("d1", T1, DocumentStatus.EMBEDDING))
    assert not first.fenced
    catalog.upsert(record("d1", T2), reason="re-queued: w1 died")  # a new id is current
    late = catalog.upsert(record("d1", T1, DocumentStatus.DONE))  # the old worker comes back
    assert late.fenced and catalog.get("default", "d1").task_id == T2
    assert not catalog.upsert(record("d1", T2, DocumentStatus.PARSING)).fenced  # the current task writes
    assert catalog.task_ids("default", "d1") == [T1, T2]
    assert catalog.by_task(T1).task_id == T2 and catalog.by_task(T2).status == DocumentStatus.PARSING
    assert catalog.upsert(record("d9", T1)).fenced  # another document's task id
    catalog.touch("default", "d1", "old-worker", task_id=T1)  # a superseded worker does not speak for it
    assert catalog.get("default", "d1").worker is None and catalog.get("default", "d1").heartbeat_at is None
    catalog.touch("default", "d1", "w2", task_id=T2)
    assert catalog.get("default", "d1").worker == "w2" and catalog.get("default", "d1").heartbeat_at > 0
    catalog.touch("default", "d1")  # no worker, no task: the heartbeat only
    assert catalog.get("default", "d1").worker == "w2"
    catalog.delete("default", "d1")
    assert catalog.upsert(record("d1", T2, DocumentStatus.DONE)).fenced  # deleted: never written back
    assert catalog.get("default", "d1") is None and catalog.by_task(T1) is None
    assert catalog.task_ids("default", "d1") == [T1, T2]  # the history stays
    assert not catalog.upsert(record("d2", None)).fenced  # embedded records carry no task: unfenced
    assert catalog.by_task("unknown") is None


def test_task_prefixes_and_recent_tasks(settings):
    catalog = open_catalog(settings)
    catalog.upsert(record("d1", T1))
    catalog.upsert(record("d2", T2, collection="other"))
    catalog.upsert(record("d1", T3), reason="retry")
    assert [e.task_id for e in catalog.find_tasks("ABCD")] == [T2, T1]
    assert [e.task_id for e in catalog.find_tasks("abcd1")] == [T1]
    assert [e.task_id for e in catalog.find_tasks("ef01_")] == [T3]  # "_" is a character, not a wildcard
    assert catalog.find_tasks("abc") == [] and catalog.find_tasks("ab%") == [] and catalog.find_tasks("abcd_") == []
    recent = catalog.recent_tasks(10)
    assert [(e.task_id, e.reason, e.current, e.record.id) for e in recent] == [
        (T3, "retry", True, "d1"), (T2, "registered", True, "d2"), (T1, "registered", False, "d1")]
    assert [e.task_id for e in catalog.recent_tasks(1)] == [T3]
    assert [e.task_id for e in catalog.recent_tasks(10, collection="other")] == [T2]
    assert all(e.created_at > 0 for e in recent)


def test_stale_documents_are_those_in_progress_not_heard_from(settings):
    catalog = open_catalog(settings)
    for n, status in enumerate([*IN_PROGRESS, DocumentStatus.DONE, DocumentStatus.FAILED]):
        catalog.upsert(record(f"s{n}", None, status, heartbeat_at=100.0 if n % 2 else None))
    import time

    now = time.time()
    in_progress = {f"s{n}" for n in range(len(IN_PROGRESS))}
    assert {r.id for r in catalog.stale(now + 1)} == in_progress
    # A heartbeat is what counts when there is one; the last write otherwise.
    assert {r.id for r in catalog.stale(101.0)} == {f"s{n}" for n in range(len(IN_PROGRESS)) if n % 2}
    assert catalog.stale(50.0) == []


def test_concurrent_writers_of_one_document_keep_the_fencing_rule(settings):
    """Threads (as in the threaded worker and uvicorn's threadpool), each re-queueing the document
    under its own task id and then writing with it: whatever the interleaving, the record ends
    owned by the newest task id of its history, and every refused write was from a superseded one."""
    catalog = open_catalog(settings)
    catalog.upsert(record("c1", None))
    errors: list[BaseException] = []
    tasks = [f"task-{n:02d}-0000-4000-8000-000000000000" for n in range(12)]

    def work(task: str) -> None:
        try:
            catalog.upsert(record("c1", task), reason="retry")
            catalog.touch("default", "c1", task[:7], task_id=task)
            catalog.upsert(record("c1", task, DocumentStatus.DONE))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    history = catalog.task_ids("default", "c1")
    assert sorted(history) == sorted(tasks)
    assert catalog.get("default", "c1").task_id == history[-1]
    assert all(e.current == (e.task_id == history[-1]) for e in catalog.recent_tasks(100))


# -- the postings -----------------------------------------------------------------------------


def _index(settings, collection="default", **kwargs):
    index = open_lexical(settings, collection, **kwargs)
    for doc in ("a", "b", "c"):
        index.add(doc, [(cid, text) for cid, text in CORPUS.items() if cid.startswith(doc + ":")])
    index.add("k", list(COMPOUNDS.items()))
    return index


def test_postings_add_search_delete_and_stats(settings):
    index = _index(settings)
    assert index.count() == len(CORPUS) + len(COMPOUNDS)
    assert index.document_ids() == {"a", "b", "c", "k"}
    assert index.search("연차 휴가는 며칠 주어지나요?")[0][0] == "a:0"
    assert index.search("when do backups run")[0][0] == "c:0"
    holding = {cid for cid, text in COMPOUNDS.items() if "봉화댐" in text}
    assert {cid for cid, _ in index.search("봉화댐")[: len(holding)]} == holding
    index.add("a", [("a:0", "연차 휴가 규정 개정 안내")])  # a replace: one chunk now, not three
    assert index.count() == len(CORPUS) + len(COMPOUNDS) - 1
    index.delete("a")
    index.delete("never-there")
    assert index.document_ids() == {"b", "c", "k"}
    assert not any(cid.startswith("a:") for cid, _ in index.search("연차 휴가", n=100))
    assert index.search("") == [] and index.search("?!") == []
    assert open_lexical(settings, "empty").search("연차") == [] and open_lexical(settings, "empty").count() == 0


def test_collections_are_separate(settings):
    first = _index(settings, "first")
    second = open_lexical(settings, "second")
    second.add("z", [("z:0", "연차 휴가 신청서 양식")])
    assert [cid for cid, _ in second.search("연차 휴가", n=100)] == ["z:0"]
    assert "z:0" not in dict(first.search("연차 휴가", n=100))
    assert second.count() == 1 and first.count() == len(CORPUS) + len(COMPOUNDS)


def test_an_index_of_another_analyzer_is_rebuilt(settings):
    old = _index(settings, version=1)
    assert old.search("봉화댐") == []  # analyzer 1: the miss of issue #9
    new = open_lexical(settings, "default")  # both backends keep the chunk texts: rebuilt from them
    assert {cid for cid, _ in new.search("봉화댐")[:2]} == {"k:0", "k:1"}
    assert new.count() == len(CORPUS) + len(COMPOUNDS)


# -- the extracted text -----------------------------------------------------------------------


def test_extracted_text_save_read_replace_delete(settings):
    texts = open_texts(settings)
    where = texts.save("d1", "규정 [v2].hwpx", "첫 줄\n둘째 줄", {"document_id": "d1", "blocks": [{"text": "첫 줄"}]})
    assert where and texts.text("d1") == "첫 줄\n둘째 줄"
    assert texts.data("d1")["blocks"] == [{"text": "첫 줄"}]
    texts.save("d1", "규정.hwpx", "새 본문", {"document_id": "d1"})
    assert texts.text("d1") == "새 본문" and texts.data("d1") == {"document_id": "d1"}
    texts.delete("d1")
    texts.delete("d1")
    assert texts.text("d1") is None and texts.data("d1") is None
    assert (settings.extracted_path / "d1.txt").exists() is False


# -- side by side, and the server's own rules --------------------------------------------------


@pytest.mark.slow
def test_postgres_ranks_exactly_as_sqlite(tmp_path, postgres_url):  # noqa: F811
    lite = _index(load_settings(tmp_path / "lite"))
    pg = _index(load_settings(tmp_path / "pg", {"database_url": postgres_url}))
    queries = ["연차 휴가는 며칠 주어지나요?", "서버 백업 보관", "when do backups run", "봉화댐", "법인등기부",
               "상주시 축제", "restore procedure tested", "수사국 발표 자료"]
    for query in queries:
        ours, theirs = lite.search(query, n=100), pg.search(query, n=100)
        assert [cid for cid, _ in ours] == [cid for cid, _ in theirs], query
        assert [round(s, 9) for _, s in ours] == [round(s, 9) for _, s in theirs], query
    assert lite.count() == pg.count() and lite.document_ids() == pg.document_ids()


@pytest.mark.slow
def test_a_client_without_the_password_is_refused(postgres_server):  # noqa: F811
    """Issue #14: the database is reachable only with its password (scram-sha-256), never trusted."""
    import psycopg

    from stack.pipeline.errors import StoreUnavailable
    from stack.pipeline.postgres import Database

    for url in (postgres_server.url(password=""), postgres_server.url(password="wrong")):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=10).close()
        with pytest.raises(StoreUnavailable) as caught, Database(url).transaction():
            pass
        assert "wrong" not in caught.value.message and postgres_server.password not in caught.value.message
    with psycopg.connect(postgres_server.url(), connect_timeout=10) as ok:
        method = ok.execute("SELECT setting FROM pg_settings WHERE name = 'password_encryption'").fetchone()[0]
    assert method == "scram-sha-256"


# -- the uploaded bytes -----------------------------------------------------------------------


def test_blobs_put_read_and_delete(settings, tmp_path):
    from stack.pipeline.backends import open_blobs

    blobs = open_blobs(settings)
    source = tmp_path / "upload.bin"
    source.write_bytes(b"\x00PK\x03\x04" + "휴가 규정".encode() * 1000)
    ref = blobs.put("d1", "휴가 [v2].hwpx", source)
    assert blobs.exists(ref) and not blobs.exists("") and not blobs.exists(ref.replace("d1", "d2"))
    assert blobs.put("d1", "휴가 [v2].hwpx", source) == ref  # the same bytes again: one copy
    local = blobs.local(ref, tmp_path / "scratch")
    assert local.read_bytes() == source.read_bytes() and local.name == "휴가 [v2].hwpx"
    if settings.database_url:  # nothing of the upload under the project
        assert ref.startswith("postgresql-blob:d1/") and not (settings.data_path / "uploads").exists()
    else:  # the folder's own file, no copy
        assert local == Path(ref) == settings.data_path / "uploads" / "d1" / "휴가 [v2].hwpx"
    blobs.delete("d1")
    blobs.delete("d1")
    assert not blobs.exists(ref)
    with pytest.raises(FileNotFoundError):
        blobs.local(ref, tmp_path / "scratch3")
    # A display name too long for a file system (92 Hangul: 279 bytes) is kept under its safe form.
    from stack.pipeline.storage import safe_file_name

    long_name = "가" * 92 + ".hwpx"
    ref = blobs.put("d4", long_name, source)
    local = blobs.local(ref, tmp_path / "scratch4")
    assert local.name == safe_file_name(long_name) and local.read_bytes() == source.read_bytes()


def test_collections_in_the_catalog_and_a_dropped_lexical_index(settings):
    """Issue #26: the catalog's record of collections and the steps of a deletion, on either backend."""
    catalog = open_catalog(settings)
    assert catalog.register_collection("hr", "HR") and not catalog.register_collection("hr", "again")
    catalog.upsert(record("d1", None, DocumentStatus.DONE, collection="hr", chunks=2))
    catalog.upsert(record("d2", None, DocumentStatus.DONE, collection="hr", chunks=3))
    catalog.upsert(record("d2", None, DocumentStatus.DONE, collection="finance", chunks=3))
    assert catalog.collection_rows()["hr"]["description"] == "HR" and catalog.collection_state("hr") == "ready"
    stats = catalog.collection_stats()
    assert (stats["hr"]["documents"], stats["hr"]["chunks"], stats["finance"]["documents"]) == (2, 5, 1)
    assert sorted(catalog.holders_of("d2")) == ["finance", "hr"]
    catalog.rename("hr", "d1", "folder/d1.md")
    assert catalog.get("hr", "d1").file_name == "folder/d1.md"
    # Issue #28: blue/green reindex's swap, one transaction with the documents' chunks and model.
    assert catalog.generation("hr") == 0 and catalog.swap_generation("hr", 1, [("d1", 4, "m2")]) == 0
    assert catalog.generation("hr") == 1 and (catalog.get("hr", "d1").chunks, catalog.get("hr", "d1").embed_model) == (4, "m2")
    assert catalog.swap_generation("finance", 1, []) == 0 and catalog.generation("finance") == 1  # no row before
    lexical = open_lexical(settings, "hr")
    lexical.add("d1", [("d1:0", "연차 휴가는 15일이다")])
    assert lexical.document_ids() == {"d1"}
    catalog.mark_deleting("hr")
    assert catalog.collection_state("hr") == "deleting"
    lexical.drop()
    assert open_lexical(settings, "hr").document_ids() == set()
    assert catalog.drop_collection("hr") == 2
    assert catalog.collection_state("hr") == "deleted" and catalog.list("hr") == []
    assert catalog.holders_of("d2") == ["finance"]
    assert catalog.register_collection("hr") and catalog.collection_state("hr") == "ready"  # made again
    assert catalog.generation("hr") == 0
