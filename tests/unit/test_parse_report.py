"""The per-file parse report (issue #26 part 5): its wire shape and how the catalog keeps it."""

from __future__ import annotations

import pytest

from stack.contract import FINDING_KINDS, MAX_FINDINGS, ParseReport
from stack.pipeline.catalog import Catalog, DocumentRecord


def test_parts_of_one_kind_place_and_reason_are_counted_on_one_finding():
    report = ParseReport()
    for _ in range(522):
        report.add("equation", "section 1", "an equation is not read")
    report.add("image_no_text", "section 1", "a picture")
    report.add("equation", "section 2", "an equation is not read")
    assert [(f.kind, f.where, f.count) for f in report.findings] == [
        ("equation", "section 1", 522), ("image_no_text", "section 1", 1), ("equation", "section 2", 1)]
    assert report.counts() == {"equation": 523, "image_no_text": 1}
    assert report.summary() == f"{FINDING_KINDS['equation']}: 523, {FINDING_KINDS['image_no_text']}: 1"


def test_past_the_listing_cap_parts_are_still_counted():
    report = ParseReport()
    for page in range(MAX_FINDINGS + 50):
        report.add("page_no_text", f"p. {page + 1}", "no text layer")
    assert len(report.findings) == MAX_FINDINGS
    assert report.counts() == {"page_no_text": MAX_FINDINGS + 50}
    again = ParseReport.from_dict(report.to_dict())
    assert again.counts() == report.counts() and again.findings == report.findings


def test_an_unknown_kind_is_refused_so_every_kind_has_a_label():
    with pytest.raises(ValueError, match="FINDING_KINDS"):
        ParseReport().add("cosmic_rays", "", "why")
    assert not ParseReport() and ParseReport().summary() == ""


def test_the_sqlite_catalog_stores_the_report_and_migrates_an_older_file(tmp_path):
    import sqlite3

    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as db:  # a catalog written before the report column existed
        db.execute("CREATE TABLE documents (id TEXT NOT NULL, collection TEXT NOT NULL, file_name TEXT NOT NULL, "
                   "stored_path TEXT, format TEXT, parser TEXT, size INTEGER NOT NULL, status TEXT NOT NULL, "
                   "chunks INTEGER NOT NULL DEFAULT 0, error_code TEXT, error TEXT, embed_model TEXT, "
                   "timings TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, updated_at REAL NOT NULL, "
                   "PRIMARY KEY (collection, id))")
        db.execute("INSERT INTO documents (id, collection, file_name, size, status, created_at, updated_at) "
                   "VALUES ('old', 'c', 'old.hwp', 1, 'done', 1, 1)")
    catalog = Catalog(path)
    assert catalog.get("c", "old").report == {}
    report = ParseReport()
    report.add("ole_object", "section 1", "an embedded object")
    catalog.upsert(DocumentRecord(id="new", collection="c", file_name="new.hwp", size=1, status="done",
                                  report=report.to_dict()))
    stored = catalog.get("c", "new").report
    assert ParseReport.from_dict(stored).counts() == {"ole_object": 1}
    assert stored["summary"] == report.summary()


def test_a_pdf_page_without_text_is_named_by_its_page(tmp_path):
    """Without the corpus too: a PDF the project makes, its second page blank."""
    from stack.pipeline.parsers import parse_file
    from tests.support.fixtures_factory import make_pdf

    document = parse_file(make_pdf(tmp_path / "two.pdf", ["Quarterly numbers are on page one.", "", "Page three."]))
    assert [(f.kind, f.where, f.count) for f in document.report.findings] == [("page_no_text", "p. 2", 1)]
    assert document.to_dict()["report"]["counts"] == {"page_no_text": 1}
