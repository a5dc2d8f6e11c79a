"""What each file lost (issue #26 part 5), on real documents that hold such parts.

Skips with a reason where the corpus is absent, except under CI=true, where its absence fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.contract import ParseReport
from stack.pipeline.errors import NoText
from stack.pipeline.ocr import OcrOptions, missing
from stack.pipeline.parsers import parse_file
from tests.support.suite import require_corpus, skip_or_fail

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus() -> Path:
    return require_corpus()


@pytest.mark.parametrize(("name", "expected"), [
    ("hwp/rhwp/eq-01.hwp", {"equation": 3}),  # 수식: Hancom's equation script is not text
    ("hwp/hwpjs/latex.hwpx", {"image_no_text": 1, "equation": 20}),
    ("hwp/hwpjs/latex.hwp", {"image_no_text": 1, "equation": 20}),  # the same document saved as HWP 5
    ("hwp/hwpxlib/error__20230426__HwpxTest1.hwpx", {"ole_object": 1, "chart": 1}),
    ("hwp/rhwp/form-01.hwp", {"form_control": 5}),
    ("hwp/pyhwp/sample-5017-pics.hwp", {"image_no_text": 11}),
    ("docx/python-docx__having-images.docx", None),  # pictures only, OCR off: NoText names them
    ("docx/docx2python__nested_paragraphs_in_header.docx", {"image_no_text": 3}),
])
def test_parsers_report_the_parts_they_skip(corpus, name, expected):
    if expected is None:
        with pytest.raises(NoText, match="images with no text: 6"):
            parse_file(corpus / name, ocr=OcrOptions(mode="off"))
        return
    document = parse_file(corpus / name)
    assert document.report.counts() == expected
    assert all(f.reason for f in document.report.findings)


def test_a_docx_of_pictures_only_has_its_body_pictures_read_by_ocr(corpus):
    """Five pictures (logos) and no text in the body: OCR reads the three large enough to hold text
    (ocr = auto); the two small ones (140×56) and the header's picture stay reported as not read."""
    if missing("kor+eng"):
        skip_or_fail(f"OCR is not installed here: {missing('kor+eng')} (scripts/setup-test-host.sh)", "OCR")
    document = parse_file(corpus / "docx/python-docx__having-images.docx")
    assert len(document.metadata["ocr"]["pictures"]) == 3 and all(block.ocr for block in document.blocks)
    assert "THE TRUTH" in document.text
    assert document.report.counts()["image_no_text"] == 3
    assert sum("too small" in f.reason for f in document.report.findings if f.kind == "image_no_text") == 1
    assert {f.kind for f in document.report.findings} <= {"image_no_text", "ocr_low_confidence"}


def test_pictures_with_captions_or_text_boxes_are_not_reported(corpus):
    """A document whose shapes all carry text loses nothing: no finding is invented."""
    for name in ("hwp/hwpxlib/reader_writer__SimpleTextArt.hwpx", "docx/docx2python__nested_paragraphs.docx"):
        assert not parse_file(corpus / name).report, name


def test_a_failed_hwpx_parse_reports_the_fallback(corpus):
    document = parse_file(corpus / "hwp/rhwp/20250130-hongbo_saved.hwp")
    assert document.parser == "unhwp"
    assert document.report.counts() == {"fallback_parser": 1}


def _pdf_with_a_scanned_page(corpus: Path, out: Path) -> Path:
    """pdflatex-4-pages.pdf with the corpus's text-less (image-only) PDF page put in as page 3."""
    import pypdfium2 as pdfium

    merged = pdfium.PdfDocument(str(corpus / "pdf" / "pdflatex-4-pages.pdf"))
    scan = pdfium.PdfDocument(str(corpus / "pdf" / "hwpjs_table_pdf_generated.pdf"))
    merged.import_pages(scan, [0], index=2)
    merged.save(str(out))
    merged.close()
    scan.close()
    return out


def test_a_pdf_page_without_text_is_reported_by_its_page(corpus, tmp_path):
    document = parse_file(_pdf_with_a_scanned_page(corpus, tmp_path / "mixed.pdf"))
    assert [(f.kind, f.where) for f in document.report.findings] == [("page_no_text", "p. 3")]
    assert {block.page for block in document.blocks} == {1, 2, 4, 5}


@pytest.mark.slow
def test_the_pipeline_stores_the_report_with_the_document(corpus, pipeline, tmp_path):
    """Through the real embedded pipeline: the result says what was lost, the catalog keeps it, a
    file that lost nothing has an empty report."""
    files = [corpus / "hwp/rhwp/eq-01.hwp", _pdf_with_a_scanned_page(corpus, tmp_path / "mixed.pdf"),
             corpus / "pdf/pdflatex-outline.pdf"]
    results = pipeline.ingest_files(files)
    assert [r.status for r in results] == ["done"] * 3, [r.error for r in results]
    assert ParseReport.from_dict(results[0].report).counts() == {"equation": 3}
    assert results[1].report["counts"] == {"page_no_text": 1} and results[2].report is None
    stored = {r.file_name: pipeline.document(r.document_id).report for r in results}
    assert stored["eq-01.hwp"]["counts"] == {"equation": 3}
    assert stored["mixed.pdf"]["findings"][0]["where"] == "p. 3"
    assert stored["pdflatex-outline.pdf"]["counts"] == {}
