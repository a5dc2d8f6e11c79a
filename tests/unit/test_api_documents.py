"""The upload, retry and cancel routes in-process, with the queue replaced by a recorder and Redis
by a stand-in: what the intake policy answers over HTTP, without services or the embedding model."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stack.names import INGEST_QUEUE, INGEST_TASK, DocumentStatus
from tests.support.documents_api import note, set_status, upload


def test_upload_queues_then_answers_duplicates_by_status(api, tmp_path):
    path = note(tmp_path, "a.md", "alpha")
    first = upload(api, path)
    assert first.status_code == 202
    entry = first.json()["documents"][0]
    assert entry["status"] == "queued" and not entry["duplicate"] and first.json()["rejected"] == []
    assert entry["status_url"] == f"/api/tasks/{entry['task_id']}"
    assert api.sent == [(INGEST_TASK, {"kwargs": {"collection": "default", "document_id": entry["document_id"],
                                                  "path": api.sent[0][1]["kwargs"]["path"], "file_name": "a.md"},
                                       "task_id": entry["task_id"], "queue": INGEST_QUEUE})]

    # Queued or in progress: the existing task, nothing queued twice.
    for status in (DocumentStatus.QUEUED, DocumentStatus.EMBEDDING):
        set_status(api, entry["document_id"], status)
        again = upload(api, path)
        assert again.status_code == 200
        assert again.json()["documents"][0] | {"status": None} == entry | {"duplicate": True, "status": None}
        assert again.json()["documents"][0]["status"] == status
    # Done: a duplicate too.
    set_status(api, entry["document_id"], DocumentStatus.DONE)
    assert upload(api, path).json()["documents"][0]["duplicate"] is True
    assert len(api.sent) == 1
    # replace=true re-queues even a done document.
    replaced = upload(api, path, replace="true")
    assert replaced.status_code == 202 and replaced.json()["documents"][0]["task_id"] != entry["task_id"]
    assert len(api.sent) == 2


@pytest.mark.parametrize("status", [DocumentStatus.FAILED, DocumentStatus.CANCELLED])
def test_reupload_of_a_failed_or_cancelled_document_retries_it(api, tmp_path, status):
    path = note(tmp_path, "b.md", "beta")
    entry = upload(api, path).json()["documents"][0]
    set_status(api, entry["document_id"], status)
    again = upload(api, path)
    assert again.status_code == 202
    retried = again.json()["documents"][0]
    assert not retried["duplicate"] and retried["status"] == "queued" and retried["task_id"] != entry["task_id"]
    record = api.catalog.get("default", entry["document_id"])
    assert record.task_id == retried["task_id"] and "retrying" in " ".join(record.log)


def test_cancel_a_queued_task_then_retry_it(api, tmp_path):
    entry = upload(api, note(tmp_path, "c.md", "gamma")).json()["documents"][0]
    assert api.post(f"/api/documents/{entry['document_id']}/retry").status_code == 409  # queued: not retryable
    cancelled = api.delete(f"/api/tasks/{entry['task_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert api.delete(f"/api/tasks/{entry['task_id']}").json()["error"]["code"] == "finished"
    retry = api.post(f"/api/documents/{entry['document_id'][:8]}/retry")
    assert retry.status_code == 202 and retry.json()["status"] == "queued" and not retry.json()["duplicate"]
    assert api.get(retry.json()["status_url"]).json()["document_id"] == entry["document_id"]


def test_uploads_paused_answer_503_and_keep_nothing(api, tmp_path, monkeypatch):
    from stack import coordination

    monkeypatch.setattr(coordination, "intake_paused", lambda r: "backup")
    response = upload(api, note(tmp_path, "d.md", "delta"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "intake_paused"
    assert api.sent == [] and api.catalog.list() == []


def test_a_file_of_no_known_type_is_rejected_alone(api, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    alone = upload(api, junk)
    assert alone.status_code in (415, 422) and "junk.bin" in alone.json()["error"]["message"]
    mixed = upload(api, junk, note(tmp_path, "e.md", "epsilon"))
    assert mixed.status_code == 202 and mixed.json()["rejected"][0]["file_name"] == "junk.bin"


def test_queue_unreachable_is_503_and_the_document_failed(api, tmp_path, monkeypatch):
    from stack.worker import app as worker_app

    def refuse(*args, **kwargs):
        raise ConnectionError("redis away")

    monkeypatch.setattr(worker_app.app, "send_task", refuse)
    response = upload(api, note(tmp_path, "f.md", "phi"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "queue_unavailable"
    (record,) = api.catalog.list()
    assert record.status == "failed" and record.error_code == "queue_unavailable"


def test_auth_and_liveness(api):
    anonymous = TestClient(api.app)
    assert anonymous.get("/api/health").status_code == 200
    for method, path in (("get", "/api/documents"), ("post", "/api/documents"), ("get", "/api/tasks/x"),
                         ("get", "/metrics"), ("get", "/api/health/ready")):
        response = getattr(anonymous, method)(path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", path
    assert api.get("/api/tasks/nope").status_code == 404
