"""OCR over the real-world corpus: a real document's text as a scanned PDF, and the corpus's own PDF
with no text layer (an empty table: OCR runs and finds nothing, and says so)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stack.pipeline.errors import NoText
from stack.pipeline.parsers import parse_file
from tests.support import scans

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))
from parse_quality import bigram_f1

pytestmark = pytest.mark.corpus


@pytest.fixture(autouse=True)
def _tesseract():
    scans.require_ocr("corpus")


def test_a_real_korean_notice_scanned_reads_back(corpus, tmp_path):
    source = parse_file(corpus / "hwp/python-hwpx/m3_gongmun_gold__mfds_admin_notice.hwpx")
    text = " ".join(block.text for block in source.blocks if block.kind in ("paragraph", "heading", "list"))
    scan = scans.save_scan(scans.render_pages([text[:900]]), tmp_path / "notice-scan.pdf")
    document = parse_file(scan)
    assert document.parser == "pypdfium2+tesseract" and all(block.ocr for block in document.blocks)
    assert bigram_f1(document.text, text[:900]) >= 0.9, document.text


def test_the_corpus_pdf_without_text_says_ocr_found_nothing(corpus):
    with pytest.raises(NoText, match="OCR found no text"):
        parse_file(corpus / "pdf/hwpjs_table_pdf_generated.pdf")
