"""Parsers on documents the tests make, plus the shipped samples; every bad input has a test."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from stack.pipeline.errors import (
    ArchiveTooLarge,
    CorruptDocument,
    DistributionProtected,
    EmptyFile,
    FileTooLarge,
    NoText,
    PasswordProtected,
    PipelineError,
    UnsupportedFormat,
)
from stack.pipeline.parsers import parse_file
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.pdf import join_lines
from tests.support import fixtures_factory as ff

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def assert_helpful(error: PipelineError) -> None:
    assert error.message and error.hint, "every error says what happened and what to do next"


# ---------------------------------------------------------------------------- clean_text


def test_clean_text():
    raw = "a\ue000b\U000f0001c\x00\x07d  \u3000 e\ud800f\r\ng"
    assert clean_text(raw) == "abcd ef\ng"
    assert clean_text("\u1100\u1161") == "가"  # NFC
    assert clean_text("tab\tkept") == "tab\tkept"


# ------------------------------------------------------------------------------ HWP/HWPX


def test_hwpx_paragraphs_and_table(tmp_path):
    path = ff.make_hwpx(
        tmp_path / "a.hwpx", ["연차 휴가는 15일이다.", "둘째 문단"], [["종류", "일수"], ["연차", "15일"]]
    )
    doc = parse_file(path)
    assert doc.format == "hwpx"
    assert "연차 휴가는 15일이다." in doc.text
    tables = [b for b in doc.blocks if b.kind == "table"]
    assert tables and tables[0].rows == (("종류", "일수"), ("연차", "15일"))
    assert all(b.section == "section 1" for b in doc.blocks)


def test_hwp_and_hwpx_same_text(tmp_path):
    paragraphs = ["첫 문단입니다.", "둘째 문단: 신청은 3일 전까지."]
    table = [["a", "b"], ["가", "나"]]
    hwp = parse_file(ff.make_hwp(tmp_path / "a.hwp", paragraphs, table))
    hwpx = parse_file(ff.make_hwpx(tmp_path / "a.hwpx", paragraphs, table))
    assert hwp.format == "hwp" and hwpx.format == "hwpx"
    assert hwp.text == hwpx.text


def test_hwp5_named_hwpx_parses_as_hwp(tmp_path):
    path = ff.make_hwp(tmp_path / "x.hwp", ["내용"]).rename(tmp_path / "x.hwpx")
    assert parse_file(path).format == "hwp"


def test_password_hwp(tmp_path):
    with pytest.raises(PasswordProtected) as info:
        parse_file(ff.make_hwp5_header_only(tmp_path / "pw.hwp", flags=0b011))
    assert "password" in info.value.message and "암호" in info.value.message
    assert_helpful(info.value)


def test_password_flag_on_real_hwp(tmp_path):
    path = ff.set_hwp5_flags(ff.make_hwp(tmp_path / "r.hwp", ["비밀"]), 0b011)
    with pytest.raises(PasswordProtected):
        parse_file(path)


def test_distribution_hwp(tmp_path):
    with pytest.raises(DistributionProtected) as info:
        parse_file(ff.make_hwp5_header_only(tmp_path / "dist.hwp", flags=0b101))
    assert "distribution" in info.value.message and "배포용" in info.value.message
    assert_helpful(info.value)


def test_unhwp_distribution_placeholder_is_failure():
    from stack.pipeline.parsers.hwp import _check_unhwp_text

    with pytest.raises(DistributionProtected):
        _check_unhwp_text("이 문서는 상위 버전의 배포용 문서입니다. 문서를 읽으려면 …", "x.hwp")


def test_password_hwpx(tmp_path):
    src = ff.make_hwpx(tmp_path / "a.hwpx", ["비밀 문서"])
    out = tmp_path / "pw.hwpx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "META-INF/manifest.xml":
                data = (
                    b'<?xml version="1.0" encoding="UTF-8"?><odf:manifest '
                    b'xmlns:odf="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                    b'<odf:file-entry odf:full-path="Contents/section0.xml" odf:media-type="application/xml">'
                    b'<odf:encryption-data odf:checksum-type="SHA1" odf:checksum="x">'
                    b'<odf:algorithm odf:algorithm-name="AES"/></odf:encryption-data></odf:file-entry></odf:manifest>'
                )
            elif info.filename == "Contents/section0.xml":
                data = bytes(range(256)) * 4
            zout.writestr(info, data)
    with pytest.raises(PasswordProtected) as info:
        parse_file(out)
    assert "password" in info.value.message and "암호" in info.value.message


def test_truncated_hwp(tmp_path):
    data = ff.make_hwp(tmp_path / "a.hwp", ["문단 하나 " * 50] * 40).read_bytes()
    cut = tmp_path / "cut.hwp"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDocument) as info:
        parse_file(cut)
    assert_helpful(info.value)


def test_truncated_hwpx(tmp_path):
    data = ff.make_hwpx(tmp_path / "a.hwpx", ["문단"] * 10).read_bytes()
    cut = tmp_path / "cut.hwpx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDocument):
        parse_file(cut)


def test_hwpx_zip_bomb(tmp_path):
    path = ff.add_bomb_member(
        ff.make_hwpx(tmp_path / "bomb.hwpx", ["x"]), name="BinData/big.bin", size=64 << 20
    )
    with pytest.raises(ArchiveTooLarge) as info:
        parse_file(path, max_unzipped_bytes=32 << 20)
    assert_helpful(info.value)


def test_ratio_bomb_under_total_limit(tmp_path):
    path = ff.add_bomb_member(
        ff.make_hwpx(tmp_path / "bomb.hwpx", ["x"]), name="BinData/big.bin", size=8 << 20
    )
    with pytest.raises(ArchiveTooLarge) as info:
        parse_file(path)
    assert "expands" in info.value.message


def test_docx_zip_bomb(tmp_path):
    path = ff.add_bomb_member(ff.make_docx(tmp_path / "bomb.docx"), name="word/media/big.bin", size=64 << 20)
    with pytest.raises(ArchiveTooLarge):
        parse_file(path, max_unzipped_bytes=32 << 20)


def test_zip_member_lying_about_its_size(tmp_path):
    template = ff.make_docx(tmp_path / "t.docx")
    path = ff.make_lying_zip_bomb(
        tmp_path / "lie.docx", template, name="word/media/x.bin", real_size=16 << 20
    )
    with pytest.raises((ArchiveTooLarge, CorruptDocument)):
        parse_file(path)


# ----------------------------------------------------------------------------------- PDF


def test_pdf_pages_and_text(tmp_path):
    doc = parse_file(
        ff.make_pdf(tmp_path / "a.pdf", ["Nightly backups run at 02:00.", "Restore test monthly."])
    )
    assert doc.format == "pdf"
    assert [b.page for b in doc.blocks] == [1, 2]
    assert "02:00" in doc.blocks[0].text


def test_encrypted_pdf(tmp_path):
    with pytest.raises(PasswordProtected) as info:
        parse_file(ff.make_pdf(tmp_path / "e.pdf", ["secret"], encrypt="hunter2"))
    assert "password" in info.value.message
    assert_helpful(info.value)


def test_pdf_without_text_layer(tmp_path):
    with pytest.raises(NoText) as info:
        parse_file(ff.make_image_only_pdf(tmp_path / "scan.pdf"))
    assert "OCR" in info.value.message


def test_broken_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage without xref")
    with pytest.raises(CorruptDocument):
        parse_file(path)


def test_join_lines_korean_and_english():
    lines = [
        ("연차 휴가 신청은 그룹웨어에서 하며 팀장의 승", True),
        ("인을 받아야 한다.", False),
        ("Backups are verified with a check-", True),
        ("sum every night.", False),
        ("첫 줄은 짧다", False),
        ("둘째 문단", False),
    ]
    assert join_lines(lines) == [
        "연차 휴가 신청은 그룹웨어에서 하며 팀장의 승인을 받아야 한다.",
        "Backups are verified with a checksum every night.",
        "첫 줄은 짧다",
        "둘째 문단",
    ]


# ---------------------------------------------------------------------------------- DOCX


def test_docx_order_tables_headers(tmp_path):
    path = ff.make_docx(
        tmp_path / "a.docx",
        heading="Expense Policy",
        body="Receipts over $25.",
        header="ACME internal",
        table=[["Meals", "$50"], ["Hotel", "$180"]],
        nested=True,
    )
    doc = parse_file(path)
    kinds = [b.kind for b in doc.blocks]
    assert kinds[0] == "header" and doc.blocks[0].section == "header"
    assert "heading" in kinds
    texts = [b.text for b in doc.blocks]
    assert texts.index("Receipts over $25.") < next(i for i, b in enumerate(doc.blocks) if b.kind == "table")
    table = next(b for b in doc.blocks if b.kind == "table")
    assert "inner-a" in table.text and "$180" in table.text
    assert texts[-1] == "After the table."


def test_docx_named_pdf(tmp_path):
    data = ff.make_docx(tmp_path / "a.docx", body="Hello from DOCX").read_bytes()
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    doc = parse_file(path)
    assert doc.format == "docx" and "Hello from DOCX" in doc.text


def test_strict_ooxml_fallback(tmp_path):
    src = ff.make_docx(tmp_path / "a.docx", body="Strict body text")
    out = tmp_path / "strict.docx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            data = data.replace(
                b"http://schemas.openxmlformats.org/wordprocessingml/2006/main",
                b"http://purl.oclc.org/ooxml/wordprocessingml/main",
            ).replace(
                b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
                b"http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
            )
            zout.writestr(info, data)
    doc = parse_file(out)
    assert "Strict body text" in doc.text


# --------------------------------------------------------------------- text, limits, junk


def test_markdown_sections(tmp_path):
    path = tmp_path / "n.md"
    path.write_text("# 배포\n\n화요일 15:00\n\n## Rollback\n\nrun down\n", encoding="utf-8")
    doc = parse_file(path)
    body = [b for b in doc.blocks if b.kind != "heading"]
    assert [(b.text, b.section) for b in body] == [("화요일 15:00", "배포"), ("run down", "Rollback")]


def test_html_drops_script_keeps_tables(tmp_path):
    path = tmp_path / "p.html"
    path.write_text(
        "<!doctype html><html><head><script>evil()</script><style>p{}</style></head><body>"
        "<h2>요금</h2><p>본문</p><table><tr><td>a</td><td>b</td></tr></table></body></html>",
        encoding="utf-8",
    )
    doc = parse_file(path)
    assert "evil" not in doc.text and "p{}" not in doc.text
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.rows == (("a", "b"),)
    assert all(b.section == "요금" for b in doc.blocks)


def test_cp949_text(tmp_path):
    path = tmp_path / "k.txt"
    path.write_bytes("첫 문단\n\n둘째 문단".encode("cp949"))
    doc = parse_file(path)
    assert [b.text for b in doc.blocks] == ["첫 문단", "둘째 문단"]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.hwp"
    path.write_bytes(b"")
    with pytest.raises(EmptyFile) as info:
        parse_file(path)
    assert_helpful(info.value)


def test_over_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"a" * 2048)
    with pytest.raises(FileTooLarge) as info:
        parse_file(path, max_bytes=1024)
    assert_helpful(info.value)


def test_unknown_binary(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(UnsupportedFormat) as info:
        parse_file(path)
    assert_helpful(info.value)


def test_gif_named_hwp(tmp_path):
    path = tmp_path / "photo.hwp"
    path.write_bytes(b"GIF89a" + bytes(64))
    with pytest.raises(UnsupportedFormat):
        parse_file(path)


def test_legacy_doc_rejected(tmp_path):
    with pytest.raises(UnsupportedFormat):
        parse_file(ff.make_legacy_doc(tmp_path / "old.doc"))


# -------------------------------------------------------------------------------- samples


def test_sample_hwpx():
    doc = parse_file(SAMPLES / "휴가_규정.hwpx")
    assert "연 15일" in doc.text and "3일 전까지" in doc.text
    assert any(b.kind == "table" and "병가" in b.text for b in doc.blocks)


def test_sample_pdf():
    doc = parse_file(SAMPLES / "backup-procedure.pdf")
    assert {b.page for b in doc.blocks} == {1, 2}
    assert "02:00" in doc.text and "30 days" in doc.text and "monthly" in doc.text


def test_sample_docx():
    doc = parse_file(SAMPLES / "expense-policy.docx")
    assert any(b.kind == "header" for b in doc.blocks)
    assert any(b.kind == "table" and "$180 per night" in b.text for b in doc.blocks)


def test_sample_markdown():
    doc = parse_file(SAMPLES / "deployment-notes.md")
    assert doc.format == "markdown" and "화요일" in doc.text
