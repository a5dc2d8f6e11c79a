"""A local-runtime stack (redis-server, Chroma, uvicorn, Celery workers and beat) on loopback, driven
over its HTTP API, and documents long enough to catch a worker mid-embedding."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from ragctl.project import read_dotenv
from ragctl.runtime.local import LocalRuntime


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = LocalRuntime(root)
        self.runtime.up(workers=2, wait_s=180)
        status = self.runtime.status()
        self.api_url = status.api_url
        self.key = read_dotenv(root / ".env")["RAG_API_KEY"]
        self.http = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)
        self.chroma_url = status.chroma_url

    def upload(self, *paths: Path, **params) -> list[dict]:
        files = [("files", (p.name, p.read_bytes())) for p in paths]
        response = self.http.post("/api/documents", files=files, params=params)
        assert response.status_code in (200, 202), response.text
        return response.json()["documents"]

    def task(self, task_id: str) -> dict:
        return self.http.get(f"/api/tasks/{task_id}").json()

    def wait_for(self, task_id: str, statuses: tuple[str, ...], timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = self.task(task_id)
            if record["status"] in statuses:
                return record
            time.sleep(0.25)
        raise AssertionError(f"task {task_id} still {self.task(task_id)['status']} after {timeout_s} s")

    def chunk_ids_in_store(self, document_id: str) -> list[str]:
        from chromadb.errors import NotFoundError

        from stack.pipeline.store import open_chroma

        client = open_chroma(self.runtime.client_settings())  # with the stack's token
        try:
            collection = client.get_collection("default")
        except NotFoundError:  # nothing was ever stored
            return []
        return collection.get(where={"doc_id": document_id}, include=[])["ids"]

    def worker_pid(self, worker_name: str) -> int:
        service = worker_name.split("@", 1)[0]
        return next(s.pid for s in self.runtime.ps() if s.name == service)


def long_document(folder: Path, seed: str, sentences: int = 2500) -> Path:
    """A text document of a few hundred chunks: long enough to catch its worker mid-embedding."""
    lines = [
        f"Record {seed}-{i}: the nightly job on host h{i % 50} copied {i * 7 % 1000} files to vault {i % 9} "
        f"and finished at {i % 24:02d}:{i % 60:02d}."
        for i in range(sentences)
    ]
    path = folder / f"long-{seed}.txt"
    path.write_text(" ".join(lines), encoding="utf-8")
    return path
