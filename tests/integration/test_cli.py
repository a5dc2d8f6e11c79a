"""The CLI as users drive it: exit codes, --json documents, human tables, bad input in a batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ragctl.cli import app
from tests.support.cli import as_json, ragctl, runner
from tests.support.fixtures_factory import make_hwp, set_hwp5_flags
from tests.support.suite import REPO, SAMPLES

pytestmark = pytest.mark.slow


def test_help_is_light_and_fast():
    code = (
        "import sys, runpy; sys.argv=['ragctl','--help']\n"
        "try:\n    runpy.run_module('ragctl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch','chromadb','transformers','sentence_transformers','kiwipiepy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert "ingest" in out.stdout and "ask" in out.stdout


def test_batch_with_bad_files_ingests_the_good_ones(tmp_path):
    project = tmp_path / "p"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    (project / "ragctl.toml").write_text('[settings]\nmax_upload_mb = 1\n', encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "empty.txt").write_bytes(b"")
    (inbox / "junk.bin").write_bytes(bytes(range(256)) * 64)
    (inbox / "huge.txt").write_text("가나다라 " * 300_000, encoding="utf-8")
    set_hwp5_flags(make_hwp(inbox / "locked.hwp", ["암호가 걸린 문서"]), 0b011)  # compressed + password
    set_hwp5_flags(make_hwp(inbox / "배포용.hwp", ["배포용 문서"]), 0b101)  # compressed + distribution
    whole = make_hwp(tmp_path / "whole.hwp", ["잘린 문서입니다."]).read_bytes()
    (inbox / "truncated.hwp").write_bytes(whole[: len(whole) // 2])
    (inbox / "notes.md").write_text("# 배포\n\n배포는 매주 화요일 오후 3시에 한다.\n", encoding="utf-8")

    result = ragctl(project, "ingest", str(inbox), "--include", "*.bin", "--json")  # .bin: not a document type
    assert result.exit_code == 1
    report = as_json(result)
    by_name = {r["file_name"]: r for r in report["results"]}
    assert by_name["notes.md"]["status"] == "done"
    codes = {name: (r["error"] or {}).get("code") for name, r in by_name.items()}
    assert codes == {
        "empty.txt": "empty_file", "junk.bin": "unsupported_format", "huge.txt": "too_large",
        "locked.hwp": "password_protected", "배포용.hwp": "distribution_protected",
        "truncated.hwp": "corrupt", "notes.md": None,
    }
    assert "password" in by_name["locked.hwp"]["error"]["message"].lower()
    assert "배포용" in by_name["배포용.hwp"]["error"]["message"]
    assert report["mode"] == "embedded"
    assert {k: report["summary"][k] for k in ("done", "skipped", "failed")} == {"done": 1, "skipped": 0, "failed": 6}
    # Only the good file reached the stores.
    uploads = list((project / "data" / "uploads").iterdir())
    assert len(uploads) == 1
    listed = as_json(ragctl(project, "documents", "list", "--json"))
    assert {d["file_name"]: d["status"] for d in listed}["notes.md"] == "done"
    assert all(set(d) >= {"id", "file_name", "status", "chunks"} for d in listed)

    human = ragctl(project, "ingest", str(inbox))
    assert human.exit_code == 1
    assert "skipped" in human.stdout and "failed" in human.stdout and "password" in human.stdout.lower()


def test_ingest_ask_search_documents_flow(tmp_path):
    project = tmp_path / "p"
    refused = ragctl(project, "ingest", str(SAMPLES))  # only init makes a project
    assert refused.exit_code == 2 and "ragctl init" in refused.stderr and not project.exists()
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    result = ragctl(project, "ingest", str(SAMPLES))
    assert result.exit_code == 0, result.stdout
    assert "4 ingested" in result.stdout

    answer = as_json(ragctl(project, "ask", "연차 휴가는 며칠인가요?", "--json"))
    assert answer["mode"] == "extractive" and "15일" in answer["answer"]
    assert set(answer["sources"][0]) >= {"file", "page", "section", "chunk_id", "score", "text"}
    assert answer["sources"][0]["file"] == "휴가_규정.hwpx"

    human = ragctl(project, "ask", "How long are backups kept?")
    assert "30 days" in human.stdout and "[1] backup-procedure.pdf, p. 1" in human.stdout

    hits = as_json(ragctl(project, "search", "receipts required expenses", "--json", "-k", "3"))["hits"]
    assert hits[0]["file"] == "expense-policy.docx" and len(hits) <= 3
    assert ragctl(project, "search", "x", "--mode", "fuzzy").exit_code == 2

    listed = as_json(ragctl(project, "documents", "list", "--json"))
    hwpx = next(d for d in listed if d["file_name"] == "휴가_규정.hwpx")
    shown = as_json(ragctl(project, "documents", "show", hwpx["id"][:8], "--chunks", "--json"))
    assert shown["chunks"] and shown["chunks"][0]["chunk_id"] == f"{hwpx['id']}:0"

    refused = runner.invoke(app, ["--project", str(project), "documents", "delete", hwpx["id"][:8]], input="")
    assert refused.exit_code == 6  # no TTY and no --yes: nothing deleted
    assert ragctl(project, "documents", "delete", hwpx["id"][:8], "--yes").exit_code == 0
    assert hwpx["id"] not in {d["id"] for d in as_json(ragctl(project, "documents", "list", "--json"))}
    missing = ragctl(project, "documents", "show", "deadbeef", "--json")
    assert missing.exit_code == 1 and as_json(missing)["error"]["code"] == "not_found"


def test_extract_prints_text_and_blocks(tmp_path):
    project = tmp_path / "p"
    assert ragctl(project, "init", str(project), "--yes").exit_code == 0
    text = ragctl(project, "extract", str(SAMPLES / "휴가_규정.hwpx"))
    assert text.exit_code == 0 and "연차" in text.stdout
    data = as_json(ragctl(project, "extract", str(SAMPLES / "backup-procedure.pdf"), "--json"))
    assert data["format"] == "pdf" and {b["page"] for b in data["blocks"]} == {1, 2}
    assert list((project / "extracted_results").glob("*.txt"))
    bad = ragctl(project, "extract", str(tmp_path / "nope.hwp"))
    assert bad.exit_code == 1


def test_python_dash_m_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ragctl", "--version"], capture_output=True, text=True, check=False,
                         cwd=REPO, timeout=60, env={**os.environ})
    assert out.returncode == 0 and out.stdout.startswith("ragctl ")
