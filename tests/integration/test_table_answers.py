"""A question about one table cell, through the real embedded pipeline (parse, chunk, embed, BM25 and
dense retrieval, the extractive answer): the answer quotes the cell with its row and column headings."""

from __future__ import annotations

import pytest

from ragctl.gold import answer_body
from tests.support import fixtures_factory as ff
from tests.support.texts import FISCAL_ROWS

pytestmark = pytest.mark.slow

ROWS = FISCAL_ROWS
MERGES = [(0, 0, 1, 1), (0, 2, 0, 3), (0, 4, 0, 5), (2, 0, 3, 0), (4, 0, 5, 0)]


def test_a_cell_question_is_answered_with_the_cell_and_its_two_headings(pipeline, tmp_path):
    path = ff.make_hwp_document(tmp_path / "통합재정통계.hwp", [
        ("p", "기획재정부는 매월 통합재정수지와 관리재정수지를 공표한다."),
        ("p", "통합재정수지는 통합재정수입에서 통합재정지출 및 순융자를 뺀 값이다."),
        ("table", ROWS, "통합재정수지 추이(단위: 십억원)", MERGES),
        ("p", "휴가 규정은 다음 표와 같다."),
        ("table", [["휴가 종류", "일수", "비고"], ["연차 휴가", "15일", "유급"], ["병가", "10일", "무급"]], "휴가 일수"),
    ])
    assert pipeline.ingest_file(path).status == "done"

    answer = pipeline.ask("2011년 10월 누계 통합재정수지는 얼마인가?")
    body = answer_body(answer.answer)
    assert answer.mode == "extractive"
    assert body.splitlines()[0] == "2011년 10월 · 통합재정수지(누계): 30,050", answer.answer
    assert "2010년" not in body  # not the same month of another year
    cited = answer.sources[0]
    assert cited.heading and cited.heading.endswith("통합재정수지 추이")  # the caption (its unit dropped)

    leave = answer_body(pipeline.ask("연차 휴가는 며칠인가요?").answer)
    assert "연차 휴가 · 일수: 15일" in leave and "휴가 종류 | 일수" not in leave.splitlines()[0]


def test_a_cell_question_about_a_pdf_table_is_answered_the_same_way(pipeline, tmp_path):
    path = ff.make_pdf_document(tmp_path / "통합재정통계.pdf", [
        ("p", "기획재정부는 매월 통합재정수지와 관리재정수지를 공표한다."),
        ("p", "통합재정수지는 통합재정수입에서 통합재정지출 및 순융자를 뺀 값이다."),
        ("p", "통합재정수지 추이(단위: 십억원)"),
        ("table", ROWS, MERGES),
        ("p", "자세한 내용은 누리집을 본다."),
    ])
    assert pipeline.ingest_file(path).status == "done"

    answer = pipeline.ask("2011년 10월 누계 통합재정수지는 얼마인가?")
    assert answer.mode == "extractive"
    assert answer_body(answer.answer).splitlines()[0] == "2011년 10월 · 통합재정수지(누계): 30,050", answer.answer
    cited = answer.sources[0]
    assert cited.page == 1 and cited.heading == "통합재정수지 추이"  # the caption above, its unit dropped
