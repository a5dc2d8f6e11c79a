"""The API in-process with an admin key (``make_app``: a factory fixture), clients with a key and an
address, and new keys of a role."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from stack.settings import load_settings
from tests.support.fake_redis import FakeRedis

ADMIN = "adm1n-k3y"


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    from stack import coordination
    from stack.worker import app as worker_app

    monkeypatch.setattr(worker_app.app, "send_task", lambda name, **kw: None)
    monkeypatch.setattr(coordination, "redis_client", lambda url: FakeRedis())

    def make(**overrides):
        return create_app(load_settings(tmp_path / "project", {"api_key": ADMIN, **overrides}))

    return make


def client(app, key: str | None = None, address: str = "198.51.100.7", **headers) -> TestClient:
    c = TestClient(app, client=(address, 40000))
    if key:
        c.headers["Authorization"] = f"Bearer {key}"
    c.headers.update(headers)
    return c


def new_key(app, name: str, role: str = "ask", collections: list[str] | None = None) -> str:
    body = {"name": name, "role": role} | ({"collections": collections} if collections is not None else {})
    response = client(app, ADMIN).post("/api/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]
