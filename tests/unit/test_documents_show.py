"""``documents show ID --chunks --json`` carries the chunks in both modes: embedded (the pipeline)
and stack (the StackClient over HTTP, here served by a mock transport)."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from ragctl.client import StackClient
from stack.contract import DocumentRecord

DOC_ID = "ab" * 32
ROWS = [(f"{DOC_ID}:0", "first chunk", {"page": 1, "section": "Intro", "heading": "Intro"}),
        (f"{DOC_ID}:1", "second chunk", {"page": 2, "section": "Body", "heading": "Intro > Body"})]


def record(status: str = "done") -> DocumentRecord:
    return DocumentRecord(id=DOC_ID, collection="default", file_name="a.md", size=10, status=status, chunks=2,
                          created_at=1.0, updated_at=2.0)


class FakeEmbedded:
    """The embedded backend's side of ``documents show`` (the stack's is the real client below)."""

    mode = "embedded"

    def __init__(self, status: str = "done") -> None:
        self.status = status

    def extracted_where(self, document_id, *, collection=None):
        return None

    def document(self, id_prefix, *, collection=None):
        assert DOC_ID.startswith(id_prefix)
        return record(self.status)

    def chunks_of(self, rec):
        return ROWS


def stack_client(status: str = "done") -> StackClient:
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/api/documents/{DOC_ID}/chunks":
            assert request.url.params["collection"] == "default"
            return httpx.Response(200, json=[] if status != "done" else [
                {"chunk_id": cid, "text": text, **meta} for cid, text, meta in ROWS])
        if request.url.path.startswith("/api/documents/"):
            return httpx.Response(200, json=record(status).to_dict())
        return httpx.Response(404, json={"error": {"code": "not_found", "message": request.url.path}})

    client = StackClient("http://stack.test")
    client.http = httpx.Client(base_url="http://stack.test", transport=httpx.MockTransport(serve))
    return client


@pytest.fixture
def project(tmp_path):
    from ragctl.project import init_project

    root = tmp_path / "p"
    init_project(root)
    return root


def show(project, monkeypatch, backend, *args):
    from ragctl.cli import app, data

    monkeypatch.setattr(data, "open_backend", lambda: backend)
    result = CliRunner().invoke(app, ["--project", str(project), "documents", "show", DOC_ID[:8], *args])
    return result.exit_code, result.stdout


@pytest.mark.parametrize("mode", ["embedded", "stack"])
def test_show_with_chunks_json_carries_every_chunk_in_both_modes(project, monkeypatch, mode):
    backend = FakeEmbedded() if mode == "embedded" else stack_client()
    code, out = show(project, monkeypatch, backend, "--chunks", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == DOC_ID and shown["chunk_count"] == 2
    assert [c["chunk_id"] for c in shown["chunks"]] == [f"{DOC_ID}:0", f"{DOC_ID}:1"]
    assert shown["chunks"][1]["text"] == "second chunk" and shown["chunks"][1]["heading"] == "Intro > Body"
    assert shown["chunks"][0]["page"] == 1


@pytest.mark.parametrize("mode", ["embedded", "stack"])
def test_show_json_without_chunks_keeps_the_count(project, monkeypatch, mode):
    backend = FakeEmbedded() if mode == "embedded" else stack_client()
    code, out = show(project, monkeypatch, backend, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["chunks"] == 2 and shown["chunk_count"] == 2
