"""Ruled tables in PDFs read as tables (stack/pipeline/parsers/pdf_tables.py): real PDFs with a
Korean text layer made here with reportlab and fonts-nanum, parsed by pypdfium2 as in production."""

from __future__ import annotations

from stack.pipeline.parsers import parse_file
from stack.pipeline.tables import Cell, build_table, cell_lines
from tests.support import fixtures_factory as ff
from tests.support.texts import FISCAL_ROWS

ROWS = FISCAL_ROWS[:5]
MERGES = [(0, 0, 1, 1), (0, 2, 0, 3), (0, 4, 0, 5), (2, 0, 3, 0)]
BEFORE = "기획재정부는 매월 통합재정수지와 관리재정수지를 공표한다."
AFTER = "자세한 내용은 누리집을 본다."


def hwp_table(tmp_path):
    path = ff.make_hwp_document(tmp_path / "stats.hwpx", [("p", BEFORE), ("table", ROWS, None, MERGES)])
    return next(b for b in parse_file(path).blocks if b.kind == "table")


def test_a_ruled_korean_table_with_a_merged_two_row_header_reads_as_its_hwp_twin(tmp_path):
    path = ff.make_pdf_document(tmp_path / "stats.pdf", [("p", BEFORE), ("table", ROWS, MERGES), ("p", AFTER)])
    document = parse_file(path)
    assert [b.kind for b in document.blocks] == ["paragraph", "table", "paragraph"]  # reading order kept
    block = document.blocks[1]
    twin = hwp_table(tmp_path)
    assert block.page == 1
    assert block.rows == twin.rows  # merged cells spread as the HWP parser spreads them
    assert (block.header_rows, block.row_heading_columns) == (twin.header_rows, twin.row_heading_columns) == (2, 2)
    lines = [line.text for line in cell_lines(block.table())]
    assert lines == [line.text for line in cell_lines(twin.table())]
    assert "2011년 10월 · 통합재정수지(누계): 30,050" in lines
    assert {"row": 2, "col": 3, "row_heading": "2011년 10월", "column_heading": "통합재정수지(누계)",
            "value": "30,050"} in block.to_dict()["cells"]
    # The table's text is said once, by the table: not again in the paragraphs around it.
    assert document.blocks[0].text == BEFORE and document.blocks[2].text == AFTER
    assert document.text.count("30,050") == 1
    assert "| 2011년 | 10월 | 3,210 | 30,050 | △1,100 | △12,400 |" in document.markdown().splitlines()


def test_a_plain_pdf_is_unchanged(tmp_path):
    paragraphs = [BEFORE, "연차 휴가는 매년 15일이 주어지며 신청은 3일 전까지 해야 한다.", AFTER]
    path = ff.make_pdf_document(tmp_path / "plain.pdf", [("p", text) for text in paragraphs])
    document = parse_file(path)
    assert [(block.kind, block.text) for block in document.blocks] == [("paragraph", text) for text in paragraphs]


def test_a_box_around_text_and_an_empty_grid_stay_text(tmp_path):
    path = ff.make_pdf_document(tmp_path / "boxes.pdf", [
        ("table", [["알림: 신청은 3일 전까지 해야 한다."]]),  # one ruled box: a note, not a table
        ("table", [["", "", ""], ["", "", ""], ["", "", ""]]),  # a form's blank grid
        ("p", AFTER),
    ])
    document = parse_file(path)
    assert all(block.kind != "table" for block in document.blocks)
    assert "알림: 신청은 3일 전까지 해야 한다." in document.text


def test_a_table_open_at_its_sides_and_two_tables_on_a_page(tmp_path):
    leave = [["휴가 종류", "일수", "비고"], ["연차 휴가", "15일", "유급"], ["병가", "10일", "무급"]]
    path = ff.make_pdf_document(tmp_path / "two.pdf", [
        ("p", BEFORE), ("table", ROWS, MERGES), ("p", "휴가 규정은 다음과 같다."), ("p", "[표 2] 휴가 일수"),
        ("table", leave, (), "open"), ("p", AFTER),
    ])
    document = parse_file(path)
    assert [b.kind for b in document.blocks] == ["paragraph", "table", "paragraph", "caption", "table", "paragraph"]
    second = document.blocks[4]
    assert second.heading == "[표 2] 휴가 일수"  # the line above that reads as a caption names the table
    assert second.rows == build_table([Cell(t, r, c) for r, row in enumerate(leave) for c, t in enumerate(row)]).rows
    assert [line.text for line in cell_lines(second.table())][:2] == ["연차 휴가 · 일수: 15일", "연차 휴가 · 비고: 유급"]


def test_a_cells_wrapped_lines_are_joined_as_the_pages_paragraphs_are(tmp_path):
    rows = [["구분", "통합재정\n수지", "세입\n세출외"], ["2011년", "30,050", "1,200"], ["2010년", "25,000", "1,100"]]
    path = ff.make_pdf_document(tmp_path / "wrapped.pdf", [("p", BEFORE), ("table", rows)])
    table = next(b for b in parse_file(path).blocks if b.kind == "table")
    # "통합재정수지" is a word the page uses, so the wrap split it; "세입" and "세출외" are two words.
    assert table.rows[0] == ("구분", "통합재정수지", "세입 세출외")
    assert "2011년 · 통합재정수지: 30,050" in [line.text for line in cell_lines(table.table())]


# A statistics table of 100 months: longer than one A4 page, so the PDF prints it over three.
MONTHS = [["연월", "통합재정수지", "관리재정수지"]] + [
    [f"{2000 + m // 12}년 {m % 12 + 1}월", f"{1000 + 7 * m:,}", f"△{500 + 3 * m:,}"] for m in range(100)]


def test_a_table_continued_over_pages_is_one_table_whether_its_header_repeats_or_not(tmp_path):
    for flags in ("repeat", ""):
        path = ff.make_pdf_document(tmp_path / f"months-{flags or 'once'}.pdf",
                                    [("p", BEFORE), ("table", MONTHS, (), flags), ("p", AFTER)], page_numbers=True)
        document = parse_file(path)
        assert document.metadata["pages"] >= 3, flags
        tables = [b for b in document.blocks if b.kind == "table"]
        assert len(tables) == 1, (flags, [t.page for t in tables])
        table = tables[0]
        assert table.page == 1 and table.rows == tuple(tuple(row) for row in MONTHS)  # the header once
        assert (table.header_rows, table.row_heading_columns) == (1, 1)
        lines = [line.text for line in cell_lines(table.table())]
        assert "2008년 4월 · 관리재정수지: △797" in lines  # the last row, two pages on, under its headings
        # The page numbers between the pieces are still read, as text after the table.
        assert "- 2 -" in document.text and AFTER in document.text


def test_a_different_table_at_the_top_of_the_next_page_stays_apart(tmp_path):
    """The next page opens with a table of other columns: two tables, each cited at its own page."""
    leave = [["휴가 종류", "일수", "비고", "근거"], ["연차 휴가", "15일", "유급", "제3조"], ["병가", "10일", "무급", "제4조"]]
    path = ff.make_pdf_document(tmp_path / "two.pdf", [("table", MONTHS[:45], ()), ("table", leave, ())])
    tables = [b for b in parse_file(path).blocks if b.kind == "table"]
    assert [(t.page, len(t.rows)) for t in tables] == [(1, 45), (2, 3)]
