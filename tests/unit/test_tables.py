"""Tables that keep their headings: cells, merged cells spread, header rows, row headings, the
"ROW · COLUMN: VALUE" lines a cell question finds; through real HWP, HWPX and DOCX files made here."""

from __future__ import annotations

import pytest

from stack.pipeline.answer import heading_flags
from stack.pipeline.parsers import parse_file
from stack.pipeline.tables import (
    Cell,
    build_table,
    cell_lines,
    column_headings,
    is_cell_line,
    is_number,
    markdown,
)
from tests.support import fixtures_factory as ff
from tests.support.texts import FISCAL_ROWS

# The issue's 통합재정 table: a two-row header with merged cells ("통합재정수지" over "(당월)" and
# "(누계)"), and a year that spans the months under it.
ROWS = FISCAL_ROWS[:5]
MERGES = [(0, 0, 1, 1), (0, 2, 0, 3), (0, 4, 0, 5), (2, 0, 3, 0)]


def issue_cells() -> list[Cell]:
    spans = {(r1, c1): (r2 - r1 + 1, c2 - c1 + 1) for r1, c1, r2, c2 in MERGES}
    covered = {(r, c) for r1, c1, r2, c2 in MERGES for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)
               if (r, c) != (r1, c1)}
    return [Cell(text, r, c, *spans.get((r, c), (1, 1))) for r, row in enumerate(ROWS)
            for c, text in enumerate(row) if (r, c) not in covered]


def lines_of(table) -> list[str]:
    return [line.text for line in cell_lines(table)]


def test_a_two_row_header_with_merged_cells():
    table = build_table(issue_cells())
    assert table.header_rows == 2 and table.row_heading_columns == 2
    assert table.rows[0] == ("구분", "구분", "통합재정수지", "통합재정수지", "관리재정수지", "관리재정수지")
    assert table.rows[3][:2] == ("2011년", "11월")  # the merged year spread to the month under it
    assert column_headings(table)[2:] == ["통합재정수지(당월)", "통합재정수지(누계)", "관리재정수지(당월)",
                                         "관리재정수지(누계)"]
    lines = lines_of(table)
    assert "2011년 10월 · 통합재정수지(누계): 30,050" in lines
    assert "2011년 11월 · 관리재정수지(누계): △16,400" in lines
    assert "2010년 10월 · 통합재정수지(당월): 4,100" in lines
    assert len(lines) == 12  # every data cell once, none of the headings


def test_first_row_is_the_header_when_it_is_text_over_numbers():
    table = build_table([Cell(t, r, c) for r, row in enumerate([["휴가 종류", "일수", "비고"],
                                                                 ["연차 휴가", "15일", "유급"],
                                                                 ["병가", "10일", "무급"]])
                         for c, t in enumerate(row)])
    assert (table.header_rows, table.row_heading_columns) == (1, 1)
    assert lines_of(table) == ["연차 휴가 · 일수: 15일", "연차 휴가 · 비고: 유급", "병가 · 일수: 10일", "병가 · 비고: 무급"]


@pytest.mark.parametrize("amounts", [
    ["$50 per day", "$180 per night"],
    ["USD 1,200", "USD 900"],
    ["12 %", "8 %"],
    ["3.5 km", "40 km"],
    ["up to $50", "€30/night"],
])
def test_english_amounts_with_their_words_are_numbers_under_a_header(amounts):
    """ "Item | Limit" over "Meals | $50 per day": an amount with its currency, unit or rate is a value,
    so the first row is the header and each value is named by both its headings."""
    rows = [["Item", "Limit"], ["Meals", amounts[0]], ["Hotel", amounts[1]]]
    table = build_table([Cell(t, r, c) for r, row in enumerate(rows) for c, t in enumerate(row)])
    assert (table.header_rows, table.row_heading_columns) == (1, 1)
    assert lines_of(table) == [f"Meals · Limit: {amounts[0]}", f"Hotel · Limit: {amounts[1]}"]


@pytest.mark.parametrize("cell", ["$50 per day", "USD 1,200", "12 %", "3.5 km", "1.2 million", "40 hours a week",
                                  "KRW 50,000", "< 5%"])
def test_is_number_takes_amounts_with_units_and_rates(cell):
    assert is_number(cell)


@pytest.mark.parametrize("cell", ["Meals", "Level 3", "Room 12B", "2 bedrooms", "per day", "Hotel (per night)",
                                  "Section 3 applies", "over budget", "USD"])
def test_is_number_leaves_headings_and_words_as_text(cell):
    """Words that hold a number ("Level 3", "2 bedrooms") head rows: they stay text."""
    assert not is_number(cell)


def test_english_amounts_under_a_header_in_a_docx(tmp_path):
    path = ff.make_docx(tmp_path / "policy.docx", heading="Travel", table=[
        ["Expense", "Limit", "Receipt"], ["Meals", "$50 per day", "required"], ["Taxi", "USD 40", "over $25"]])
    table = next(b for b in parse_file(path).blocks if b.kind == "table").table()
    assert (table.header_rows, table.row_heading_columns) == (1, 1)
    assert "Meals · Limit: $50 per day" in lines_of(table) and "Taxi · Receipt: over $25" in lines_of(table)


