"""Citations a reader can follow (#9): ``ragctl ask`` and ``ragctl search`` name the heading path
of each source (the 조 of a regulation, the numbered section of a PDF page), in JSON and on screen.

The real CLI over the embedded pipeline (real parsers, real embedding model, real ChromaDB).
"""

from __future__ import annotations

import pytest

from tests.support.cli import as_json, ragctl
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow


def test_ask_and_search_carry_the_heading_path(tmp_path):
    project = tmp_path / "p"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    notes = tmp_path / "notes.md"
    notes.write_text("# [v2] 릴리스 [bold]\n\n배포 창은 목요일 오전 10시이다.\n", encoding="utf-8")
    result = ragctl(project, "ingest", str(SAMPLES / "휴가_규정.hwpx"), str(SAMPLES / "backup-procedure.pdf"),
                    str(notes))
    assert result.exit_code == 0, result.stdout

    answer = as_json(ragctl(project, "ask", "연차 휴가는 며칠인가요?", "--json"))
    top = answer["sources"][0]
    assert top["file"] == "휴가_규정.hwpx"
    assert top["heading"] == "제2장 휴가 > 제2조(연차 휴가)" and top["location"] == top["heading"]
    assert top["section"] == "section 1"  # still there for scripts that read it

    hits = as_json(ragctl(project, "search", "restore test performed monthly", "--json", "-k", "3"))["hits"]
    assert (hits[0]["file"], hits[0]["page"], hits[0]["heading"]) == ("backup-procedure.pdf", 2, "3. Restore test")
    assert hits[0]["location"] == "p. 2 · 3. Restore test"

    human = ragctl(project, "ask", "연차 휴가는 며칠인가요?")
    assert "[1] 휴가_규정.hwpx, 제2장 휴가 > 제2조(연차 휴가)" in human.stdout

    # A heading is document text: printed as it is, never read as Rich markup.
    shown = ragctl(project, "ask", "배포 창은 언제인가요?")
    assert "notes.md, [v2] 릴리스 [bold]" in shown.stdout

    listed = as_json(ragctl(project, "documents", "list", "--json"))
    hwpx = next(d for d in listed if d["file_name"] == "휴가_규정.hwpx")
    chunks = as_json(ragctl(project, "documents", "show", hwpx["id"][:8], "--chunks", "--json"))["chunks"]
    assert "제2장 휴가 > 제4조(휴가의 종류) > 표 1. 휴가의 종류와 일수" in {c.get("heading") for c in chunks}
