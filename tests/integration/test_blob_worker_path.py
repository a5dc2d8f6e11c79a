"""Uploaded bytes reach the workers through the blob store, never a shared folder (issue #12).

The API's own upload code (in-process, FastAPI's TestClient) receives a file and hands it to
``pipeline.blobs``; the queued task names the blob's reference; the Celery task's own code
(``ingest_document``, run by Celery's ``apply``) then ingests the document in a worker whose project
folder is another one, after the API's ``data/uploads`` was deleted: with ``RAG_DATABASE_URL`` the
bytes come from PostgreSQL.  A real redis-server (the API's intake checks, the worker's liveness and
metrics) and a real private PostgreSQL cluster; only the broker hop is left out (the message the API
sends is captured and given to the task as Celery would)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.settings import load_settings
from tests.support.postgres_server import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow

SAMPLE = SAMPLES / "backup-procedure.pdf"


class Host:
    """One side of the stack: the API's, or a worker's on another host (its own project folder)."""

    def __init__(self, root: Path, redis_url: str, database_url: str | None) -> None:
        overrides = {"api_key": "k3y", "redis_url": redis_url}
        if database_url:
            overrides["database_url"] = database_url
        self.settings = load_settings(root, overrides)


@pytest.fixture
def deploy(tmp_path, redis_url, monkeypatch):
    """deploy(database_url, api_root, worker_root=None) -> (API client, sent messages, run_task(message),
    the worker's pipeline); without worker_root the worker shares the API's project folder (one host)."""
    from stack.pipeline.service import Pipeline
    from stack.worker import app as worker_app
    from stack.worker import tasks

    sent: list[dict] = []
    monkeypatch.setattr(worker_app.app, "send_task", lambda name, **kw: sent.append(kw))

    def make(database_url: str | None, api_root: Path, worker_root: Path | None = None):
        api_host = Host(api_root, redis_url, database_url)
        client = TestClient(create_app(api_host.settings))
        client.headers["Authorization"] = "Bearer k3y"
        worker = Pipeline(Host(worker_root or api_root, redis_url, database_url).settings)
        monkeypatch.setattr(tasks, "pipeline", lambda: worker)
        r = _client(redis_url)
        monkeypatch.setattr(tasks, "_redis", lambda: r)  # the worker's Redis: the same real server

        def run_task(message: dict):
            return tasks.ingest_document.apply(kwargs=message["kwargs"], task_id=message["task_id"])

        return client, sent, run_task, worker

    yield make
    tasks.liveness.stop()


def _client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def upload(client, path: Path) -> dict:
    response = client.post("/api/documents", files=[("files", (path.name, path.read_bytes()))])
    assert response.status_code == 202, response.text
    return response.json()["documents"][0]


def scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ragctl-task-*")}


def test_a_worker_without_the_api_s_disk_ingests_from_postgres(deploy, tmp_path, postgres_url):  # noqa: F811
    # The folder-backed run first (one host: the worker reads the API's data/uploads), for the chunk count.
    client, sent, run_task, worker = deploy(None, tmp_path / "one-host")
    entry = upload(client, SAMPLE)
    (message,) = sent
    record = worker.catalog.get("default", entry["document_id"])
    assert message["kwargs"]["path"] == record.stored_path == str(
        tmp_path / "one-host" / "data" / "uploads" / entry["document_id"] / SAMPLE.name)
    run_task(message)
    folder_record = worker.catalog.get("default", entry["document_id"])
    assert folder_record.status == "done" and folder_record.chunks > 0, folder_record.error
    sent.clear()

    # The same file through the API of a PostgreSQL-backed stack, to a worker on another "host".
    client, sent, run_task, worker = deploy(postgres_url, tmp_path / "api", worker_root=tmp_path / "worker")
    before = scratch_folders()
    entry = upload(client, SAMPLE)
    (message,) = sent
    document_id = entry["document_id"]
    record = worker.catalog.get("default", document_id)  # the API's record, read through the database
    # The reference the task gets is the record's stored_path (what the reaper and retry re-queue with).
    assert message["kwargs"]["path"] == record.stored_path == f"postgresql-blob:{document_id}/{SAMPLE.name}"
    assert record.status == "queued" and worker.blobs.exists(record.stored_path)
    uploads = tmp_path / "api" / "data" / "uploads"
    assert [p.name for p in uploads.iterdir()] == [".incoming"] and not any((uploads / ".incoming").iterdir())
    shutil.rmtree(uploads)  # the API's disk is not the worker's
    assert not (tmp_path / "worker" / "data" / "uploads").exists()

    result = run_task(message)
    assert result.successful(), result.result
    done = worker.catalog.get("default", document_id)
    assert done.status == "done", done.error
    assert done.chunks == folder_record.chunks and result.result["chunks"] == done.chunks
    assert "02:00" in worker.ask("What time do nightly backups run?").answer
    assert not (tmp_path / "worker" / "data" / "uploads").exists()  # nothing written outside the scratch
    assert scratch_folders() == before  # the task's scratch folder is gone

    # The API's own show of the document, and its delete, go through the database too.
    assert client.get(f"/api/documents/{document_id[:12]}").json()["status"] == "done"
    assert worker.texts.where(document_id).endswith(f"extracted/{document_id}")
    assert client.delete(f"/api/documents/{document_id}").status_code == 200
    assert not worker.blobs.exists(record.stored_path) and worker.texts.where(document_id) is None


@pytest.mark.parametrize("backend", ["folder", "postgres"])
def test_a_missing_blob_fails_the_document_with_where_it_should_be(deploy, tmp_path, backend, request):
    database_url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    client, sent, run_task, worker = deploy(database_url, tmp_path / "api",
                                            worker_root=tmp_path / "worker" if database_url else None)
    before = scratch_folders()
    entry = upload(client, SAMPLE)
    (message,) = sent
    client.app.state.pipeline.blobs.delete(entry["document_id"])  # the bytes lost between upload and worker

    result = run_task(message)
    assert result.failed() and "blob_missing" in str(result.result)
    record = worker.catalog.get("default", entry["document_id"])
    assert record.status == "failed" and record.error_code == "blob_missing"
    assert SAMPLE.name in record.error and entry["document_id"][:12] in record.error
    where = (f"blobs/{entry['document_id']}" if database_url
             else str(tmp_path / "api" / "data" / "uploads" / entry["document_id"] / SAMPLE.name))
    assert where in record.error, record.error
    assert "Traceback" not in record.error and record.log[-1].split(" ", 1)[1].startswith("failed: ")
    body = client.get(f"/api/tasks/{message['task_id']}").json()
    assert body["status"] == "failed" and body["error_code"] == "blob_missing", body
    assert scratch_folders() == before
