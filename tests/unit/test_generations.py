"""Blue/green reindex's bookkeeping (issue #28 part 3), without a model: index names, the catalog's
generation and its one-transaction swap, and which question set gates a command ([eval] file,
--eval, --no-eval).  The build, the gate and the swap with the real pipeline: tests/integration/test_gate.py;
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
