"""What each file lost (issue #26 part 5) through the CLI on the embedded pipeline: ``sync`` and
``ingest`` count the files that had parts we could not read, ``documents show`` and ``documents
list`` show them, human and ``--json``.  Files the project makes (no corpus needed): a PDF whose
second page has no text layer, and a Markdown file read whole."""

from __future__ import annotations

from tests.support.cli import as_json, make_project, output, ragctl
from tests.support.fixtures_factory import make_pdf


def test_sync_ingest_and_documents_show_the_parts_not_read(tmp_path):
    project = make_project(tmp_path / "p")
    share = tmp_path / "share"
    share.mkdir()
    make_pdf(share / "budget.pdf", ["Budget figures for the second quarter.", ""])
    (share / "notes.md").write_text("# Notes\n\nEvery line of this file is text.\n", encoding="utf-8")

    synced = ragctl(project, "sync", str(share), "-c", "finance")
    assert synced.exit_code == 0, output(synced)
    assert "1 file had parts we could not read" in output(synced)
    assert "pages without text: 1" in output(synced)  # the file's row says what
    again = as_json(ragctl(project, "sync", str(share), "-c", "finance", "--json"))
    assert again["lost_parts"] == 0 and again["summary"]["unchanged"] == 2  # nothing read this pass

    other = make_pdf(tmp_path / "minutes.pdf", ["", "Minutes of the meeting.", ""])
    ingested = ragctl(project, "ingest", str(other), "-c", "finance", "--json")
    assert ingested.exit_code == 0, output(ingested)
    data = as_json(ingested)
    assert data["summary"]["lost_parts"] == 1
    assert [(f["where"], f["kind"]) for f in data["results"][0]["report"]["findings"]] == [
        ("p. 1", "page_no_text"), ("p. 3", "page_no_text")]

    listed = {d["file_name"]: d for d in as_json(ragctl(project, "documents", "list", "-c", "finance", "--json"))}
    assert listed["budget.pdf"]["not_read"] == {"page_no_text": 1} and listed["notes.md"]["not_read"] == {}
    budget = listed["budget.pdf"]["id"]
    shown = as_json(ragctl(project, "documents", "show", budget, "-c", "finance", "--json"))
    assert shown["report"]["findings"] == [{"kind": "page_no_text", "where": "p. 2", "count": 1,
                                            "reason": shown["report"]["findings"][0]["reason"]}]
    human = output(ragctl(project, "documents", "show", budget, "-c", "finance"))
    assert "Parts we could not read" in human and "p. 2" in human and "pages without text" in human
    clean = output(ragctl(project, "documents", "show", listed["notes.md"]["id"], "-c", "finance"))
    assert "could not read" not in clean