def test_text_over_text_has_no_header_unless_the_format_marks_one():
    rows = [["성명", "홍길동"], ["직위", "과장"]]
    plain = build_table([Cell(t, r, c) for r, row in enumerate(rows) for c, t in enumerate(row)])
    assert plain.header_rows == 0 and lines_of(plain) == []
    rows = [["이름", "부서"], ["홍길동", "총무과"]]
    marked = build_table([Cell(t, r, c, header=r == 0) for r, row in enumerate(rows) for c, t in enumerate(row)])
    assert marked.header_rows == 1 and lines_of(marked) == ["홍길동 · 부서: 총무과"]


def test_markdown_folds_the_header_rows():
    text = markdown(build_table(issue_cells()))
    lines = text.splitlines()
    assert lines[0] == "| 구분 | 구분 | 통합재정수지(당월) | 통합재정수지(누계) | 관리재정수지(당월) | 관리재정수지(누계) |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| 2011년 | 10월 | 3,210 | 30,050 | △1,100 | △12,400 |"


def test_cell_lines_are_data_for_the_answer_not_headings():
    line = "2011년 10월 · 통합재정수지(누계): 30,050"
    assert is_cell_line(line)
    assert heading_flags([line, "제3조(연차 휴가)"]) == [False, True]


@pytest.mark.parametrize("suffix", [".hwpx", ".hwp"])
def test_hwp_and_hwpx_tables_keep_merged_headers(tmp_path, suffix):
    path = ff.make_hwp_document(tmp_path / f"stats{suffix}", [
        ("p", "통합재정 현황을 알린다."),
        ("table", ROWS, "통합재정수지 추이", MERGES),
        ("p", "자세한 내용은 누리집을 본다."),
    ])
    document = parse_file(path)
    block = next(b for b in document.blocks if b.kind == "table")
    assert block.heading and block.heading.endswith("통합재정수지 추이")  # the caption names the table
    assert (block.header_rows, block.row_heading_columns) == (2, 2)
    assert block.rows == build_table(issue_cells()).rows
    assert "2011년 10월 · 통합재정수지(누계): 30,050" in lines_of(block.table())
    cells = block.to_dict()["cells"]
    assert {"row": 2, "col": 3, "row_heading": "2011년 10월", "column_heading": "통합재정수지(누계)",
            "value": "30,050"} in cells
    assert block.text.count("통합재정수지") == 1  # the text says each merged cell once


def test_docx_tables_keep_merged_headers(tmp_path):
    path = ff.make_docx(tmp_path / "stats.docx", heading="재정", body="통합재정 현황.", table=ROWS,
                        merges=MERGES, header_rows=2)
    block = next(b for b in parse_file(path).blocks if b.kind == "table")
    assert (block.header_rows, block.row_heading_columns) == (2, 2)
    assert block.rows[3][:2] == ("2011년", "11월")
    assert "2011년 11월 · 관리재정수지(누계): △16,400" in lines_of(block.table())


def test_extract_works_outside_a_project_and_prints_markdown_tables(tmp_path):
    import json
    import os
    import subprocess
    import sys

    path = ff.make_hwp_document(tmp_path / "stats.hwpx", [("p", "통합재정 현황."), ("table", ROWS, "추이", MERGES)])
    folder = tmp_path / "not-a-project"
    folder.mkdir()
    env = {**os.environ, "NO_COLOR": "1"}

    def extract(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ragctl", "extract", str(path), *args], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    human = extract()
    assert human.returncode == 0, human.stderr
    assert "| 2011년 | 10월 | 3,210 | 30,050 | △1,100 | △12,400 |" in human.stdout.splitlines()
    as_json = extract("--json")
    assert as_json.returncode == 0, as_json.stderr
    table = next(b for b in json.loads(as_json.stdout)["blocks"] if b["kind"] == "table")
    assert table["header_rows"] == 2 and table["rows"][2][:4] == ["2011년", "10월", "3,210", "30,050"]
    assert {"row": 2, "col": 3, "row_heading": "2011년 10월", "column_heading": "통합재정수지(누계)",
            "value": "30,050"} in table["cells"]
    assert list(folder.iterdir()) == []  # a file tool outside a project saves nothing


def test_html_th_rowspan_colspan_and_markdown_headers(tmp_path):
    html = tmp_path / "stats.html"
    html.write_text(
        "<html><body><h1>재정</h1><table>"
        "<tr><th rowspan=2 colspan=2>구 분</th><th colspan=2>통합재정수지</th></tr>"
        "<tr><th>(당월)</th><th>(누계)</th></tr>"
        "<tr><td rowspan=2>2011년</td><td>10월</td><td>3,210</td><td>30,050</td></tr>"
        "<tr><td>11월</td><td>△2,500</td><td>27,550</td></tr></table></body></html>", encoding="utf-8")
    block = next(b for b in parse_file(html).blocks if b.kind == "table")
    assert block.header_rows == 2 and block.rows[3][:2] == ("2011년", "11월")
    assert "2011년 10월 · 통합재정수지(누계): 30,050" in lines_of(block.table())
    md = tmp_path / "people.md"
    md.write_text("# 부서\n\n| 이름 | 부서 |\n|---|---|\n| 홍길동 | 총무과 |\n", encoding="utf-8")
    block = next(b for b in parse_file(md).blocks if b.kind == "table")
    assert lines_of(block.table()) == ["홍길동 · 부서: 총무과"]  # Markdown always marks its header row
