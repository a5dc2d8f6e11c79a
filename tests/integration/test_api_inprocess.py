"""API routes that need no queue, in-process (FastAPI's TestClient): streaming answers through the
local OpenAI-compatible test server, search and documents JSON, auth, and the OpenAPI contract."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from stack.api.app import create_app
from tests.support.llm_server import FakeLLM
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture
def api(make_pipeline):
    def make(**overrides):
        pipeline = make_pipeline(api_key="k3y", **overrides)
        assert pipeline.ingest_file(SAMPLES / "backup-procedure.pdf").status == "done"
        client = TestClient(create_app(pipeline.settings))
        client.headers["Authorization"] = "Bearer k3y"
        return client

    return make


def test_ask_streams_server_sent_events_from_the_llm(api):
    with FakeLLM() as llm:
        client = api(openai_api_key="sk-local", openai_base_url=llm.base_url, llm_model="local-model")
        with client.stream("POST", "/api/ask", json={"question": "How long are backups kept?", "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
    events = [block.split("\n", 1) for block in body.strip().split("\n\n")]
    names = [head.removeprefix("event: ") for head, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and "delta" in names
    done = json.loads(events[-1][1].removeprefix("data: "))
    assert done["mode"] == "llm" and done["model"] == "local-model" and done["answer"].strip().endswith("[1]")
    assert done["sources"][0]["file"] == "backup-procedure.pdf"
    streamed = "".join(json.loads(data.removeprefix("data: ")) for head, data in events if head == "event: delta")
    assert streamed == done["answer"]


def test_ask_without_an_llm_is_extractive_json_even_when_streaming_is_asked(api):
    client = api()
    response = client.post("/api/ask", json={"question": "What time do nightly backups run?", "stream": True})
    assert response.status_code == 200 and response.json()["mode"] == "extractive"
    assert "02:00" in response.json()["answer"]


def test_search_documents_and_auth(api):
    client = api()
    hits = client.post("/api/search", json={"query": "backup retention days", "top_k": 2}).json()["hits"]
    assert hits[0]["file"] == "backup-procedure.pdf" and hits[0]["page"] in (1, 2) and len(hits) <= 2
    documents = client.get("/api/documents").json()
    assert documents[0]["status"] == "done" and "stored_path" not in documents[0]
    assert client.get(f"/api/documents/{documents[0]['id'][:8]}").json()["id"] == documents[0]["id"]
    assert client.get("/api/documents/ffffffff").status_code == 404
    assert client.post("/api/search", json={"query": ""}).status_code == 422
    anonymous = TestClient(client.app)
    assert anonymous.get("/api/documents").status_code == 401
    assert anonymous.get("/api/health").status_code == 200
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert {"/api/documents", "/api/tasks/{task_id}", "/api/search", "/api/ask", "/metrics"} <= set(paths)


def test_a_documents_extracted_text_is_served_and_the_client_reads_where_it_is_kept(api):
    """``GET /api/documents/{id}/text``: the parser's text and where the stack keeps it, behind the
    key and the collection as every document route; ``documents show`` reads it through the client."""
    from ragctl.client import StackClient

    client = api()
    (document,) = client.get("/api/documents").json()
    served = client.get(f"/api/documents/{document['id'][:8]}/text")
    assert served.status_code == 200, served.text
    body = served.json()
    assert body["document_id"] == document["id"] and body["file_name"] == "backup-procedure.pdf"
    assert "02:00" in body["text"] and body["where"].endswith(f"{document['id']}.txt")
    assert client.get("/api/documents/ffffffff/text").status_code == 404
    assert client.get(f"/api/documents/{document['id']}/text", params={"collection": "other"}).status_code == 404
    assert TestClient(client.app).get(f"/api/documents/{document['id']}/text").status_code == 401
    stack = StackClient("http://testserver", "k3y")
    stack.http = client
    assert stack.extracted_where(document["id"], collection="default") == body["where"]
    assert stack.extracted_where("ffffffff") is None  # not there: nothing to point at, not an error
