"""Heading paths (#9, citations a reader can follow): what each parser gives every block, the
outline numbers Hancom draws, and chunks that each cite one heading path.

Real parsers on documents the tests make (python-hwpx writes both .hwp and .hwpx, python-docx,
Markdown text) and the shipped samples; no parser is mocked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.pipeline.chunk import chunk_document
from stack.pipeline.document import (
    Block,
    ParsedDocument,
    common_heading,
    heading_anchor,
    location_label,
)
from stack.pipeline.parsers import parse_file
from stack.pipeline.parsers.headings import HeadingTracker
from stack.pipeline.parsers.hwp import Numbering, format_number
from stack.pipeline.parsers.pdf import heading_paths
from tests.support import fixtures_factory as ff

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def count_words(texts):
    return [len(text.split()) for text in texts]


def chunks_of(document, max_tokens=200):
    return chunk_document(document, count_words, max_tokens=max_tokens, overlap_tokens=0)


def headings(document) -> list[tuple[str, str | None]]:
    return [(b.text, b.heading) for b in document.blocks]


# ------------------------------------------------------------------------------ the model


def test_location_labels():
    assert location_label(3, None, None) == "p. 3"
    assert location_label(3, None, "2. Method") == "p. 3 · 2. Method"
    assert location_label(None, "section 1", "제3조(연차 휴가) > ②") == "제3조(연차 휴가) > ②"
    assert location_label(None, "section 1", None) == "section 1"
    assert Block("x", heading="1. 개요 > 가. 목적").to_dict()["heading"] == "1. 개요 > 가. 목적"
    assert heading_anchor("제3조(연차 휴가) > ② > 1.") == "제3조(연차 휴가)"
    assert heading_anchor("1. 개요 > 가. 목적") == "1. 개요 > 가. 목적"
    assert common_heading(["제3조(연차 휴가) > ①", "제3조(연차 휴가) > ②"]) == "제3조(연차 휴가)"
    assert common_heading(["a > b", "c"]) is None


# ------------------------------------------------------------------- statutes and outlines


def test_statute_structure():
    tracker = HeadingTracker()
    lines = [
        ("제1장 총칙", "제1장 총칙", True),
        ("제3조 (연차휴가) ① 직원은 연 15일의 휴가를 받는다.", "제1장 총칙 > 제3조(연차휴가) > ①", False),
        ("1. 입사 1년 이상인 직원", "제1장 총칙 > 제3조(연차휴가) > ① > 1.", False),
        ("가. 정규직", "제1장 총칙 > 제3조(연차휴가) > ① > 1. > 가.", False),
        ("② 신청은 3일 전까지 한다.", "제1장 총칙 > 제3조(연차휴가) > ②", False),
        ("제3조제2항 중 “서한”을 “공식 문서”로 한다.", "제1장 총칙 > 제3조(연차휴가) > ②", False),  # not an article
        ("제4조(병가)", "제1장 총칙 > 제4조(병가)", True),
        ("제2장 보칙", "제2장 보칙", True),
        ("부칙", "부칙", True),
        ("제1조(시행일) 이 규정은 2025년 1월 1일부터 시행한다.", "부칙 > 제1조(시행일)", False),
    ]
    for line, path, is_heading in lines:
        assert tracker.paragraph(line) == (path, is_heading), line


def test_numbered_outline_of_an_ordinary_document():
    tracker = HeadingTracker()
    lines = [
        ("Ⅰ. 사업 개요", "Ⅰ. 사업 개요"),
        ("1. 추진 배경", "Ⅰ. 사업 개요 > 1. 추진 배경"),
        ("가. 목적", "Ⅰ. 사업 개요 > 1. 추진 배경 > 가. 목적"),
        ("1) 사업기간 : 착수일로부터 24개월", "Ⅰ. 사업 개요 > 1. 추진 배경 > 가. 목적 > 1)"),  # a labelled item
        ("나. 이 사업은 지역 문화 사업을 활성화하기 위하여 정보제공 기반을 마련한다.",
         "Ⅰ. 사업 개요 > 1. 추진 배경 > 나."),  # a sentence: filed under its marker
        ("□ 추진 체계", "Ⅰ. 사업 개요 > 1. 추진 배경 > 나. > □ 추진 체계"),
        ("2. 추진 일정", "Ⅰ. 사업 개요 > 2. 추진 일정"),
        ("Ⅱ. 예산", "Ⅱ. 예산"),
        ("본문은 경로를 바꾸지 않는다.", "Ⅱ. 예산"),
    ]
    for line, path in lines:
        assert tracker.paragraph(line)[0] == path, line


@pytest.mark.parametrize("suffix", [".hwpx", ".hwp"])
def test_a_run_of_numbered_lines_is_a_list_not_headings(tmp_path, suffix):
    path = ff.make_hwp_document(tmp_path / f"list{suffix}", [
        ("p", "1. 추진 목표"),
        ("p", "목표는 다음과 같다."),
        ("p", "가) 제목 글꼴 굴림"),
        ("p", "나) 본문 글꼴 바탕"),
        ("p", "다) 범례는 출력형태와 같게"),
        ("p", "2. 추진 일정"),
        ("p", "일정은 3월부터다."),
    ])
    doc = parse_file(path)
    assert headings(doc) == [
        ("1. 추진 목표", "1. 추진 목표"),
        ("목표는 다음과 같다.", "1. 추진 목표"),
        ("가) 제목 글꼴 굴림", "1. 추진 목표 > 가)"),  # looked like a heading until 나) came
        ("나) 본문 글꼴 바탕", "1. 추진 목표 > 나)"),
        ("다) 범례는 출력형태와 같게", "1. 추진 목표 > 다)"),
        ("2. 추진 일정", "2. 추진 일정"),
        ("일정은 3월부터다.", "2. 추진 일정"),
    ]
    assert [b.kind for b in doc.blocks][2:5] == ["paragraph"] * 3
    # The items share their heading's chunk.
    assert [c.location() for c in chunks_of(doc)] == ["1. 추진 목표", "2. 추진 일정"]


def test_heading_parts_are_short():
    tracker = HeadingTracker()
    tracker.paragraph("제12조(중도탈퇴에 대한 조치) ①공동수급체의 구성원은 다음 각호의 1에 해당하는 경우 외에는 탈퇴할 수 없다.")
    assert tracker.path == "제12조(중도탈퇴에 대한 조치) > ①"
    tracker = HeadingTracker()
    path, is_heading = tracker.outline(0, "아주 긴 개요 문단 " * 10)
    assert is_heading and path is not None and len(path) <= 40 and path.endswith("…")
    # Body text written in an outline style is filed under its number, not titled by its sentence.
    assert tracker.outline(1, "가. 입사 1년 이상 직원의 연차 휴가는 연 15일이다.", number="가.") == (
        f"{path} > 가.", False)


# ------------------------------------------------------------------- Hancom outline numbers


def test_number_formats():
    assert [format_number(n, "HANGUL_SYLLABLE") for n in (1, 2, 14, 15)] == ["가", "나", "하", "거"]
    assert format_number(2, "CIRCLED_DIGIT") == "②"
    assert format_number(4, "ROMAN_CAPITAL") == "IV" and format_number(4, "ROMAN_SMALL") == "iv"
    assert format_number(3, "LATIN_SMALL") == "c" and format_number(3, "DIGIT") == "3"
    assert format_number(1, "HANGUL_JAMO") == "ㄱ"


def test_numbering_counters_and_format_strings():
    header = (
        b'<hh:head xmlns:hh="h"><hh:paraProperties>'
        b'<hh:paraPr id="1"><hh:heading type="NUMBER" idRef="2" level="0"/></hh:paraPr>'
        b'<hh:paraPr id="2"><hh:heading type="NUMBER" idRef="2" level="1"/></hh:paraPr>'
        b'<hh:paraPr id="3"><hh:heading type="NUMBER" idRef="2" level="3"/></hh:paraPr>'
        b'</hh:paraProperties><hh:numberings><hh:numbering id="2" start="1">'
        b'<hh:paraHead start="1" level="1" numFormat="DIGIT">^1.</hh:paraHead>'
        b'<hh:paraHead start="1" level="2" numFormat="DIGIT">^1.^2.</hh:paraHead>'
        b'<hh:paraHead start="1" level="3" numFormat="DIGIT">^1.^2.^3.</hh:paraHead>'
        b'<hh:paraHead start="1" level="4" numFormat="HANGUL_SYLLABLE">^1.^2.^3.^4)</hh:paraHead>'
        b"</hh:numbering></hh:numberings></hh:head>"
    )
    import xml.etree.ElementTree as ET

    numbering = Numbering(header)
    shapes = ["1", "1", "2", "2", "1", "3", "3", "1"]
    got = [numbering.prefix(ET.fromstring(f'<p paraPrIDRef="{s}"/>'))[0] for s in shapes]
    # A skipped level counts from its start (Hancom: 3.1.1.가) after 3.), deeper levels restart.
    assert got == ["1.", "2.", "2.1.", "2.2.", "3.", "3.1.1.가)", "3.1.1.나)", "4."]


@pytest.mark.parametrize("suffix", [".hwpx", ".hwp"])
def test_hwp_outline_paragraphs_are_numbered_and_give_the_path(tmp_path, suffix):
    path = ff.make_hwp_document(
        tmp_path / f"plan{suffix}",
        [
            ("p", "사업 추진 계획"),
            ("h", 1, "개요"),
            ("p", "이 계획은 내년 사업을 정한다."),
            ("h", 2, "목적"),
            ("p", "목적은 생산성 향상이다."),
            ("h", 3, "세부 목표"),
            ("p", "세부 목표는 셋이다."),
            ("h", 2, "범위"),
            ("h", 1, "추진 배경"),
            ("p", "배경은 다음과 같다."),
        ],
    )
    doc = parse_file(path)
    assert doc.format == suffix[1:]
    assert headings(doc) == [
        ("사업 추진 계획", None),
        ("1. 개요", "1. 개요"),
        ("이 계획은 내년 사업을 정한다.", "1. 개요"),
        ("가. 목적", "1. 개요 > 가. 목적"),
        ("목적은 생산성 향상이다.", "1. 개요 > 가. 목적"),
        ("1) 세부 목표", "1. 개요 > 가. 목적 > 1) 세부 목표"),
        ("세부 목표는 셋이다.", "1. 개요 > 가. 목적 > 1) 세부 목표"),
        ("나. 범위", "1. 개요 > 나. 범위"),
        ("2. 추진 배경", "2. 추진 배경"),
        ("배경은 다음과 같다.", "2. 추진 배경"),
    ]
    # Each heading line goes into the chunk of the body under it; each chunk cites one place.
    chunks = chunks_of(doc)
    assert [(c.location(), c.text) for c in chunks] == [
        ("section 1", "사업 추진 계획"),
        ("1. 개요", "1. 개요\n이 계획은 내년 사업을 정한다."),
        ("1. 개요 > 가. 목적", "가. 목적\n목적은 생산성 향상이다."),
        ("1. 개요 > 가. 목적 > 1) 세부 목표", "1) 세부 목표\n세부 목표는 셋이다."),
        ("1. 개요 > 나. 범위", "나. 범위"),
        ("2. 추진 배경", "2. 추진 배경\n배경은 다음과 같다."),
    ]


@pytest.mark.parametrize("suffix", [".hwpx", ".hwp"])
def test_hwp_regulation_citations(tmp_path, suffix):
    path = ff.make_hwp_document(
        tmp_path / f"rule{suffix}",
        [
            ("p", "휴가 규정"),
            ("p", "제1장 총칙"),
            ("p", "제3조(연차 휴가) ① 입사 1년 이상 직원의 연차 휴가는 연 15일이다."),
            ("p", "② 3년 이상 근속하면 2년마다 1일씩 더한다."),
            ("p", "제4조(휴가의 종류) 휴가의 종류는 다음 표와 같다."),
            ("table", [["종류", "일수"], ["병가", "10일"]], "표 2. 휴가 일수"),
            ("p", "[표 3] 경조 휴가"),
            ("table", [["사유", "일수"], ["결혼", "5일"]], None),
            ("p", "부칙"),
            ("p", "이 규정은 2025년 1월 1일부터 시행한다."),
        ],
    )
    doc = parse_file(path)
    by_text = {b.text: b for b in doc.blocks}
    assert by_text["② 3년 이상 근속하면 2년마다 1일씩 더한다."].heading == "제1장 총칙 > 제3조(연차 휴가) > ②"
    table = next(b for b in doc.blocks if b.kind == "table" and "병가" in b.text)
    assert table.heading == "제1장 총칙 > 제4조(휴가의 종류) > 표 2. 휴가 일수"  # the 조 path, then the caption
    titled = next(b for b in doc.blocks if b.kind == "table" and "결혼" in b.text)
    assert titled.heading == "제1장 총칙 > 제4조(휴가의 종류) > [표 3] 경조 휴가"  # a title line before it
    assert by_text["이 규정은 2025년 1월 1일부터 시행한다."].heading == "부칙"
    assert all(b.section == "section 1" for b in doc.blocks)

    chunks = chunks_of(doc)
    located = {c.location(): c.text for c in chunks}
    # ① and ② share the article's chunk, which cites the article.
    assert "② 3년 이상" in located["제1장 총칙 > 제3조(연차 휴가)"]
    assert "병가 · 일수: 10일" in located["제1장 총칙 > 제4조(휴가의 종류) > 표 2. 휴가 일수"]
    assert located["부칙"] == "부칙\n이 규정은 2025년 1월 1일부터 시행한다."
    assert not any(c.text == "제1장 총칙" for c in chunks)  # never a chunk that is only a heading


def test_hwp_and_hwpx_give_the_same_paths(tmp_path):
    items = [("p", "제1조(목적) 이 규정은 휴가를 정한다."), ("h", 1, "개요"), ("p", "본문")]
    hwp = parse_file(ff.make_hwp_document(tmp_path / "a.hwp", items))
    hwpx = parse_file(ff.make_hwp_document(tmp_path / "a.hwpx", items))
    assert headings(hwp) == headings(hwpx)


def test_sample_regulation_cites_articles():
    doc = parse_file(SAMPLES / "휴가_규정.hwpx")
    chunks = chunks_of(doc)
    top = next(c for c in chunks if "연 15일이다" in c.text)
    assert top.location() == "제2장 휴가 > 제2조(연차 휴가)"
    table = next(c for c in chunks if "병가" in c.text)
    assert table.location() == "제2장 휴가 > 제4조(휴가의 종류) > 표 1. 휴가의 종류와 일수"


# ------------------------------------------------------------------------- other formats


def test_docx_heading_path(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Expense Policy", level=1)
    document.add_paragraph("Receipts are required over $25.")
    document.add_heading("Travel", level=2)
    document.add_heading("Hotels", level=3)
    document.add_paragraph("Hotels up to $180 per night.")
    document.add_heading("Meals", level=2)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Dinner", "$50"
    path = tmp_path / "policy.docx"
    document.save(str(path))

    doc = parse_file(path)
    by_text = {b.text: b for b in doc.blocks}
    assert by_text["Receipts are required over $25."].heading == "Expense Policy"
    assert by_text["Hotels up to $180 per night."].heading == "Expense Policy > Travel > Hotels"
    assert by_text["Hotels up to $180 per night."].section == "Hotels"  # section: the nearest heading, as before
    assert next(b for b in doc.blocks if b.kind == "table").heading == "Expense Policy > Meals"
    located = {c.location() for c in chunks_of(doc)}
    assert located == {"Expense Policy", "Expense Policy > Travel > Hotels", "Expense Policy > Meals"}


def test_docx_tables_are_named_by_their_captions(tmp_path):
    """A caption paragraph before a table ("Table 1. …", "[표 3] …") or in Word's Caption style after
    it ends the table's heading path, as HWPX and PDF captions do; one between two tables names the
    table after it; an ordinary line after a table names nothing."""
    import docx

    def table(document, rows):
        made = document.add_table(rows=len(rows), cols=len(rows[0]))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                made.cell(r, c).text = text

    document = docx.Document()
    document.add_heading("Travel Policy", level=1)
    document.add_paragraph("Table 1. Daily limits")
    table(document, [["Item", "Limit"], ["Meals", "$50"]])
    document.add_paragraph("Limits apply to every trip.")
    table(document, [["구분", "일수"], ["병가", "10일"]])
    document.add_paragraph("휴가 일수", style="Caption")  # Word's Insert Caption, below the table
    document.add_paragraph("[표 3] 경조 휴가")  # between two tables: names the one after it
    table(document, [["사유", "일수"], ["결혼", "5일"]])
    document.add_paragraph("표 4. 다음 표의 제목이 아닌 줄")  # after a named table, before no table
    document.add_heading("Notes", level=1)
    table(document, [["Note", "Value"], ["Taxi", "$40"]])
    document.add_paragraph("Table 5. Rates")  # after one table, right before the next: the next one's
    table(document, [["Rate", "Value"], ["Tax", "10%"]])
    document.add_paragraph("See the appendix.")
    path = tmp_path / "policy.docx"
    document.save(str(path))

    blocks = parse_file(path).blocks
    tables = {b.text.split("\n")[1]: b.heading for b in blocks if b.kind == "table"}
    assert tables == {"Meals | $50": "Travel Policy > Table 1. Daily limits",
                      "병가 | 10일": "Travel Policy > 휴가 일수",
                      "결혼 | 5일": "Travel Policy > [표 3] 경조 휴가",
                      "Taxi | $40": "Notes", "Tax | 10%": "Notes > Table 5. Rates"}
    captions = {b.text: b.heading for b in blocks if b.kind == "caption"}
    assert captions == {"Table 1. Daily limits": "Travel Policy > Table 1. Daily limits",
                        "휴가 일수": "Travel Policy > 휴가 일수", "[표 3] 경조 휴가": "Travel Policy > [표 3] 경조 휴가",
                        "Table 5. Rates": "Notes > Table 5. Rates"}
    assert next(b for b in blocks if b.text.startswith("표 4.")).kind == "paragraph"
    assert next(b for b in blocks if b.text == "See the appendix.").heading == "Notes"


def test_markdown_heading_path(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# 배포\n\n화요일 15:00\n\n## 절차\n\n1. smoke tests\n\n### 롤백\n\nrun down\n\n## 동결\n\n12월\n",
                    encoding="utf-8")
    doc = parse_file(path)
    assert [(b.text, b.heading) for b in doc.blocks if b.kind != "heading"] == [
        ("화요일 15:00", "배포"),
        ("1. smoke tests", "배포 > 절차"),
        ("run down", "배포 > 절차 > 롤백"),
        ("12월", "배포 > 동결"),
    ]
    assert [c.location() for c in chunks_of(doc)] == ["배포", "배포 > 절차", "배포 > 절차 > 롤백", "배포 > 동결"]


def test_html_heading_path(tmp_path):
    path = tmp_path / "p.html"
    path.write_text("<h1>요금</h1><p>기본</p><h2>할인</h2><p>학생</p><h2>환불</h2><p>7일</p>", encoding="utf-8")
    doc = parse_file(path)
    assert [(b.text, b.heading) for b in doc.blocks if b.kind != "heading"] == [
        ("기본", "요금"), ("학생", "요금 > 할인"), ("7일", "요금 > 환불")]


def test_pdf_page_and_numbered_headings():
    doc = parse_file(SAMPLES / "backup-procedure.pdf")
    restore = next(b for b in doc.blocks if b.text.startswith("A restore test"))
    assert (restore.page, restore.heading, restore.location()) == (2, "3. Restore test", "p. 2 · 3. Restore test")
    assert next(b for b in doc.blocks if b.page == 1).heading is None  # the title, before any heading
    assert {c.location() for c in chunks_of(doc)} >= {"p. 1 · 1. Nightly backups", "p. 2 · 4. Off-site copy"}


def test_pdf_heading_rules():
    def blocks(*texts):
        return [Block(text, page=1) for text in texts]

    found = heading_paths(blocks("1 Introduction", "Body.", "2 Method", "Body.", "2.1 Setup", "Body.",
                                 "5 Unrelated number", "Body.", "3 Results", "Body."))
    assert [b.heading for b in found if b.text == "Body."] == [
        "1 Introduction", "2 Method", "2 Method > 2.1 Setup", "2 Method > 2.1 Setup", "3 Results"]
    # A run of numbered lines is a list (or a table of contents), not headings; sentences are not titles.
    listed = heading_paths(blocks("1. Install the package", "2. Run the tests", "1. It ran at 02:00.", "Body."))
    assert all(b.heading is None and b.kind == "paragraph" for b in listed)


# ------------------------------------------------------------------------------ chunking


def doc(*blocks):
    return ParsedDocument(format="hwpx", parser="test", blocks=list(blocks))


def test_heading_lines_join_the_body_that_follows():
    chunks = chunks_of(doc(
        Block("목차", kind="heading", heading="목차"),
        Block("1. 개요", kind="heading", heading="1. 개요"),
        Block("가. 목적", kind="heading", heading="1. 개요 > 가. 목적"),
        Block("목적은 생산성이다.", heading="1. 개요 > 가. 목적"),
    ))
    # "목차" is not a parent of the body: it goes on its own; the parents lead into the body.
    assert [(c.heading, c.text) for c in chunks] == [
        ("목차", "목차"),
        ("1. 개요 > 가. 목적", "1. 개요\n가. 목적\n목적은 생산성이다."),
    ]


def test_chunks_break_where_the_heading_changes_but_sub_items_share_one():
    chunks = chunks_of(doc(
        Block("제3조(연차 휴가) ① 15일이다.", heading="제3조(연차 휴가) > ①"),
        Block("② 25일까지다.", heading="제3조(연차 휴가) > ②"),
        Block("1. 예외가 있다.", heading="제3조(연차 휴가) > ② > 1."),
        Block("제4조(병가) 10일이다.", heading="제4조(병가)"),
    ))
    assert [(c.location(), c.text.count("\n") + 1) for c in chunks] == [("제3조(연차 휴가)", 3), ("제4조(병가)", 1)]
    only_second = chunks_of(doc(Block("② 25일까지다.", heading="제3조(연차 휴가) > ②")))
    assert only_second[0].location() == "제3조(연차 휴가) > ②"
