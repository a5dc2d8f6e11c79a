"""``ragctl sync`` (issue #26, part 4) without a model: the folder's scan (stat cache, growing,
unreadable and special files, symlink loops), the plan against a collection's records, and apply's
order against a recording target.  The real pipeline under it is tests/integration/test_sync.py."""

from __future__ import annotations

import hashlib
import os

import pytest

from ragctl import sync
from stack.contract import IngestResult
from stack.pipeline.catalog import DocumentRecord


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(folder, rel: str, text: str):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def record(rel: str, text: str, status: str = "done") -> DocumentRecord:
    return DocumentRecord(id=sha(text), collection="hr", file_name=rel, size=len(text), status=status, chunks=1)


def test_an_unchanged_tree_is_checked_without_reading_a_file(tmp_path, monkeypatch):
    share = tmp_path / "share"
    for n in range(50):
        write(share, f"d{n % 5}/f{n}.md", f"# {n}\n\ntext {n}\n")
    cache = sync.StatCache(tmp_path / "cache.json")
    files, problems = sync.scan(share, cache)
    assert len(files) == 50 and not problems and all(f.sha256 == sha(f"# {n}\n\ntext {n}\n") for f, n in
                                                      zip(sorted(files, key=lambda f: int(f.rel.split("f")[1][:-3])),
                                                          range(50), strict=True))
    cache.save(files)
    read = []
    monkeypatch.setattr(sync, "_hash", lambda path: read.append(path) or "x")
    again, _ = sync.scan(share, sync.StatCache(tmp_path / "cache.json"))
    assert read == [] and {f.sha256 for f in again} == {f.sha256 for f in files}
    os.utime(share / "d3/f3.md", ns=(1, 1))  # a file touched: only it is read again
    sync.scan(share, sync.StatCache(tmp_path / "cache.json"))
    assert [p.name for p in read] == ["f3.md"]


def test_growing_special_and_looping_files_are_reported_and_the_rest_goes_on(tmp_path, monkeypatch):
    share = tmp_path / "share"
    write(share, "ok.md", "# ok\n")
    growing = write(share, "big.md", "# big\n")
    os.mkfifo(share / "pipe.md")
    os.symlink("self.md", share / "self.md")  # a symlink loop
    os.symlink("..", share / "up")  # a folder loop: never walked
    real_hash = sync._hash

    def hash_while_written(path):
        if path.name == "big.md":
            with path.open("a") as handle:
                handle.write("more\n")
        return real_hash(path)

    monkeypatch.setattr(sync, "_hash", hash_while_written)
    files, problems = sync.scan(share, sync.StatCache(tmp_path / "c.json"))
    assert [f.rel for f in files] == ["ok.md"]
    assert {(p.action, p.path) for p in problems} == {("growing", "big.md"), ("unreadable", "pipe.md"),
                                                      ("unreadable", "self.md")}
    assert growing.is_file()
    plan = sync.make_plan(files, [record("big.md", "# big\n")], problems)
    assert plan.counts()["gone"] == 0  # a growing file keeps its document until it can be read


def test_the_plan_new_changed_moved_gone_unchanged_and_leftovers():
    files = [sync.SeenFile("a/same.md", None, 1, 1, 1, sha("same")),
             sync.SeenFile("a/changed.md", None, 1, 1, 2, sha("v2")),
             sync.SeenFile("b/moved.md", None, 1, 1, 3, sha("moved")),
             sync.SeenFile("new.md", None, 1, 1, 4, sha("new")),
             sync.SeenFile("copy.md", None, 1, 1, 5, sha("same")),
             sync.SeenFile("retry.md", None, 1, 1, 6, sha("bad")),
             sync.SeenFile("half.md", None, 1, 1, 7, sha("half-new"))]
    records = [record("a/same.md", "same"), record("a/changed.md", "v1"), record("a/moved.md", "moved"),
               record("deleted.md", "deleted"), record("retry.md", "bad", status="failed"),
               record("half.md", "half-old"), record("half.md", "half-new")]  # a pass cut after the new one
    plan = sync.make_plan(files, records)
    steps = {(s.action, s.path) for s in plan.steps}
    assert steps == {("unchanged", "a/same.md"), ("changed", "a/changed.md"), ("moved", "b/moved.md"),
                     ("new", "new.md"), ("unchanged", "copy.md"), ("new", "retry.md"), ("unchanged", "half.md"),
                     ("gone", "deleted.md")}
    assert plan.of("changed")[0].replaces == sha("v1") and plan.of("moved")[0].old_path == "a/moved.md"
    assert [r.id for r in plan.leftovers] == [sha("half-old")]


