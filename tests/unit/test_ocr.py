"""OCR with the real tesseract (Debian's tesseract-ocr-kor/-eng) on pages made here: image files,
multi-page TIFF, scanned and mixed PDFs, orientation, provenance, progress, cancel, a page that
cannot be read, OCR off, and a machine without tesseract."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from stack.pipeline.errors import Cancelled, NoText, OcrUnavailable
from stack.pipeline.ocr import INSTALL_LINE, OcrOptions, missing
from stack.pipeline.parsers import parse_file
from stack.pipeline.parsers.scanned import read_scanned
from tests.support import scans

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))
from parse_quality import bigram_f1

KOREAN = "제3조(연차 휴가) 1년간 80퍼센트 이상 출근한 근로자에게는 15일의 유급휴가를 주어야 한다."
ENGLISH = "Meals are limited to 50,000 won per person, and receipts must be kept for five years."
SECOND = "사용자는 근로자가 청구한 시기에 휴가를 주어야 한다."


@pytest.fixture(autouse=True)
def _tesseract():
    scans.require_ocr()


def _short_page(text: str):
    """One A4 page at 300 dpi holding ``text``, cropped to the text (tesseract's time grows with area)."""
    page = scans.render_pages([text])[0]
    return page.crop((0, 0, page.width, 700))


def test_png_is_read_with_provenance(tmp_path):
    path = scans.save_scan([_short_page(f"{KOREAN}\n{ENGLISH}")], tmp_path / "scan.png")
    document = parse_file(path)
    assert document.format == "image" and document.parser == "tesseract"
    assert bigram_f1(f"{KOREAN} {ENGLISH}", document.text) >= 0.9, document.text
    assert "출근한 근로자에게는" in document.text  # Korean spacing put back, not "출 근 한 근 로 자"
    assert all(block.ocr and block.page == 1 and block.confidence > 70 for block in document.blocks)
    assert document.blocks[0].location() == "p. 1 (OCR)"
    report = document.metadata["ocr"]
    assert report["pages"][0]["page"] == 1 and report["pages"][0]["confidence"] > 70
    assert report["low_confidence_pages"] == [] and report["failed_pages"] == []
    assert document.to_dict()["blocks"][0]["confidence"] == document.blocks[0].confidence


def test_multipage_tiff_turns_an_upside_down_page_and_reports_progress(tmp_path):
    pages = [_short_page(KOREAN), scans.upside_down(_short_page(SECOND))]
    path = scans.save_scan(pages, tmp_path / "fax.tif")
    seen = []
    document = parse_file(path, ocr=OcrOptions(on_page=lambda done, total: seen.append((done, total))))
    assert seen == [(1, 2), (2, 2)]
    assert {block.page for block in document.blocks} == {1, 2}
    assert [page["rotated"] for page in document.metadata["ocr"]["pages"]] == [0, 180]
    second = " ".join(block.text for block in document.blocks if block.page == 2)
    assert bigram_f1(SECOND, second) >= 0.9, second


def test_mixed_pdf_keeps_its_text_layer_and_reads_the_scanned_page(tmp_path):
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    image = tmp_path / "page2.png"
    _short_page(ENGLISH).save(image, dpi=(300, 300))
    path = tmp_path / "mixed.pdf"
    c = canvas.Canvas(str(path), pagesize=A4)
    c.drawString(72, 760, "The first page has a real text layer.")
    c.showPage()
    width = A4[0]
    c.drawImage(ImageReader(str(image)), 0, A4[1] - width * 700 / 2481, width=width, height=width * 700 / 2481)
    c.showPage()
    c.save()
    document = parse_file(path)
    assert document.parser == "pypdfium2+tesseract"
    first = [block for block in document.blocks if block.page == 1]
    second = [block for block in document.blocks if block.page == 2]
    assert first and not any(block.ocr for block in first)
    assert second and all(block.ocr for block in second)
    assert bigram_f1(ENGLISH, " ".join(block.text for block in second)) >= 0.9
    assert [page["page"] for page in document.metadata["ocr"]["pages"]] == [2]
    with pytest.raises(NoText, match="OCR is off"):
        parse_file(scans.save_scan([_short_page(ENGLISH)], tmp_path / "scan.pdf"), ocr=OcrOptions(mode="off"))


def test_a_page_tesseract_cannot_read_fails_that_page_only():
    from PIL import Image

    pages = [(1, lambda: _short_page(ENGLISH)), (2, lambda: Image.new("L", (0, 0))), (3, lambda: 1 / 0)]
    blocks, report = read_scanned("bad.tif", pages, 3, OcrOptions())
    assert {block.page for block in blocks} == {1}
    assert report["failed_pages"] == [2, 3]
    assert "ZeroDivisionError" in report["pages"][2]["error"]


def test_pages_failed_or_under_the_threshold_are_named_in_the_parse_report(tmp_path):
    """Real tesseract; a threshold no page reaches (99.9) makes page 1 "low confidence" for sure."""
    from PIL import Image

    from stack.contract import ParseReport

    findings = ParseReport()
    pages = [(1, lambda: _short_page(ENGLISH)), (2, lambda: Image.new("L", (0, 0)))]
    blocks, report = read_scanned("fax.tif", pages, 2, OcrOptions(min_confidence=99.9), findings=findings)
    assert report["low_confidence_pages"] == [1] and report["failed_pages"] == [2]
    assert [(f.kind, f.where) for f in findings.findings] == [("ocr_low_confidence", "p. 1"), ("ocr_failed", "p. 2")]
    confidence = report["pages"][0]["confidence"]
    assert f"mean word confidence {confidence:.0f}" in findings.findings[0].reason
    assert "tesseract" in findings.findings[1].reason
    assert blocks and findings.summary().startswith("pages read by OCR with low confidence")

    path = scans.save_scan([_short_page(ENGLISH)], tmp_path / "scan.png")
    assert not parse_file(path).report  # read well: nothing to name
    document = parse_file(path, ocr=OcrOptions(min_confidence=99.9))
    assert document.to_dict()["report"]["counts"] == {"ocr_low_confidence": 1}


def test_a_scanned_pdf_page_ocr_could_not_read_is_reported_as_failed_not_as_textless(tmp_path, monkeypatch):
    """Page 2's image cannot be made (its render raises): ocr_failed with the reason, not page_no_text."""
    import pypdfium2

    path = scans.save_scan([_short_page(ENGLISH), _short_page(SECOND)], tmp_path / "scan.pdf")
    real_render, calls = pypdfium2.PdfPage.render, []

    def render(page, **kw):  # the second page's image cannot be made (OCR itself is real)
        calls.append(1)
        return real_render(page, **kw) if len(calls) == 1 else 1 / 0

    monkeypatch.setattr(pypdfium2.PdfPage, "render", render)
    document = parse_file(path)
    assert {block.page for block in document.blocks} == {1}
    assert [(f.kind, f.where) for f in document.report.findings] == [("ocr_failed", "p. 2")]
    assert "ZeroDivisionError" in document.report.findings[0].reason


def test_cancel_between_pages():
    calls = []
    options = OcrOptions(on_page=lambda done, total: calls.append(done), should_cancel=lambda: bool(calls))
    pages = [(1, lambda: _short_page(ENGLISH)), (2, lambda: _short_page(ENGLISH))]
    with pytest.raises(Cancelled, match="page 2"):
        read_scanned("long.tif", pages, 2, options)
    assert calls == [1]


def test_without_tesseract_a_scan_fails_with_the_apt_get_line(tmp_path, monkeypatch):
    path = scans.save_scan([_short_page(ENGLISH)], tmp_path / "scan.jpg")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a machine where tesseract was never installed
    assert shutil.which("tesseract") is None
    with pytest.raises(OcrUnavailable) as info:
        parse_file(path)
    assert INSTALL_LINE in info.value.hint and "tesseract" in info.value.message
    assert info.value.code == "ocr_unavailable"
    monkeypatch.undo()
    assert missing("kor+eng") is None
    assert "xyz" in missing("kor+xyz")


def test_a_scan_ingests_and_answers_with_an_ocr_citation(pipeline, tmp_path):
    """The real pipeline (embedded): progress says ocr 1/1, chunks and hits carry ocr, citations say (OCR)."""
    path = scans.save_scan([_short_page(f"{KOREAN}\n{ENGLISH}")], tmp_path / "연차규정.png")
    stages = []
    result = pipeline.ingest_file(path, progress=lambda stage, fraction: stages.append(stage))
    assert result.status == "done", result.error
    assert "ocr 1/1" in stages and stages.index("ocr 1/1") < stages.index("chunking")
    record = pipeline.document(result.document_id)
    assert record.format == "image" and any("ocr 1 page" in line for line in record.log)
    hits = pipeline.search("유급휴가 며칠")
    assert hits and hits[0].location == "p. 1 (OCR)" and hits[0].metadata["ocr"] is True
    answer = pipeline.ask("연차 휴가는 며칠인가요?")
    assert "15일" in answer.answer and answer.sources[0].location == "p. 1 (OCR)"

    # A scanned page pasted into an HWPX with no text of its own: read, cited as OCR of its section.
    image = tmp_path / "scan2.png"
    _short_page(SECOND).save(image, format="PNG", dpi=(300, 300))
    path = scans.document_with_picture(tmp_path / "휴가시기.hwpx", image.read_bytes())
    result = pipeline.ingest_file(path)
    assert result.status == "done", result.error
    answer = pipeline.ask("근로자가 청구한 시기에 무엇을 주어야 하나요?")
    assert "청구한 시기" in answer.answer and answer.sources[0].location == "section 1 (OCR)"


def test_doctor_names_a_missing_model_with_the_apt_get_line():
    from ragctl.checks import ocr_check

    assert ocr_check("auto", "kor+eng").status == "ok"
    assert ocr_check("off", "kor+xyz").status == "ok"  # off: nothing to check
    finding = ocr_check("auto", "kor+xyz")
    assert finding.status == "warn" and "xyz" in finding.detail and finding.hint == INSTALL_LINE
