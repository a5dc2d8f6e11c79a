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


# ------------------------------------------------------------------ tables not kept whole (issue #27)

INNER = [["연도", "요율"], ["2024", "3.5%"]]


def _hwp_with_a_table_in_a_cell(path):
    """An HWPX or HWP 5 (by suffix): a 2 × 2 table whose last cell holds a 2 × 2 table."""
    import warnings

    from hwpx import HwpxDocument

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = HwpxDocument.new()
        doc.paragraphs[0].text = "요율표"
        outer = doc.add_table(2, 2)
        for (r, c), text in {(0, 0): "구분", (0, 1): "내용", (1, 0): "요율"}.items():
            outer.set_cell_text(r, c, text)
        inner = outer.cell(1, 1).add_table(2, 2)
        for r, row in enumerate(INNER):
            for c, text in enumerate(row):
                inner.set_cell_text(r, c, text)
        doc.save_to_path(str(path))
    return path


@pytest.mark.parametrize("suffix", [".hwpx", ".hwp"])
def test_a_table_inside_a_table_cell_is_reported_as_not_kept_whole(tmp_path, suffix):
    from stack.pipeline.parsers import parse_file

    document = parse_file(_hwp_with_a_table_in_a_cell(tmp_path / f"nested{suffix}"))
    table = next(b for b in document.blocks if b.kind == "table")
    assert "3.5%" in table.text  # flattened into its cell: read, but not as cells
    assert [(f.kind, f.where, f.count) for f in document.report.findings] == [("table_truncated", "section 1", 1)]
    assert "inside a table cell" in document.report.findings[0].reason
    assert document.to_dict()["report"]["counts"] == {"table_truncated": 1}


def test_nested_tables_in_docx_and_html_are_reported_and_plain_tables_are_not(tmp_path):
    from stack.pipeline.parsers import parse_file
    from tests.support import fixtures_factory as ff

    plain = ff.make_docx(tmp_path / "plain.docx", table=[["Item", "Limit"], ["Meals", "$50"]])
    assert not parse_file(plain).report
    nested = ff.make_docx(tmp_path / "nested.docx", heading="Expense Policy", table=[["Item", "Limit"], ["Meals", "$50"]],
                          nested=True)
    report = parse_file(nested).report
    assert [(f.kind, f.where) for f in report.findings] == [("table_truncated", "Expense Policy")]
    html = tmp_path / "rates.html"
    html.write_text("<html><body><h1>요율</h1><table><tr><th>구분</th><th>내용</th></tr><tr><td>요율</td><td>"
                    "<table><tr><td>연도</td><td>요율</td></tr><tr><td>2024</td><td>3.5%</td></tr></table>"
                    "</td></tr></table><table><tr><th>a</th><th>b</th></tr><tr><td>x</td><td>1</td></tr></table>"
                    "</body></html>", encoding="utf-8")
    document = parse_file(html)
    assert [(f.kind, f.where, f.count) for f in document.report.findings] == [("table_truncated", "요율", 1)]


def test_cells_at_one_address_keep_their_text_and_are_reported(tmp_path):
    """A damaged HWPX whose two cells claim one address: both texts are kept in the table's text
    (searchable), the grid holds the first, and the report says one cell was not placed."""
    import zipfile

    from stack.pipeline.parsers import parse_file
    from tests.support import fixtures_factory as ff

    made = ff.make_hwpx(tmp_path / "made.hwpx", ["요율표"], table=[["구분", "요율"], ["2023", "3.1%"], ["2024", "3.5%"]])
    damaged = tmp_path / "damaged.hwpx"
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "Contents/section0.xml":
                # The last cell (2024's rate) says it sits where 2024 itself does.
                marker = b'<hp:cellAddr colAddr="1" rowAddr="2"/>'
                assert marker in data
                data = data.replace(marker, b'<hp:cellAddr colAddr="0" rowAddr="2"/>')
            target.writestr(info, data)
    document = parse_file(damaged)
    table = next(b for b in document.blocks if b.kind == "table")
    assert "3.5%" in table.text and table.rows[2][0] == "2024"
    assert [(f.kind, f.count) for f in document.report.findings] == [("table_truncated", 1)]
    assert "overlap" in document.report.findings[0].reason


def test_extract_names_a_table_not_kept_whole_on_stderr(tmp_path):
    """The Markdown on stdout stays the document; the line under it (stderr) says what was not kept."""
    import os
    import subprocess
    import sys

    path = _hwp_with_a_table_in_a_cell(tmp_path / "nested.hwpx")
    done = subprocess.run([sys.executable, "-m", "ragctl", "extract", str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "| 요율 |" in done.stdout and "not kept whole" not in done.stdout
    assert "tables not kept whole as cells (check them): 1" in done.stderr and "--json" in done.stderr
