"""``ragctl sync`` over the real embedded pipeline (issue #26, part 4): a folder whose files are
added, changed, renamed, moved between folders and deleted; the old version of a changed file
answers until the new one is stored; a sync killed with SIGKILL mid-way is finished by the next
pass with nothing duplicated or lost.  Slow: the embedding model loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ragctl.backends.embedded import EmbeddedBackend
from ragctl.cli.sync import target_for
from stack.pipeline.catalog import Catalog
from stack.pipeline.service import Pipeline
from stack.settings import load_settings
from tests.support.cli import as_json, make_project, output, ragctl
from tests.support.suite import REPO


def write(folder, rel: str, text: str):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def names(project) -> dict[str, str]:
    """file name → status of every document of the collection hr, one per name (asserted)."""
    rows = Catalog(project / "data" / "catalog.sqlite").list("hr")
    assert len({r.file_name for r in rows}) == len(rows), [r.file_name for r in rows]
    return {r.file_name: r.status for r in rows}


def files_cited(project, query: str) -> set[str]:
    hits = as_json(ragctl(project, "search", query, "-c", "hr", "--json"))["hits"]
    return {hit["file"] for hit in hits}


def test_a_folder_and_a_collection_stay_the_same(tmp_path):
    project = make_project(tmp_path / "p")
    share = tmp_path / "share"
    write(share, "leave.md", "# 휴가\n\n연차 휴가는 15일이다.\n")
    write(share, "rules/travel.md", "# 출장\n\n출장비는 하루 10만 원이다.\n")
    write(share, "rules/old.md", "# 폐지\n\n구내식당은 폐지되었다.\n")
    first = ragctl(project, "sync", str(share), "-c", "hr", "--json")
    assert first.exit_code == 0, output(first)
    assert as_json(first)["summary"]["new"] == 3
    assert names(project) == {"leave.md": "done", "rules/travel.md": "done", "rules/old.md": "done"}

    write(share, "rules/travel.md", "# 출장\n\n출장비는 하루 20만 원으로 올랐다.\n")  # changed
    (share / "leave.md").rename(share / "hr-leave.md")  # renamed
    (share / "rules").joinpath("moved").mkdir()
    (share / "rules/old.md").rename(share / "rules/moved/old.md")  # moved between folders
    write(share, "new.md", "# 복지\n\n건강검진은 매년 받는다.\n")  # new
    plan = ragctl(project, "sync", str(share), "-c", "hr", "--dry-run", "--json")
    assert as_json(plan)["summary"] | {} == {"new": 1, "changed": 1, "moved": 2, "gone": 0, "unchanged": 0,
                                             "growing": 0, "unreadable": 0}
    assert names(project)["leave.md"] == "done"  # a dry run changes nothing
    synced = ragctl(project, "sync", str(share), "-c", "hr")
    assert synced.exit_code == 0, output(synced)
    assert names(project) == {"hr-leave.md": "done", "rules/travel.md": "done", "rules/moved/old.md": "done",
                              "new.md": "done"}
    assert files_cited(project, "연차 휴가") >= {"hr-leave.md"} and "leave.md" not in files_cited(project, "연차 휴가")
    travel = as_json(ragctl(project, "search", "출장비", "-c", "hr", "--json"))["hits"]
    assert any("20만" in h["text"] for h in travel) and not any("10만" in h["text"] for h in travel)

    (share / "new.md").unlink()
    kept = ragctl(project, "sync", str(share), "-c", "hr", "--json")
    assert as_json(kept)["summary"]["gone"] == 1 and "new.md" in names(project)  # listed, kept
    asked = ragctl(project, "sync", str(share), "-c", "hr", "--delete")
    assert asked.exit_code == 6 and "new.md" in names(project)  # no terminal: --yes is needed
    deleted = ragctl(project, "sync", str(share), "-c", "hr", "--delete", "--yes")
    assert deleted.exit_code == 0 and "new.md" not in names(project)
    again = as_json(ragctl(project, "sync", str(share), "-c", "hr", "--json"))
    assert again["summary"]["unchanged"] == 3 and again["steps"] == []


def test_the_old_version_answers_until_the_new_one_is_stored(tmp_path):
    from ragctl import sync

    root = tmp_path / "p"
    pipeline = Pipeline(load_settings(root))
    share = tmp_path / "share"
    write(share, "fee.md", "# 수수료\n\n이체 수수료는 500원이다.\n")
    target = target_for(EmbeddedBackend(pipeline, root), "hr")
    cache = sync.StatCache(tmp_path / "cache.json")
    sync.sync_once(share, target, cache, delete=False, dry_run=False)
    write(share, "fee.md", "# 수수료\n\n이체 수수료는 무료가 되었다.\n")
    seen = []
    real_ingest, real_delete = target.ingest, target.delete

    def ingest(items):
        seen.append(("before", {h.text.split("\n")[-1] for h in pipeline.search("이체 수수료", collection="hr")}))
        results = real_ingest(items)
        seen.append(("stored", {h.text.split("\n")[-1] for h in pipeline.search("이체 수수료", collection="hr")}))
        return results

    def delete(document_id):
        real_delete(document_id)
        seen.append(("after", {h.text.split("\n")[-1] for h in pipeline.search("이체 수수료", collection="hr")}))

    target.ingest, target.delete = ingest, delete
    plan = sync.sync_once(share, target, cache, delete=False, dry_run=False)
    assert plan.counts()["changed"] == 1 and not sync.failed(plan)
    assert seen == [("before", {"이체 수수료는 500원이다."}),
                    ("stored", {"이체 수수료는 500원이다.", "이체 수수료는 무료가 되었다."}),
                    ("after", {"이체 수수료는 무료가 되었다."})]


def test_a_sync_killed_mid_way_is_finished_by_the_next_pass(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    share = tmp_path / "share"
    expected = {f"d{n % 3}/note-{n:02}.md": f"# 메모 {n}\n\n{n}번 규정은 {n * 7}일이다.\n" for n in range(24)}
    for rel, text in expected.items():
        write(share, rel, text)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAG_EMBED_BATCH_SIZE": "2", "RAG_STALE_AFTER_S": "1"}
    process = subprocess.Popen([sys.executable, "-m", "ragctl", "--project", str(project), "sync", str(share),
                                "-c", "hr", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    catalog = project / "data" / "catalog.sqlite"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            done = [r for r in Catalog(catalog).list("hr") if r.status == "done"] if catalog.exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the sync ended before it could be killed: " + process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    before = names(project)
    assert 3 <= sum(1 for s in before.values() if s == "done") < len(expected)
    time.sleep(1.2)  # what was in progress at the kill is abandoned now (RAG_STALE_AFTER_S=1)
    monkeypatch.setenv("RAG_STALE_AFTER_S", "1")
    resumed = ragctl(project, "sync", str(share), "-c", "hr", "--json")
    assert resumed.exit_code == 0, output(resumed)
    assert names(project) == dict.fromkeys(expected, "done")
    rows = Catalog(catalog).list("hr")
    pipeline = Pipeline(load_settings(project))
    assert pipeline.store("hr").count() == sum(r.chunks for r in rows) == len(expected)  # no vector twice
