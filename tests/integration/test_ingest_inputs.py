"""`ragctl ingest` with awkward inputs, through the CLI in embedded mode (issue #10, items 2 and 11):
one bad file never stops a batch, folders take document types and say what they skipped, and
generated file names never break a run.  The stack mode's cases: tests/integration/test_stack.py
(test_ingest_through_the_stack_fails_bad_files_alone).  The selection and reading libraries
themselves, with many more examples: tests/unit/test_ingest_inputs.py.

Tiny text files and few examples: the embedding model is slow on small machines."""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ragctl.cli.data as data_commands
from ragctl.cli import app
from stack import contract

runner = CliRunner()


def ragctl(project: Path, *args: str):
    return runner.invoke(app, ["--project", str(project), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ingest-inputs") / "p"
    assert ragctl(root, "init", str(root), "--yes").exit_code == 0
    return root


def rows(result) -> dict[str, dict]:
    report = json.loads(result.stdout)
    return {Path(r["path"]).name: r for r in report["results"]}


def _bad_files(folder: Path) -> dict[str, str]:
    """Every kind of bad file in ``folder``; name → the start of its reason."""
    os.mkfifo(folder / "fifo.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.txt"))
    (folder / "dangling.txt").symlink_to(folder / "gone.txt")
    (folder / "loop.txt").symlink_to(folder / "loop.txt")
    (folder / "empty.txt").write_bytes(b"")
    return {"fifo.txt": "fifo.txt is not a regular file (FIFO)", "sock.txt": "sock.txt is not a regular file (socket)",
            "dangling.txt": "dangling.txt is a dangling symlink", "loop.txt": "loop.txt is a symlink loop",
            "empty.txt": "empty.txt is empty"}


@pytest.mark.timeout(600)
def test_bad_files_in_a_folder_fail_alone_and_the_batch_goes_on(project, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = _bad_files(inbox)
    (inbox / "a-first.txt").write_text("첫 문서: 배포는 화요일에 한다.", encoding="utf-8")
    (inbox / "z-last.txt").write_text("마지막 문서: 백업은 매일 밤 2시에 돈다.", encoding="utf-8")
    (inbox / "x.txt").mkdir()  # a folder named like a file: walked, its document taken
    (inbox / "x.txt" / "inner.md").write_text("# 안쪽\n\n폴더 안의 문서.", encoding="utf-8")
    locked = inbox / "locked.txt"
    locked.write_text("잠긴 문서", encoding="utf-8")
    locked.chmod(0)
    vanishing = inbox / "vanishing.txt"
    vanishing.write_text("곧 사라질 문서", encoding="utf-8")
    changing = inbox / "changing.txt"
    changing.write_text("바뀌는 문서 " * 10, encoding="utf-8")
    (inbox / "data.json").write_text("{}")
    (inbox / "rows.json").write_text("[]")
    expected |= {"locked.txt": "locked.txt: permission denied", "vanishing.txt": "vanishing.txt: not found",
                 "changing.txt": "changing.txt changed while it was being read"}

    real_open, real_read = os.open, contract._read
    if os.geteuid() == 0:  # root reads a chmod 000 file: refuse it as the kernel would anyone else
        def refusing_open(path, flags, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)

    def read_and_change(fd, n):  # something appends to changing.txt while it is read
        block = real_read(fd, n)
        if block.startswith("바뀌는".encode()):
            with changing.open("a", encoding="utf-8") as handle:
                handle.write("더")
        return block

    monkeypatch.setattr(contract, "_read", read_and_change)
    real_expand = data_commands.expand_paths

    def expand_then_delete(*args, **kwargs):  # the file goes after the folder was listed, before it is read
        selection = real_expand(*args, **kwargs)
        vanishing.unlink()
        return selection

    monkeypatch.setattr(data_commands, "expand_paths", expand_then_delete)

    result = ragctl(project, "ingest", str(inbox), "--json")
    assert result.exit_code == 1, result.stdout
    by_name = rows(result)
    assert {n: r["status"] for n, r in by_name.items() if r["status"] == "done"} == {
        "a-first.txt": "done", "z-last.txt": "done", "inner.md": "done"}
    for name, reason in expected.items():
        assert by_name[name]["status"] == "failed", name
        assert by_name[name]["error"]["message"].startswith(reason), by_name[name]["error"]
    report = json.loads(result.stdout)
    assert report["summary"]["skipped_files"] == 2
    assert report["skipped_files"] == [{"reason": "type", "extension": ".json", "count": 2, "folders": 0,
                                        "take_with": "--include '*.json'",
                                        "paths": [str(inbox / "data.json"), str(inbox / "rows.json")]}]


def test_naming_bad_files_directly_gives_rows_not_a_refusal(project, tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("좋은 문서입니다. 회의는 목요일 오전 10시.", encoding="utf-8")
    expected = _bad_files(tmp_path)
    (tmp_path / "folder.txt").mkdir()
    named = [str(tmp_path / name) for name in expected] + [str(tmp_path / "missing.txt"), str(good),
                                                            str(tmp_path / ("긴" * 100 + ".txt"))]
    result = ragctl(project, "ingest", *named, "--json")
    assert result.exit_code == 1, result.stdout
    by_name = rows(result)
    assert by_name["good.txt"]["status"] in ("done", "skipped")
    assert by_name["missing.txt"]["error"]["code"] == "not_found"
    assert by_name["긴" * 100 + ".txt"]["error"]["code"] == "not_found"
    for name, reason in expected.items():
        assert by_name[name]["error"]["message"].startswith(reason)

    human = ragctl(project, "ingest", str(tmp_path / "fifo.txt"), str(good))  # a FIFO named: never opened
    assert human.exit_code == 1
    assert "not a regular file (FIFO)" in " ".join(human.stdout.split())
    extract = ragctl(project, "extract", str(tmp_path / "fifo.txt"), "--json")  # extract reads the same way
    assert extract.exit_code == 1 and json.loads(extract.stdout)["error"]["code"] == "not_regular_file"


def test_no_path_given_exists_is_a_usage_error(project, tmp_path):
    result = ragctl(project, "ingest", str(tmp_path / "nope.txt"), str(tmp_path / "dir[") + "/x].txt", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    human = ragctl(project, "ingest", str(tmp_path / "[bold]nope[/].txt"))
    assert human.exit_code == 2 and "[bold]nope[/].txt" in "".join(human.stderr.split())


def test_folder_takes_documents_and_reports_what_it_skipped(project, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "drafts").mkdir(parents=True)
    (inbox / "규정.md").write_text("# 규정\n\n출장비는 실비로 정산한다.", encoding="utf-8")
    (inbox / "drafts" / "초안.md").write_text("# 초안\n\n아직 확정되지 않은 초안.", encoding="utf-8")
    (inbox / "a.json").write_text('{"k": 1}')
    (inbox / "b.json").write_text('{"k": 2}')
    (inbox / "table.csv").write_text("a,b\n1,2\n")

    human = ragctl(project, "ingest", str(inbox))
    assert human.exit_code == 0, human.stdout
    text = " ".join(human.stdout.split())
    assert "Skipped 3 files: .json ×2 (take them with --include '*.json'); .csv ×1 (take it with --include " \
           "'*.csv')." in text

    only = ragctl(project, "ingest", str(inbox), "--include", "*.json", "--exclude", "drafts/", "--exclude", "b.*",
                  "--json")
    assert only.exit_code == 0, only.stdout
    report = json.loads(only.stdout)
    assert sorted(rows(only)) == ["a.json", "규정.md"]
    assert {g["reason"] for g in report["skipped_files"]} == {"type", "excluded"}

    nothing = ragctl(project, "ingest", str(inbox), "--exclude", "*", "--json")
    assert nothing.exit_code == 1 and json.loads(nothing.stdout)["error"]["code"] == "nothing_to_ingest"
    bad = ragctl(project, "ingest", str(inbox), "--include", "[z-a]", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"]["code"] == "usage"


NASTY = list('[]\\:*?"<>|') + ["[bold]", "[/]", "[v2]", "한글", "배포용", "😀", "\t", "\x1b", " ", "-", "a"]
names = st.lists(st.sampled_from(NASTY), min_size=1, max_size=6).map("".join).filter(
    lambda n: not n.startswith("."))


@pytest.mark.timeout(600)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(st.lists(names, min_size=1, max_size=3, unique=True), st.booleans())
def test_generated_names_through_the_cli(project, batch, human):
    """Any name: each file is one row, with its own name, in both outputs; never a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "in[/]"
        inbox.mkdir(parents=True)
        for n, name in enumerate(batch):  # a "[/]" in a name makes a folder: walked like any other
            (inbox / f"{name}.txt").parent.mkdir(parents=True, exist_ok=True)
            (inbox / f"{name}.txt").write_text(f"문서 {n}: {name} 의 내용. Document {n}.", encoding="utf-8")
        (inbox / f"{batch[0]}.json").write_text("{}")
        long_name = inbox / ("가" * 80 + ".txt")  # 244 bytes: as long as the file system allows
        long_name.write_text("긴 이름의 문서.", encoding="utf-8")
        too_long = inbox / ("가" * 90 + ".txt")  # 274 bytes: it cannot exist, so it is "not found"
        args = [str(inbox), str(too_long)] + ([] if human else ["--json"])
        result = runner.invoke(app, ["--project", str(project), "ingest", *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == 1  # the over-long name
        if human:
            assert "Traceback" not in result.stdout + result.stderr
            assert "Skipped 1 file:" in result.stdout
        else:
            report = json.loads(result.stdout)
            by_path = {r["path"]: r for r in report["results"]}
            for name in batch:
                assert by_path[str(inbox / f"{name}.txt")]["status"] in ("done", "skipped")
            assert by_path[str(long_name)]["status"] in ("done", "skipped")
            assert by_path[str(too_long)]["error"]["code"] == "not_found"
            assert report["skipped_files"][0]["paths"] == [str(inbox / f"{batch[0]}.json")]


def test_a_name_that_is_not_utf8_is_recorded_and_printed(project, tmp_path):
    """Linux names are bytes: those that are not UTF-8 are kept on disk and shown with U+FFFD."""
    inbox = tmp_path / "bytes"
    inbox.mkdir()
    Path(os.fsdecode(os.fsencode(inbox) + b"/memo\xff.txt")).write_text("바이트 이름의 문서입니다.", encoding="utf-8")
    Path(os.fsdecode(os.fsencode(inbox) + b"/data\xfe")).write_bytes(b"x")
    result = ragctl(project, "ingest", str(inbox), "--json")
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert [(r["file_name"], r["status"]) for r in report["results"]] == [("memo\ufffd.txt", "done")]
    assert report["skipped_files"][0]["paths"] == [str(inbox / "data\ufffd")]
    human = ragctl(project, "ingest", str(inbox))
    assert human.exit_code == 0 and "memo\ufffd.txt" in human.stdout
