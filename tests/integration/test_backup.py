"""backup / restore on a real local stack (redis-server, chroma run, uvicorn, a Celery worker):
the round trip into a wiped deployment gives the same document ids and the same answer; a changed
archive is refused; a backup pauses intake (503) and resumes it."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx
import pytest

from ragctl.project import read_dotenv
from ragctl.runtime.local import LocalRuntime
from tests.support.cli import make_project, output, ragctl
from tests.support.suite import SAMPLES

QUESTION = "연차 휴가는 며칠인가요?"


@pytest.fixture
def local_stack(tmp_path):
    project = make_project(tmp_path / "proj")
    result = ragctl(project, "up", "--runtime", "local", "--workers", "1", "--wait", "120", "--json")
    assert result.exit_code == 0, output(result)
    try:
        yield project
    finally:
        LocalRuntime(project).down()


def _json(result):
    assert result.exit_code == 0, output(result)
    return json.loads(result.stdout)


def test_backup_then_restore_into_a_wiped_deployment(local_stack, tmp_path):
    project = local_stack
    report = _json(ragctl(project, "ingest", str(SAMPLES / "휴가_규정.hwpx"), str(SAMPLES / "deployment-notes.md"),
                          "--json"))
    assert report["mode"] == "stack" and {r["status"] for r in report["results"]} == {"done"}
    before = _json(ragctl(project, "ask", QUESTION, "--json"))
    listed = _json(ragctl(project, "documents", "list", "--json"))
    ids_before = sorted(d["id"] for d in listed)
    task_ids = [d["task_id"] for d in listed]

    archive = tmp_path / "backup.tar.gz"
    made = _json(ragctl(project, "backup", "--out", str(archive), "--json"))
    assert made["documents"] == {"default": 2} and made["vectors"]["default"] > 0
    assert oct(archive.stat().st_mode & 0o777) == "0o600"  # it holds .env
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "config/ragctl.toml", "config/.env", "redis/dump.rdb", "data/catalog.sqlite"} <= names
    assert any(n.startswith("chroma/") for n in names) and any(n.startswith("data/uploads/") for n in names)
    # Intake is open again after the backup.
    status = _json(ragctl(project, "status", "--json"))
    key = read_dotenv(project / ".env")["RAG_API_KEY"]
    upload = httpx.post(f"{status['api_url']}/api/documents", headers={"Authorization": f"Bearer {key}"},
                        files={"files": ("again.md", b"# again\n\nintake is open.\n")}, timeout=30)
    assert upload.status_code == 202, upload.text

    checked = _json(ragctl(project, "restore", str(archive), "--verify-only", "--json"))
    assert checked["valid"] and checked["problems"] == []

    # Wipe the deployment: the stack, data/ (vectors, queue, uploads) and the extracted text.
    wiped = ragctl(project, "down", "--volumes", "--yes", "--json")
    assert wiped.exit_code == 0, output(wiped)
    assert not (project / "data" / "catalog.sqlite").exists()
    restored = _json(ragctl(project, "restore", str(archive), "--yes", "--json"))
    assert restored["verified"], restored["problems"]
    # The CLI recorded its restore in the audit log, read back as the API's lines are (ragctl audit).
    (line,) = _json(ragctl(project, "audit", "--event", "restore", "--json"))
    assert line["archive"] == str(archive) and line["verified"] is True and line["key"].startswith("local:")

    up = ragctl(project, "up", "--runtime", "local", "--workers", "1", "--wait", "120", "--json")
    assert up.exit_code == 0, output(up)
    ids_after = sorted(d["id"] for d in _json(ragctl(project, "documents", "list", "--json")))
    assert ids_after == ids_before
    after = _json(ragctl(project, "ask", QUESTION, "--json"))
    # The snapshot was taken with intake paused; the restored deployment takes uploads.
    status = _json(ragctl(project, "status", "--json"))
    again = httpx.post(f"{status['api_url']}/api/documents", headers={"Authorization": f"Bearer {key}"},
                       files={"files": ("after-restore.md", b"# after\n\nintake is open after a restore.\n")},
                       timeout=30)
    assert again.status_code == 202, again.text
    assert after["answer"] == before["answer"]
    assert [s["chunk_id"] for s in after["sources"]] == [s["chunk_id"] for s in before["sources"]]
    # Redis came back from the snapshot: the ingest tasks' results are there.
    for task_id in task_ids:
        assert _json(ragctl(project, "tasks", "show", task_id, "--json"))["status"] == "done"
    import redis

    # status --json shows redis://:***@…: a client takes the password from the project (client_settings).
    client = redis.Redis.from_url(LocalRuntime(project).client_settings().redis_url)
    assert all(client.exists(f"celery-task-meta-{task_id}") for task_id in task_ids)


def test_a_changed_archive_is_refused_before_anything_is_touched(local_stack, tmp_path):
    project = local_stack
    _json(ragctl(project, "ingest", str(SAMPLES / "deployment-notes.md"), "--json"))
    archive = tmp_path / "backup.tar.gz"
    _json(ragctl(project, "backup", "--out", str(archive), "--json"))
    # Rewrite one member (the catalog) and keep the old manifest.
    changed = tmp_path / "changed.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(changed, "w:gz") as out:
        for member in source:
            data = source.extractfile(member).read() if member.isfile() else b""
            if member.name == "data/catalog.sqlite":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            out.addfile(member, io.BytesIO(data))
    refused = ragctl(project, "restore", str(changed), "--yes", "--json")
    assert refused.exit_code == 1
    assert any("catalog.sqlite: checksum differs" in p for p in json.loads(refused.stdout)["problems"])
    # Nothing was touched: the stack still answers with its document.
    assert len(_json(ragctl(project, "documents", "list", "--json"))) == 1
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(gzip.compress(archive.read_bytes()[:2000]))
    bad = ragctl(project, "restore", str(truncated), "--verify-only", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error"]["code"] == "bad_backup"


def test_pause_refuses_uploads_with_503_until_resumed(local_stack):
    from stack import maintenance

    project = local_stack
    status = _json(ragctl(project, "status", "--json"))
    settings = LocalRuntime(project).client_settings()
    key = read_dotenv(project / ".env")["RAG_API_KEY"]

    def upload():
        return httpx.post(f"{status['api_url']}/api/documents", headers={"Authorization": f"Bearer {key}"},
                          files={"files": ("note.md", b"# note\n\npaused or not.\n")}, timeout=30)

    assert maintenance.pause(settings, wait_s=30)["paused"]
    try:
        refused = upload()
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "intake_paused"
    finally:
        maintenance.resume(settings)
    assert upload().status_code == 202
