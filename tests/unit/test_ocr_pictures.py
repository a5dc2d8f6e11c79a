"""Pictures inside HWP, HWPX and DOCX files read by the real tesseract when their section has no
text of its own (a scanned page pasted into a 한글 or Word file), and left alone, but reported,
when it has (a logo beside real text), or when OCR is off."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from stack.pipeline.errors import NoText
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers import parse_file
from stack.pipeline.parsers.pictures import MIN_OWN_TEXT
from tests.support import scans

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))
from parse_quality import bigram_f1

SCANNED = "제3조(연차 휴가) 1년간 80퍼센트 이상 출근한 근로자에게는 15일의 유급휴가를 주어야 한다."
OWN_TEXT = "이 규정은 회사의 모든 직원에게 적용되며, 인사팀이 관리한다."


@pytest.fixture(autouse=True)
def _tesseract():
    scans.require_ocr()


@pytest.fixture(scope="module")
def scan_png() -> bytes:
    """A scanned page (cropped to its text: tesseract's time grows with area), as PNG at 300 dpi."""
    page = scans.render_pages([SCANNED])[0]
    buffer = io.BytesIO()
    page.crop((0, 0, page.width, 700)).save(buffer, format="PNG", dpi=(300, 300))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["scan.hwpx", "scan.hwp", "scan.docx"])
def test_a_document_whose_only_content_is_a_scanned_page_is_read_by_ocr(tmp_path, scan_png, name):
    document = parse_file(scans.document_with_picture(tmp_path / name, scan_png))
    assert document.parser.endswith("+tesseract")
    assert bigram_f1(SCANNED, document.text) >= 0.9, document.text
    assert document.blocks and all(block.ocr and block.confidence > 70 and block.page is None
                                   for block in document.blocks)
    if not name.endswith(".docx"):
        assert document.blocks[0].location() == "section 1 (OCR)"
    assert not document.report  # the picture was read: nothing lost
    summary = document.metadata["ocr"]
    assert [p["picture"] for p in summary["pictures"]] == [1] and summary["pages"][0]["confidence"] > 70


def test_a_picture_beside_text_of_its_own_is_reported_not_read_unless_ocr_is_always(tmp_path, scan_png):
    assert len("".join(OWN_TEXT.split())) >= MIN_OWN_TEXT
    path = scans.document_with_picture(tmp_path / "with-text.hwpx", scan_png, OWN_TEXT)
    document = parse_file(path)
    assert document.text == OWN_TEXT and "ocr" not in document.metadata
    [finding] = document.report.findings
    assert (finding.kind, finding.where) == ("image_no_text", "section 1") and "text of its own" in finding.reason

    always = parse_file(path, ocr=OcrOptions(mode="always"))
    assert always.blocks[0].text == OWN_TEXT and not always.blocks[0].ocr
    assert bigram_f1(SCANNED, " ".join(b.text for b in always.blocks if b.ocr)) >= 0.9
    assert not always.report


def test_ocr_off_reads_no_picture(tmp_path, scan_png):
    path = scans.document_with_picture(tmp_path / "scan.docx", scan_png)
    with pytest.raises(NoText) as info:
        parse_file(path, ocr=OcrOptions(mode="off"))
    assert "images with no text: 1" in info.value.message


def test_an_icon_is_too_small_to_be_read(tmp_path):
    """A 40×40 picture (a bullet, an icon) costs no tesseract run: reported as not read, and why."""
    from PIL import Image

    from stack.contract import ParseReport
    from stack.pipeline.parsers.pictures import Picture, PictureUnit, read_pictures

    buffer = io.BytesIO()
    Image.new("RGBA", (40, 40)).save(buffer, format="PNG")
    findings = ParseReport()
    unit = PictureUnit("", 0, [Picture("icon", "section 1")])
    blocks, summary = read_pictures("icon.hwpx", [], [unit], {"icon": buffer.getvalue()}.__getitem__,
                                    OcrOptions(), findings)
    assert blocks == [] and summary == {}
    assert [(f.kind, f.where) for f in findings.findings] == [("image_no_text", "section 1")]
    assert "40×40 pixels, too small" in findings.findings[0].reason
