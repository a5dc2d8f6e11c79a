"""The API in-process with the queue replaced by a recorder and Redis by a stand-in (``api``: a
TestClient with the key set, ``.sent`` the tasks it queued, ``.catalog``), and helpers to upload."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.names import DocumentStatus
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis


@pytest.fixture
def api(tmp_path, monkeypatch):
    from stack import coordination
    from stack.worker import app as worker_app

    sent = []
    monkeypatch.setattr(worker_app.app, "send_task", lambda name, **kw: sent.append((name, kw)))
    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())
    app = create_app(load_settings(tmp_path / "project", {"api_key": "k3y"}))
    client = TestClient(app)
    client.headers["Authorization"] = "Bearer k3y"
    client.sent, client.catalog = sent, app.state.pipeline.catalog
    return client


def note(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    return path


def upload(client, *paths, **params):
    files = [("files", (p.name, p.read_bytes(), "text/markdown")) for p in paths]
    return client.post("/api/documents", files=files, params=params)


def set_status(client, document_id: str, status: DocumentStatus) -> None:
    record = client.catalog.get("default", document_id)
    record.status = status
    client.catalog.upsert(record)
