"""Tables of real documents (../shared/corpus or RAGCTL_CORPUS): header rows, row headings, merged
cells spread, cell lines, and long tables chunked with their header repeated.

Skips with a reason where the corpus is absent, except under CI=true, where its absence fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.pipeline.chunk import chunk_document
from stack.pipeline.parsers import parse_file
from stack.pipeline.tables import cell_lines, header_line
from tests.support.suite import require_corpus

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus() -> Path:
    return require_corpus()


def tables(path: Path):
    return [block for block in parse_file(path).blocks if block.kind == "table"]


def lines(blocks) -> list[str]:
    return [line.text for block in blocks if block.header_rows for line in cell_lines(block.table())]


def test_hwp_statistics_table_names_each_cell(corpus):
    found = tables(corpus / "hwp/rhwp/통합재정통계(2014.8월).hwp")
    table = next(block for block in found if block.header_rows)
    assert (table.header_rows, table.row_heading_columns) == (1, 2)
    assert table.rows[0][2:] == ("일반 회계", "특별 회계", "세입 세출외", "비금융성 기금", "기업 특별회계", "합계")
    cells = lines(found)
    # a sub-row heading under its group ("경상수입" under "통합재정수입 (A)"), its footnote kept out
    assert "통합재정수입 (A) 경상수입 · 합계: 210,050" in cells
    assert "통합재정수지 (A-B) · 합계: △10,027" in cells
    assert len(cells) == 48


def test_hwpx_report_tables_carry_their_captions(corpus):
    found = tables(corpus / "hwp/rhwp/hwpx__2025년 1분기 해외직접투자 보도자료f.hwpx")
    by_caption = {block.heading: block for block in found if block.header_rows}
    industry = by_caption["업종별 동향(억 달러, %)"]
    assert industry.row_heading_columns == 1
    assert "‘24.1Q · 금융보험업: 62.7" in lines([industry])


def test_hwp_and_hwpx_give_the_same_cells(corpus):
    folder = corpus / "hwp/rhwp"
    hwp = lines(tables(folder / "hwpx__2024년 1분기 해외직접투자 보도자료 ff.hwp"))
    hwpx = lines(tables(folder / "hwpx__2024년 1분기 해외직접투자 보도자료 ff.hwpx"))
    assert hwp == hwpx and len(hwp) > 40


def test_docx_merged_cells_are_spread(corpus):
    (table,) = tables(corpus / "docx/docx2python__merged_cells.docx")
    assert table.rows == (
        ("0-0", "0-12", "0-12", "0-3"),
        ("12-0", "1-1", "1-2", "1-3"),
        ("12-0", "2-1", "2-2", "2-3"),
        ("3-0", "34-123", "34-123", "34-123"),
        ("4-0", "34-123", "34-123", "34-123"),
    )
    assert table.text.count("34-123") == 1  # the text says a merged cell once


def test_a_long_real_table_repeats_its_header_in_every_piece(corpus):
    document = parse_file(corpus / "hwp/rhwp/table-ipc.hwp")
    table = next(block for block in document.blocks if block.kind == "table" and block.header_rows)
    header = header_line(table.table())
    assert header.startswith("순번 | 사용일자")
    chunks = chunk_document(document, lambda texts: [len(text.split()) for text in texts], max_tokens=60)
    pieces = [chunk for chunk in chunks if chunk.text.split("\n", 1)[0] == header]
    assert len(pieces) > 5
    assert all(chunk.tokens <= 60 for chunk in pieces)
    # each row (no row heading here) is one line of "COLUMN: VALUE" pairs, never cut from its header
    first = table.rows[1]
    assert any(f"순번: {first[0]} | 사용일자: {first[1]}" in chunk.text for chunk in pieces)


def test_a_corpus_pdf_table_from_hancom(corpus):
    """KorQuAD 2.0's paper, printed from Hancom: [표 1] with shaded cells and doubled borders."""
    document = parse_file(corpus / "pdf/KorQuAD_2.0_paper.pdf")
    table = next(b for b in document.blocks if b.kind == "table" and b.page == 3)
    assert table.rows == (("", "학습", "검증", "평가", "합계"), ("문서", "38,496", "4,736", "4,725", "47,957"),
                          ("질문", "83,486", "10,165", "9,309", "102,960"))
    assert "문서 · 검증: 4,736" in [line.text for line in cell_lines(table.table())]
    assert table.heading == "4. 데이터 특징 및 분석 > 4.1 데이터 구성 > [표 1] 문서 및 질문 개수"  # section, caption
    page_text = "\n".join(b.text for b in document.blocks if b.page == 3 and b.kind != "table")
    assert "38,496" not in page_text  # the table's numbers are not also in the page's text
