"""The whole pipeline with its state in PostgreSQL (issue #12): the sample documents ingested,
searched and asked about give the same hits and answers as with SQLite, and nothing of the
catalog, the postings, the extracted text or the stored bytes is written under the project."""

from __future__ import annotations

import pytest

from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow

SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".hwpx", ".pdf", ".docx", ".md"})
QUESTIONS = ["연차 휴가는 며칠인가요?", "What time do nightly backups run?", "휴가 신청", "expense approval limit",
             "배포 절차", "backup retention"]


def test_pipeline_on_postgres_gives_the_same_hits_as_on_sqlite(make_pipeline, tmp_path, postgres_url):  # noqa: F811
    lite = make_pipeline(tmp_path / "lite")
    pg = make_pipeline(tmp_path / "pg", database_url=postgres_url)
    for pipeline in (lite, pg):
        results = [pipeline.ingest_file(path) for path in SAMPLE_FILES]
        assert [r.status for r in results] == ["done"] * len(SAMPLE_FILES), [r.error for r in results]

    def summary(pipeline):
        return sorted((r.id, r.file_name, r.status, r.chunks, r.format) for r in pipeline.documents())

    assert summary(pg) == summary(lite)
    for question in QUESTIONS:
        ours = [(h.chunk_id, round(h.score, 6)) for h in lite.search(question)]
        theirs = [(h.chunk_id, round(h.score, 6)) for h in pg.search(question)]
        assert ours == theirs, question
        assert ours, question
        a, b = lite.ask(question), pg.ask(question)
        assert (a.answer, [s.chunk_id for s in a.sources]) == (b.answer, [s.chunk_id for s in b.sources]), question
    assert "15일" in pg.ask("연차 휴가는 며칠인가요?").answer

    # The state is in the database, not under the project.
    root = pg.settings.project_root
    assert not (root / "data" / "catalog.sqlite").exists() and not (root / "data" / "lexical").exists()
    assert not pg.settings.extracted_path.exists() or not any(pg.settings.extracted_path.iterdir())
    hwpx = next(r for r in pg.documents() if r.file_name.endswith(".hwpx"))
    assert "15일" in pg.texts.text(hwpx.id)
    assert pg.texts.text(hwpx.id) == lite.texts.text(hwpx.id)
    # The uploaded bytes too: what a worker on another host reads (and reindex re-ingests).
    assert hwpx.stored_path.startswith("postgresql-blob:") and pg.blobs.exists(hwpx.stored_path)
    assert not (root / "data" / "uploads").exists()
    assert pg.blobs.local(hwpx.stored_path, tmp_path / "scratch").read_bytes() == next(p for p in SAMPLE_FILES if p.suffix == ".hwpx").read_bytes()

    # Re-ingesting the same bytes is recognised through the database's catalog; delete removes it all.
    assert pg.ingest_file(SAMPLE_FILES[0]).status == "skipped"
    pg.delete_document(hwpx.id[:12])
    assert pg.texts.text(hwpx.id) is None and pg.catalog.get(hwpx.collection, hwpx.id) is None
    assert not pg.blobs.exists(hwpx.stored_path)
    assert hwpx.id not in pg.lexical(hwpx.collection).document_ids()
    assert all(h.document_id != hwpx.id for h in pg.search("연차 휴가는 며칠인가요?"))
