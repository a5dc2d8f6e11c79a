"""User text is data, never Rich markup, in every human output (issue #10, class 1), and piped
output keeps whole paths, one row per line (class 10).  Embedded mode, then a local stack (where
`ingest --no-wait` and `documents list` of in-progress documents used to crash)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragctl.cli import app

runner = CliRunner()
# File names cannot hold "/", so no closing tag in them; the contents and questions carry "[/]".
NASTY = ["[draft] 메모 [v2].md", "[bold] never closed.md", "[bold red]loud.md", "a\\b [link=x]y.md",
         "🙂 [i]emoji.md"]


def ragctl(project: Path, *args: str):
    result = runner.invoke(app, ["--project", str(project), *args], catch_exceptions=False)
    assert "Traceback" not in result.stdout + (result.stderr or "")
    return result


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "p"
    assert ragctl(root, "init", str(root), "--yes").exit_code == 0
    return root


def _write_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox [x]"
    for folder in ("a", "b"):
        (inbox / folder).mkdir(parents=True)
        for number, name in enumerate(NASTY):
            (inbox / folder / name).write_text(f"# [제목] {folder}{number}\n\n[{folder}] 문서 {number}: 연차는 "
                                               f"{10 + number}일이다 [/].\n", encoding="utf-8")
    return inbox


def test_names_and_texts_with_markup_are_printed_as_they_are(project, tmp_path):
    inbox = _write_inbox(tmp_path)
    ingested = ragctl(project, "ingest", str(inbox))
    assert ingested.exit_code == 0, ingested.stdout + ingested.stderr
    # Piped (not a terminal): every row whole on one line, the two same-named files told apart.
    for folder in ("a", "b"):
        for name in NASTY:
            path = str(inbox / folder / name)
            assert any(path in line for line in ingested.stdout.splitlines()), (path, ingested.stdout)
    listed = ragctl(project, "documents", "list")
    assert listed.exit_code == 0
    for name in NASTY:
        assert name in listed.stdout
    records = json.loads(ragctl(project, "documents", "list", "--json").stdout)
    shown = ragctl(project, "documents", "show", records[0]["id"], "--chunks")
    assert shown.exit_code == 0 and records[0]["file_name"] in shown.stdout and "[제목]" in shown.stdout
    searched = ragctl(project, "search", "연차 [b] 문서")
    assert searched.exit_code == 0 and "[b] 문서" in searched.stdout
    asked = ragctl(project, "ask", "[bold]연차[/bold]는 며칠인가요?")
    assert asked.exit_code == 0 and "[a] 문서" in asked.stdout + asked.stderr or "[b] 문서" in asked.stdout


def test_errors_that_quote_user_text_keep_it(project, tmp_path):
    missing = tmp_path / "dir[/x].txt"
    result = ragctl(project, "ingest", str(missing))
    assert result.exit_code in (1, 2) and "dir[/x].txt" in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_stack_mode_no_wait_and_in_progress_listing(tmp_path):
    from ragctl.runtime.local import LocalRuntime

    root = tmp_path / "stack"
    assert ragctl(root, "init", str(root), "--runtime", "local", "--yes").exit_code == 0
    with (root / "ragctl.toml").open("a") as toml:
        toml.write("\n[local]\napi_port = 0\nredis_port = 0\nchroma_port = 0\nflower_port = 0\n")
    try:
        up = ragctl(root, "up", "--workers", "1", "--wait", "180")
        assert up.exit_code == 0, up.stdout + up.stderr
        inbox = _write_inbox(tmp_path)
        queued = ragctl(root, "ingest", str(inbox), "--no-wait")
        assert queued.exit_code == 0, queued.stdout + queued.stderr
        assert "queued" in queued.stdout and "task " in queued.stdout
        listed = ragctl(root, "documents", "list")  # some are queued or in progress now
        assert listed.exit_code == 0 and NASTY[0] in listed.stdout
        down = ragctl(root, "down")
        assert down.exit_code == 0
        status = ragctl(root, "status")
        assert "not running" in status.stdout and "embedded" not in status.stdout
        assert ragctl(root, "ask", "연차").exit_code == 5
    finally:
        LocalRuntime(root).down()
