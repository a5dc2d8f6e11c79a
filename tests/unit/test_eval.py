"""``ragctl eval``'s library without a pipeline: loading question sets (malformed rows by line, BOM,
Excel's CSV, CP949), scoring an answer, the summary, comparing runs, the HTML page, generating
questions from text.  The same with the real pipeline: tests/integration/test_eval.py."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from ragctl.errors import UsageError
from ragctl.gold import answer_body, answer_has_gold
from ragctl.ops.eval import compare_runs, load_questions, new_run, score, summarize
from ragctl.ops.eval_generate import candidates_from
from ragctl.ops.eval_report import render_html
from stack.contract import EXTRACTIVE_LABEL_KO, Answer, Source


def test_jsonl_reports_each_malformed_row_by_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        '{"question": "연차 휴가는 며칠인가?", "answer": "15일", "file": "휴가_규정.hwpx"}',
        '{"question": "broken", "answer": ',
        "",
        '{"question": "no answer"}',
        '["a", "list"]',
        '{"question": "  ", "answer": "x"}',
        '{"question": "How long are backups kept?", "answer": ["30 days", "thirty days"], "collection": "ops"}',
        '{"question": "q", "answer": 5}',
    ]
    path.write_text("\n".join(rows), encoding="utf-8")
    questions, errors = load_questions(path)
    assert [(q.line, q.answers, q.file, q.collection) for q in questions] == [
        (1, ["15일"], "휴가_규정.hwpx", None), (7, ["30 days", "thirty days"], None, "ops")]
    assert [e.line for e in errors] == [2, 4, 5, 6, 8]
    assert "not valid JSON" in errors[0].message and "answer" in errors[1].message
    assert "JSON object" in errors[2].message and "question" in errors[3].message and "int" in errors[4].message


def test_an_excel_csv_parses_bom_crlf_quoted_newlines_and_several_answers(tmp_path):
    path = tmp_path / "q.csv"
    text = ('Question,Answer,File\r\n'
            '"연차 휴가는\r\n며칠인가?","15일|십오 일",휴가_규정.hwpx\r\n'
            'only a question,,\r\n'
            '"How long, exactly, are backups kept?",30 days,\r\n'
            'a,b,c,d\r\n')
    path.write_bytes("\ufeff".encode() + text.encode("utf-8"))  # Excel's "CSV UTF-8"
    questions, errors = load_questions(path)
    assert [(q.line, q.question, q.answers, q.file) for q in questions] == [
        (2, "연차 휴가는\r\n며칠인가?", ["15일", "십오 일"], "휴가_규정.hwpx"),
        (5, "How long, exactly, are backups kept?", ["30 days"], None)]
    assert [(e.line, "answer" in e.message) for e in errors] == [(4, True), (6, False)]
    assert "4 values for 3 columns" in errors[1].message


def test_korean_excel_csv_in_cp949_and_korean_headers(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes("질문;정답\n연차 휴가는 며칠인가?;15일\n".encode("cp949"))
    questions, errors = load_questions(path)
    assert errors == [] and questions[0].question == "연차 휴가는 며칠인가?" and questions[0].answers == ["15일"]


@pytest.mark.parametrize("content, code", [(b"a,b\n1,2\n", "questions_no_header"), (b"", "questions_no_header"),
                                           (b"\n\n", "questions_empty")])
def test_a_set_that_cannot_be_read_is_one_clear_error(tmp_path, content, code):
    path = tmp_path / ("q.jsonl" if code == "questions_empty" else "q.csv")
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        load_questions(path)
    assert caught.value.code == code and caught.value.hint
    with pytest.raises(UsageError) as missing:
        load_questions(tmp_path / "nope.jsonl")
    assert "ragctl eval generate" in missing.value.hint


def _answer(text: str, files: list[str], cited: str = "[1]") -> Answer:
    sources = [Source(n, file, "p. 1", 1, None, "doc", f"doc:{n}", 0.5, f"text of {file}")
               for n, file in enumerate(files, start=1)]
    return Answer("q", f"{EXTRACTIVE_LABEL_KO}\n{text} {cited}", "extractive", sources)


def test_scoring_uses_the_benchmarks_definition_and_the_expected_files_rank():
    from ragctl.ops.eval import Question

    question = Question(3, "연차 휴가는 며칠인가?", ["15 일"], file="휴가_규정.hwpx")
    outcome = score(question, _answer("연차 휴가는 연 15일이다.", ["other.pdf", "휴가_규정.hwpx"], "[2]"), 12.5)
    assert outcome.answer_has_gold and outcome.source_has_gold and outcome.file_rank == 2 and outcome.passed
    assert outcome.answer_chars == len("연차 휴가는 연 15일이다.")
    # The expected file is listed but not cited: source_has_gold is False, its rank still says where it was.
    wrong = score(question, _answer("모른다.", ["other.pdf", "휴가_규정.hwpx"], "[1]"), 1.0)
    assert not wrong.answer_has_gold and wrong.source_has_gold is False and wrong.file_rank == 2 and not wrong.passed
    # The label line and the [n] markers never count as answer text.
    assert answer_body(f"{EXTRACTIVE_LABEL_KO}\n15일 [1]") == "15일" and not answer_has_gold("[15]", ["15"])


def _run(rows: list[tuple[str, bool]], documents: int) -> dict:
    from ragctl.ops.eval import Outcome, Question

    outcomes = [Outcome(i, q, ["x"], None, None, answer=f"answer to {q}", answer_has_gold=ok, latency_ms=10.0 * i)
                for i, (q, ok) in enumerate(rows, start=1)]
    questions = [Question(o.line, o.question, o.answers) for o in outcomes]
    return new_run("set.jsonl", questions, [], outcomes, {"documents": documents, "embedding": {"model": "m"}}, 1.0)


def test_summary_and_compare_say_which_questions_flipped():
    a = _run([("q1", True), ("q2", True), ("q3", False)], documents=4)
    b = _run([("q1", True), ("q2", False), ("q3", True)], documents=3)
    assert a["summary"]["answer_has_gold"] == round(2 / 3, 4) and a["summary"]["latency_ms_p50"] == 20.0
    assert a["summary"]["latency_ms_p95"] == 30.0
    diff = compare_runs(a, b)
    assert [r["question"] for r in diff["right_to_wrong"]] == ["q2"]
    assert [r["question"] for r in diff["wrong_to_right"]] == ["q3"]
    assert diff["metrics"]["answer_has_gold"]["delta"] == 0.0 and diff["same_question_set"]
    assert diff["fingerprint_changes"] == {"documents": {"a": 4, "b": 3}}
    assert summarize([])["answer_has_gold"] is None


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags, self.urls, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href", "action", "srcset") and value]

    def handle_data(self, data):
        self.text.append(data)


def test_the_html_report_is_self_contained_and_user_text_is_escaped():
    run = _run([("<script>alert(1)</script> 연차?", False), ("https://example.com/x.png?", True)], documents=1)
    run["results"][0]["sources"] = [{"n": 1, "file": "<img src=http://evil/x>.pdf", "location": "p. 1", "score": 1.0,
                                     "text": "</pre><link rel=stylesheet href=//cdn/x.css>", "cited": True}]
    page = render_html(run)
    parsed = _Page()
    parsed.feed(page)
    assert parsed.urls == [] and not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    text = "".join(parsed.text)
    assert "<script>alert(1)</script> 연차?" in text and "<img src=http://evil/x>.pdf" in text
    assert text.index("연차?") < text.index("https://example.com/x.png?")  # failures first
    assert "default-src 'none'" in page


def test_generated_questions_ask_for_the_fact_they_came_from():
    text = ("제2조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다. 출장비는 1일 50,000원을 지급한다.\n"
            "이 규정은 2025년 1월 1일부터 시행한다.\n병가 | 연 10일 | 유급\nReceipts are required for any expense "
            "over $25. Backups are kept for 30 days.")
    made = {c.answer: c for c in candidates_from(text, "규정.hwpx")}
    assert set(made) == {"1년", "50,000원", "2025년 1월 1일", "10일", "$25", "30 days"}
    assert made["50,000원"].question == "출장비는 1일 얼마를 지급하는가?"
    assert made["2025년 1월 1일"].question == "이 규정은 언제부터 시행하는가?"
    assert made["1년"].question == "입사 몇 년 이상 직원의 연차 휴가는 연 15일인가?"  # heading and ① dropped
    assert made["10일"].question == "병가: 연 며칠?"
    assert made["30 days"].question == "Backups are kept for how many days?"
    for candidate in made.values():
        assert candidate.file == "규정.hwpx" and candidate.answer in candidate.context
        assert candidate.answer not in candidate.question
        assert json.loads(json.dumps(candidate.to_dict(), ensure_ascii=False))["question"] == candidate.question
