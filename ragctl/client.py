"""The CLI's client for a running stack: the API over HTTP, returning the pipeline's own types.

Same method names and result types as ``stack.pipeline.service.Pipeline`` where the two meet
(search, ask, documents, document, delete_document), so the CLI renders both modes alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from stack.names import TERMINAL
from stack.pipeline.answer import Answer, Source
from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.errors import PipelineError
from stack.pipeline.retrieve import Hit


class StackError(PipelineError):
    def __init__(self, code: str, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.code, self.exit_code = code, exit_code


def _record(data: dict) -> DocumentRecord:
    fields = DocumentRecord.__dataclass_fields__
    return DocumentRecord(**{k: v for k, v in data.items() if k in fields})


class StackClient:
    def __init__(self, api_url: str, api_key: str | None = None, *, timeout_s: float = 60.0) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout_s)

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise StackError("not_running", f"The stack's API at {self.api_url} is not reachable: {exc}",
                             "ragctl ps   (then ragctl up)", exit_code=5) from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": f"http_{response.status_code}", "message": response.text[:500], "hint": None}
            raise StackError(error.get("code", "error"), error.get("message", ""), error.get("hint"))
        return response

    # -- documents in -------------------------------------------------------------------------
    def upload(self, path: Path, *, collection: str | None = None, replace: bool = False) -> dict:
        """Register one file; returns the API's entry for it ({document_id, task_id, status, duplicate…})."""
        params = {"replace": str(replace).lower()} | ({"collection": collection} if collection else {})
        with path.open("rb") as handle:
            response = self._call("POST", "/api/documents", params=params, files={"files": (path.name, handle)})
        return response.json()["documents"][0]

    def task(self, task_id: str) -> DocumentRecord:
        return _record(self._call("GET", f"/api/tasks/{task_id}").json())

    def wait(self, task_ids: Iterable[str], on_update: Callable[[DocumentRecord], None], *,
             poll_s: float = 0.5, timeout_s: float | None = None) -> dict[str, DocumentRecord]:
        """Poll tasks until each ends; ``on_update`` sees every change."""
        pending, final = set(task_ids), {}
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while pending:
            for task_id in sorted(pending):
                record = self.task(task_id)
                on_update(record)
                if record.status in TERMINAL:
                    final[task_id] = record
            pending -= final.keys()
            if pending:
                if deadline and time.monotonic() > deadline:
                    raise StackError("timeout", f"{len(pending)} tasks still running after {timeout_s:.0f} s.",
                                     "ragctl tasks show TASK_ID   (they go on in the background)")
                time.sleep(poll_s)
        return final

    def cancel(self, task_id: str) -> DocumentRecord:
        return _record(self._call("DELETE", f"/api/tasks/{task_id}").json())

    def retry(self, document_id: str, *, collection: str | None = None) -> dict:
        params = {"collection": collection} if collection else {}
        return self._call("POST", f"/api/documents/{document_id}/retry", params=params).json()

    # -- the catalog ----------------------------------------------------------------------------
    def documents(self, *, collection: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        params = {k: v for k, v in {"collection": collection, "status": status}.items() if v}
        return [_record(d) for d in self._call("GET", "/api/documents", params=params).json()]

    def document(self, id_prefix: str, *, collection: str | None = None) -> DocumentRecord:
        params = {"collection": collection} if collection else {}
        return _record(self._call("GET", f"/api/documents/{id_prefix}", params=params).json())

    def chunks_of(self, record: DocumentRecord) -> list[tuple[str, str, dict]]:
        rows = self._call("GET", f"/api/documents/{record.id}/chunks", params={"collection": record.collection}).json()
        return [(row["chunk_id"], row["text"],
                 {"page": row["page"], "section": row["section"], "heading": row.get("heading")}) for row in rows]

    def delete_document(self, id_prefix: str, *, collection: str | None = None) -> None:
        params = {"collection": collection} if collection else {}
        self._call("DELETE", f"/api/documents/{id_prefix}", params=params)

    # -- questions ------------------------------------------------------------------------------
    def search(self, query: str, *, collection: str | None = None, top_k: int | None = None,
               mode: str = "hybrid") -> list[Hit]:
        body = {"query": query, "mode": mode, "top_k": top_k, "collection": collection}
        hits = self._call("POST", "/api/search", json={k: v for k, v in body.items() if v is not None}).json()["hits"]
        return [
            Hit(h["chunk_id"], h["document_id"], h["text"],
                {"doc_id": h["document_id"], "file_name": h["file"], "page": h["page"], "section": h["section"],
                 "heading": h.get("heading")},
                h["score"], h["bm25"], h["dense"])
            for h in hits
        ]

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None) -> Answer:
        body = {"question": question, "top_k": top_k, "collection": collection}
        data = self._call("POST", "/api/ask", json={k: v for k, v in body.items() if v is not None}).json()
        data["sources"] = [Source(**s) for s in data["sources"]]
        return Answer(**data)