def test_apply_renames_first_ingests_then_deletes_the_old_version_and_keeps_gone_ones_without_delete(tmp_path):
    share = tmp_path / "share"
    files = [sync.SeenFile("a.md", write(share, "a.md", "v2"), 2, 1, 1, sha("v2")),
             sync.SeenFile("m.md", write(share, "m.md", "m"), 1, 1, 2, sha("m"))]
    held = {sha("v1"): "a.md", sha("m"): "old/m.md", sha("gone"): "gone.md"}
    log = []

    def ingest(items):
        log.append(("ingest", [name for _, name in items], dict(held)))
        for path, name in items:
            held[sha(path.read_text())] = name
        return [IngestResult(str(p), n, "done", document_id=sha(p.read_text())) for p, n in items]

    def delete(doc):
        log.append(("delete", held.pop(doc)))

    def rename(doc, name):
        log.append(("rename", held[doc], name))
        held[doc] = name

    target = sync.SyncTarget(records=lambda: [record(n, "") for n in ()], ingest=ingest, rename=rename, delete=delete)
    records = [record("a.md", "v1"), record("old/m.md", "m"), record("gone.md", "gone")]
    plan = sync.apply(sync.make_plan(files, records), target, files, delete=False)
    assert log[0] == ("rename", "old/m.md", "m.md")
    assert log[1][0] == "ingest" and log[1][1] == ["a.md"] and log[1][2][sha("v1")] == "a.md"  # old still held
    assert log[2] == ("delete", "a.md") and held == {sha("v2"): "a.md", sha("m"): "m.md", sha("gone"): "gone.md"}
    assert {(s.action, s.outcome) for s in plan.steps} == {("changed", "done"), ("moved", "done"), ("gone", "kept")}
    sync.apply(sync.make_plan(files, [record("gone.md", "gone")]), target, files, delete=True)
    assert sha("gone") not in held


def test_a_failed_ingest_keeps_the_old_version(tmp_path):
    share = tmp_path / "share"
    files = [sync.SeenFile("a.md", write(share, "a.md", "v2"), 2, 1, 1, sha("v2"))]
    deleted = []
    target = sync.SyncTarget(records=list, rename=None, delete=deleted.append,
                             ingest=lambda items: [IngestResult("a.md", "a.md", "failed", error={"code": "x"})])
    plan = sync.apply(sync.make_plan(files, [record("a.md", "v1")]), target, files, delete=True)
    assert deleted == [] and sync.failed(plan)


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("2", 2), ("0.5s", 0.5)])
def test_intervals(text, seconds):
    from ragctl.cli.sync import parse_interval

    assert parse_interval(text) == seconds


def test_a_bad_interval_names_the_flag():
    from ragctl.cli.sync import parse_interval
    from ragctl.errors import UsageError

    with pytest.raises(UsageError) as caught:
        parse_interval("soon")
    assert "--interval 30s" in caught.value.hint


def test_five_thousand_files_first_and_unchanged_passes(tmp_path):
    share = tmp_path / "share"
    texts = {f"d{n % 50:02}/n{n:04}.md": f"# {n}\n\n{n}\n" for n in range(5000)}
    for rel, text in texts.items():
        write(share, rel, text)
    cache = sync.StatCache(tmp_path / "c.json")
    files, problems = sync.scan(share, cache)
    assert len(files) == 5000 and not problems
    plan = sync.make_plan(files, [], problems)
    assert plan.counts()["new"] == 5000
    cache.save(files)
    records = [record(rel, text) for rel, text in texts.items()]
    again, _ = sync.scan(share, sync.StatCache(tmp_path / "c.json"))
    assert sync.make_plan(again, records).counts() == {"new": 0, "changed": 0, "moved": 0, "gone": 0,
                                                       "unchanged": 5000, "growing": 0, "unreadable": 0}
