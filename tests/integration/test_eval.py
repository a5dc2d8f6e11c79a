"""``ragctl eval`` end to end in embedded mode, with the real pipeline and embedding model over the
project's samples: counts computed by hand, a malformed row reported by line while the rest runs,
stored runs, a question that flips when the document that answered it is deleted, the HTML page,
and ``eval generate`` writing questions that cite the real files."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pytest

from tests.support.cli import as_json, make_project, output, ragctl
from tests.support.suite import SAMPLES, skip_or_fail

HAND_SET = [
    {"question": "연차 휴가는 며칠인가요?", "answer": "15일", "file": "휴가_규정.hwpx"},  # right
    {"question": "How long are backups kept?", "answer": ["30 days", "thirty days"], "file": "backup-procedure.pdf"},
    {"question": "What is the hotel limit per night?", "answer": "$180", "file": "expense-policy.docx"},  # right
    {"question": "연차 휴가는 며칠인가요?", "answer": "99일"},  # a wrong expectation: the answer lacks it
    {"question": "How long are backups kept?", "answer": "30 days", "file": "deployment-notes.md"},  # wrong file
]


def test_eval_runs_scores_stores_and_compares(tmp_path):
    project = tmp_path / "project"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
    questions = tmp_path / "questions.jsonl"
    _write_hand_set(questions)

    first = as_json(ragctl(project, "eval", str(questions), "--json", "--html", str(tmp_path / "report.html")))
    summary = first["summary"]
    assert first["malformed_rows"] == [{"line": 4, "message": "no 'answer': give one or more acceptable answer texts"}]
    assert (summary["questions"], summary["passed"], summary["answer_has_gold"], summary["with_file"],
            summary["source_has_gold"]) == (5, 3, 0.8, 4, 0.75)
    by_line = {r["line"]: r for r in first["results"]}
    assert by_line[5]["answer_has_gold"] is False and by_line[6]["source_has_gold"] is False
    assert by_line[1]["file_rank"] == 1 and summary["latency_ms_p95"] >= summary["latency_ms_p50"] > 0
    fingerprint = first["fingerprint"]
    assert (fingerprint["documents"], fingerprint["embedding"]["backend"], fingerprint["llm"]) == (4, "e5-torch", None)
    assert fingerprint["chunking"]["chunk_tokens"] == 200 and fingerprint["chunks"] > 4

    page = _Links()
    page.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert page.urls == [] and "연차 휴가는 며칠인가요?" in page.text and "15일" in page.text

    # The document that answered the first question goes; the same set now fails it.
    hwpx = next(d for d in as_json(ragctl(project, "documents", "list", "--json")) if d["file_name"].endswith(".hwpx"))
    assert ragctl(project, "documents", "delete", hwpx["id"][:12], "--yes").exit_code == 0
    second = as_json(ragctl(project, "eval", str(questions), "--json"))
    assert second["fingerprint"]["documents"] == 3

    listed = as_json(ragctl(project, "eval", "list", "--json"))
    assert [r["id"] for r in listed] == [first["id"], second["id"]]
    diff = as_json(ragctl(project, "eval", "compare", first["id"], "latest", "--json"))
    flipped = {(r["line"], r["metric"]) for r in diff["right_to_wrong"]}
    assert (1, "answer_has_gold") in flipped and (1, "source_has_gold") in flipped
    assert diff["metrics"]["answer_has_gold"]["delta"] < 0 and diff["fingerprint_changes"]["documents"] == {"a": 4, "b": 3}
    human = output(ragctl(project, "eval", "compare"))  # previous → latest
    assert "Right → wrong" in human and "연차 휴가는 며칠인가요?" in human
    shown = output(ragctl(project, "eval", "show", second["id"][:15]))
    assert "Failed" in shown and "line 4: no 'answer'" in shown
    missing = ragctl(project, "eval", "show", "nope", "--json")
    assert missing.exit_code == 2 and "ragctl eval list" in json.loads(missing.stdout)["error"]["hint"]


def _write_hand_set(path) -> None:
    lines = [json.dumps(row, ensure_ascii=False) for row in HAND_SET]
    lines.insert(3, '{"question": "a row with no answer"}')  # line 4
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.timeout(600)
def test_eval_through_a_running_stack_gives_the_same_counts(tmp_path):
    """The same set through the local runtime's API (four questions at a time): what ask answers there;
    then ``config set --eval`` on that stack, passed (an index setting) and refused (a query-time one)."""
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server not installed (apt-get install redis-server)", "local runtime")
    project = make_project(tmp_path / "stack")
    try:
        assert ragctl(project, "up", "--runtime", "local", "--workers", "1", "--wait", "120").exit_code == 0
        assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
        questions = tmp_path / "questions.jsonl"
        _write_hand_set(questions)
        run = as_json(ragctl(project, "eval", str(questions), "--json"))
        summary = run["summary"]
        assert (summary["questions"], summary["passed"], summary["answer_has_gold"], summary["source_has_gold"],
                summary["malformed_rows"]) == (5, 3, 0.8, 0.75, 1)
        assert run["fingerprint"]["mode"] == "stack" and run["fingerprint"]["embedding"]["backend"] == "e5-torch"
        assert run["fingerprint"]["documents"] == 4
        generated = as_json(ragctl(project, "eval", "generate", "-n", "4", "--json"))
        assert {q["file"] for q in generated["questions"]} == {p.name for p in SAMPLES.iterdir()}

        # config set --eval on the running stack (issue #28).  A setting that shapes the index (here the
        # same chunk size, named): the restarted workers build a new index beside the old, the set is asked
        # of it, it holds, it is swapped in and the API restarted.
        config = project / "ragctl.toml"
        equal = as_json(ragctl(project, "config", "set", "chunk_tokens", "200", "--eval", str(questions), "--json"))
        assert equal["applied"] and equal["gate"]["passed"] and equal["restarted"] == ["worker", "api"], equal
        assert equal["reindex"]["collections"] == ["default"] and len(equal["reindex"]["results"]) == 4
        state = as_json(ragctl(project, "collections", "show", "default", "--json"))
        assert "chunk_tokens = 200" in config.read_text(encoding="utf-8") and state["chunks"] > 0
        # A query-time setting that loses every answer (an empty default collection): refused, ragctl.toml
        # put back and the services restarted on it, so the stack answers as before.
        written = config.read_bytes()
        refused = ragctl(project, "config", "set", "collection", "empty", "--eval", str(questions), "--json")
        assert refused.exit_code == 1, output(refused)
        verdict = json.loads(refused.stdout)
        assert not verdict["applied"] and verdict["gate"]["drops"]["answer_has_gold"]["after"] == 0.0
        assert verdict["restarted"] == ["api", "worker"] and config.read_bytes() == written
        answer = as_json(ragctl(project, "ask", "연차 휴가는 며칠인가요?", "--json"))
        assert "15일" in answer["answer"] and answer["sources"][0]["file"] == "휴가_규정.hwpx"
    finally:
        from ragctl.runtime.local import LocalRuntime

        LocalRuntime(project).down()


def test_generate_writes_a_reviewable_set_from_real_files(tmp_path):
    project = tmp_path / "project"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
    target = tmp_path / "generated.jsonl"
    result = ragctl(project, "eval", "generate", "-n", "12", "-o", str(target))
    assert result.exit_code == 0 and "reviewed" in result.stderr
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    samples = {p.name for p in SAMPLES.iterdir()}
    assert len(rows) == 12 and {r["file"] for r in rows} == samples  # spread over every file
    for row in rows:
        assert row["answer"] in row["context"] and row["answer"] not in row["question"]
    run = as_json(ragctl(project, "eval", str(target), "--json"))
    assert run["summary"]["malformed_rows"] == 0 and run["summary"]["answer_has_gold"] >= 0.5
    assert run["summary"]["source_has_gold"] >= 0.75


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls, self.text = [], ""

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href", "action") and value]

    def handle_data(self, data):
        self.text += data


def test_config_set_with_a_gate_keeps_the_old_setting_when_answers_get_worse(tmp_path):
    project = tmp_path / "project"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    assert ragctl(project, "ingest", str(SAMPLES)).exit_code == 0
    questions = tmp_path / "gate.jsonl"
    questions.write_text(json.dumps({"question": "연차 휴가: 며칠?", "answer": "15일", "file": "휴가_규정.hwpx"},
                                    ensure_ascii=False) + "\n" + json.dumps(HAND_SET[1]) + "\n", encoding="utf-8")
    config = project / "ragctl.toml"
    config.write_text(config.read_text(encoding="utf-8") + "# ask Mina before changing the settings\n",
                      encoding="utf-8")
    written = config.read_bytes()

    # The project pointed at a collection that holds nothing: every answer is lost.
    refused = ragctl(project, "config", "set", "collection", "empty", "--eval", str(questions), "--json")
    assert refused.exit_code == 1, output(refused)
    verdict = json.loads(refused.stdout)
    assert verdict["applied"] is False and verdict["gate"]["drops"]["answer_has_gold"] == {
        "before": 1.0, "after": 0.0, "drop": 1.0}
    assert {r["question"] for r in verdict["gate"]["right_to_wrong"]} == {"연차 휴가: 며칠?", HAND_SET[1]["question"]}
    assert config.read_bytes() == written  # as it was, comment and all

    kept = ragctl(project, "config", "set", "top_k", "6", "--eval", str(questions))
    assert kept.exit_code == 0 and "the answers held" in kept.stdout
    assert "top_k = 6" in config.read_text(encoding="utf-8") and "ask Mina" in config.read_text(encoding="utf-8")
    assert len(as_json(ragctl(project, "eval", "list", "--json"))) == 4  # before and after, twice

    # A setting that shapes the index goes through a gated reindex: tests/integration/test_gate.py.
    plain = as_json(ragctl(project, "config", "set", "chunk_tokens", "120", "--json"))
    assert plain["reindex_needed"] and "chunk_tokens = 120" in config.read_text(encoding="utf-8")
