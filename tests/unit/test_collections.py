"""Collections as things to create, list, show and delete (issue #26, part 1): the library
(stack/pipeline/collection_admin.py) over a real Chroma, lexical index, catalog and upload folder,
with vectors written directly (4 dimensions: no embedding model loads), and the CLI in embedded mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.collection_admin import CollectionBusy, CollectionExists
from stack.pipeline.errors import NotFound, PipelineError
from stack.pipeline.service import Pipeline
from stack.pipeline.store import InvalidCollectionName, VectorStore, chroma_name, recorded_model
from stack.settings import load_settings
from tests.support.cli import as_json, make_project, output, ragctl


def filed(pipeline: Pipeline, collection: str, document_id: str, text: str, tmp_path: Path) -> DocumentRecord:
    """A done document as an ingest leaves it: vectors, lexical entries, stored upload, text, catalog row."""
    source = tmp_path / f"{document_id[:6]}.md"
    source.write_text(text, encoding="utf-8")
    store = VectorStore(pipeline.chroma, collection, model_name=pipeline.settings.embed_model, dimension=4)
    store.upsert([f"{document_id}:0"], [[1.0, 0.0, 0.0, 0.0]], [text], [{"doc_id": document_id, "n": 0}])
    pipeline.lexical(collection).add(document_id, [(f"{document_id}:0", text)])
    stored = pipeline.blobs.put(document_id, source.name, source)
    pipeline.texts.save(document_id, source.name, text, {"blocks": []})
    record = DocumentRecord(id=document_id, collection=collection, file_name=source.name, size=len(text.encode()),
                            status="done", chunks=1, stored_path=stored, embed_model=pipeline.settings.embed_model)
    pipeline.catalog.upsert(record)
    pipeline.catalog.register_collection(collection)
    return record


@pytest.fixture
def lib(tmp_path) -> Pipeline:
    return Pipeline(load_settings(tmp_path / "project"))


def test_create_list_show_and_names(lib, tmp_path):
    assert [c.name for c in lib.collections()] == ["default"]  # the default always exists
    made = lib.create_collection("hr", "HR [bold]rules[/]")
    assert (made.name, made.description, made.documents, made.state) == ("hr", "HR [bold]rules[/]", 0, "ready")
    with pytest.raises(CollectionExists):
        lib.create_collection("hr")
    for bad in ("", "a b", "-x", "x-", "a..b", "1.2.3.4", "rc--hr", "한글", "a/b", "x" * 509):
        with pytest.raises(InvalidCollectionName):
            lib.create_collection(bad)
    assert [c.name for c in lib.collections()] == ["default", "hr"]  # nothing made by the refusals
    filed(lib, "hr", "a" * 64, "연차 휴가는 15일이다", tmp_path)
    shown = lib.collection_info("hr")
    assert (shown.documents, shown.chunks, shown.embed_model, shown.size) == (1, 1, lib.settings.embed_model, 28)
    assert shown.updated_at is not None
    # A 2-character name lives in Chroma under a prefix Chroma accepts.
    assert chroma_name("hr") == "rc--hr" and recorded_model(lib.chroma, "hr") is not None
    with pytest.raises(NotFound):
        lib.collection_info("nothing-here")


def test_delete_removes_vectors_lexical_uploads_texts_and_rows_but_not_what_another_holds(lib, tmp_path):
    hr = filed(lib, "hr", "a" * 64, "연차 휴가는 15일이다", tmp_path)
    shared = filed(lib, "hr", "b" * 64, "공통 규정", tmp_path)
    filed(lib, "finance", "b" * 64, "공통 규정", tmp_path)  # the same bytes in another collection
    lexical_file = lib.settings.data_path / "lexical" / "hr.sqlite"
    assert lexical_file.is_file() and Path(hr.stored_path).is_file()

    gone = lib.delete_collection("hr")
    assert (gone.name, gone.documents, gone.chunks, gone.state) == ("hr", 2, 2, "deleted")
    assert recorded_model(lib.chroma, "hr") is None
    assert not lexical_file.exists()
    assert not Path(hr.stored_path).exists() and lib.texts.where(hr.id) is None
    assert Path(shared.stored_path).is_file() and lib.texts.where(shared.id) is not None  # finance keeps it
    assert lib.catalog.list("hr") == [] and lib.catalog.collection_state("hr") == "deleted"
    assert [c.name for c in lib.collections()] == ["default", "finance"]
    assert lib.collection_info("finance").documents == 1 and recorded_model(lib.chroma, "finance") is not None
    with pytest.raises(NotFound):
        lib.delete_collection("hr")


def test_a_deletion_cut_short_is_listed_takes_nothing_and_is_finished_by_running_it_again(lib, tmp_path,
                                                                                           monkeypatch):
    record = filed(lib, "hr", "c" * 64, "인사 규정", tmp_path)
    from stack.pipeline.lexical import LexicalIndex

    def crash(self):
        raise OSError("killed here")

    monkeypatch.setattr(LexicalIndex, "drop", crash)
    with pytest.raises(OSError):
        lib.delete_collection("hr")
    assert [(c.name, c.state) for c in lib.collections(models=False)] == [("default", "ready"), ("hr", "deleting")]
    assert recorded_model(lib.chroma, "hr") is None  # the vectors went before the crash
    note = tmp_path / "new.md"
    note.write_text("# new\n\ntext\n", encoding="utf-8")
    refused = lib.ingest_file(note, collection="hr")  # refused before any model loads
    assert refused.status == "failed" and refused.error["code"] == "collection_deleting"
    assert "ragctl collections delete hr --yes" in refused.error["hint"]
    with pytest.raises(CollectionBusy):
        lib.create_collection("hr")
    monkeypatch.undo()
    lib.delete_collection("hr")
    assert [c.name for c in lib.collections()] == ["default"]
    assert not Path(record.stored_path).exists() and lib.catalog.list("hr") == []


def test_the_cli_in_embedded_mode(tmp_path):
    project = make_project(tmp_path / "p")
    made = ragctl(project, "collections", "create", "team-docs", "--description", "[red]x[/] docs", "--json")
    assert made.exit_code == 0 and as_json(made)["name"] == "team-docs"
    listed = ragctl(project, "collections", "list")
    assert listed.exit_code == 0 and "[red]x[/] docs" in output(listed)  # user text is data, not markup
    assert [c["name"] for c in as_json(ragctl(project, "collections", "list", "--json"))] == ["default", "team-docs"]
    bad = ragctl(project, "collections", "create", "a b")
    assert bad.exit_code == 1 and "not a valid collection name" in output(bad)
    assert "Traceback" not in output(bad)
    again = ragctl(project, "collections", "create", "team-docs")
    assert again.exit_code == 1 and "exists already" in output(again) and "collections show team-docs" in output(again)
    asked = ragctl(project, "collections", "delete", "team-docs")  # no terminal: needs --yes
    assert asked.exit_code == 6 and "--yes" in output(asked)
    deleted = ragctl(project, "collections", "delete", "team-docs", "--yes", "--json")
    assert deleted.exit_code == 0 and as_json(deleted)["state"] == "deleted"
    missing = ragctl(project, "collections", "show", "team-docs")
    assert missing.exit_code == 1 and "No collection named 'team-docs'" in output(missing)


def test_pipeline_error_names_the_next_command():
    from stack.pipeline.store import validate_collection_name

    with pytest.raises(PipelineError) as caught:
        validate_collection_name("a b")
    assert caught.value.hint and caught.value.hint.startswith("ragctl ")


def test_the_health_canary_is_not_listed_while_empty(lib):
    from stack.names import CANARY_COLLECTION

    lib.catalog.register_collection(CANARY_COLLECTION)  # health --deep's ingest records it
    assert [c.name for c in lib.collections()] == ["default"]
    assert lib.collection_info(CANARY_COLLECTION).documents == 0  # asked by name, it answers


def test_a_new_collection_starts_empty_even_where_an_interrupted_ingest_left_vectors(lib, tmp_path):
    """An ingest past its last cancel check when its collection was deleted may still write vectors and
    postings under the name; the collection made again (or first ingested into) does not show them."""
    filed(lib, "hr", "d" * 64, "오래된 문서", tmp_path)
    lib.delete_collection("hr")
    store = VectorStore(lib.chroma, "hr", model_name=lib.settings.embed_model, dimension=4)  # the late writer
    store.upsert(["e" * 64 + ":0"], [[0.0, 1.0, 0.0, 0.0]], ["늦게 쓴 조각"], [{"doc_id": "e" * 64, "n": 0}])
    lib.lexical("hr").add("e" * 64, [("e" * 64 + ":0", "늦게 쓴 조각")])
    lib.create_collection("hr")
    assert recorded_model(lib.chroma, "hr") is None and lib.lexical("hr").document_ids() == set()
    # A collection never recorded, holding documents (a project from before collections were): kept.
    filed(lib, "legacy", "f" * 64, "예전 문서", tmp_path)
    with lib.catalog._connect() as db:
        db.execute("DELETE FROM collections WHERE name = 'legacy'")  # as a catalog from before issue #26
    from stack.pipeline.collection_admin import check_writable

    check_writable(lib, "legacy")
    assert lib.catalog.collection_state("legacy") == "ready"
    assert recorded_model(lib.chroma, "legacy") is not None and lib.collection_info("legacy").documents == 1
