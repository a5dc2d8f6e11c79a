"""The CLI's client for a running stack: the API over HTTP, returning the contract's types.

A :class:`ragctl.backends.Backend`, as the embedded backend is: the data commands call the same
methods whichever they hold, and render both alike.  Only the contract is imported from ``stack``,
so a base install (no ``[stack]`` extra) drives a running stack.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import httpx

from ragctl.backends import IngestWatcher
from stack.contract import (
    Answer,
    CollectionInfo,
    DocumentRecord,
    Hit,
    IngestResult,
    InvalidQuestion,
    ParseReport,
    PipelineError,
    Source,
    check_question,
    printable,
)
from stack.names import TERMINAL

#: Pauses before trying a refused connection again (3.5 s in all, then the error is the user's).
CONNECT_RETRY_DELAYS_S = (0.5, 1.0, 2.0)


class StackError(PipelineError):
    def __init__(self, code: str, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.code, self.exit_code = code, exit_code


#: The API's codes for a question it refuses (stack.pipeline.questions); the CLI exits 2 for them.
QUESTION_ERRORS = {"empty_question", "question_too_long"}


def _record(data: dict) -> DocumentRecord:
    fields = DocumentRecord.__dataclass_fields__
    return DocumentRecord(**{k: v for k, v in data.items() if k in fields})


def _collection(data: dict) -> CollectionInfo:
    fields = CollectionInfo.__dataclass_fields__
    return CollectionInfo(**{k: v for k, v in data.items() if k in fields})


class StackClient:
    mode = "stack"

    def __init__(self, api_url: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 verify: ssl.SSLContext | bool = True) -> None:
        """``verify``: an SSL context trusting a stack's self-signed certificate (Runtime.api_verify),
        or True for the system's trust store.  Never False."""
        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout_s, verify=verify)

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._send(method, path, **kwargs)
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

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One request; a connection that could not be made is tried again for a few seconds (nothing
        was sent: safe for any method), so that an API replica being replaced (a rolling update, a
        restart behind the routing mesh or Nginx) costs a question a moment, not an error."""
        for delay in CONNECT_RETRY_DELAYS_S:
            try:
                return self.http.request(method, path, **kwargs)
            except httpx.ConnectError:
                time.sleep(delay)
                if kwargs.get("files"):
                    for value in kwargs["files"].values():
                        value[1].seek(0)
        return self.http.request(method, path, **kwargs)

    def readiness(self) -> dict:
        """The API's readiness (``/api/health/ready``): its checks, live workers and where each
        encodes.  An unready stack answers 503 with the same body, returned as it is."""
        try:
            response = self._send("GET", "/api/health/ready")
        except httpx.TransportError as exc:
            raise StackError("not_running", f"The stack's API at {self.api_url} is not reachable: {exc}",
                             "ragctl ps   (then ragctl up)", exit_code=5) from exc
        if response.status_code == 503:
            return response.json()
        return self._call("GET", "/api/health/ready").json() if response.status_code >= 400 else response.json()

    # -- documents in -------------------------------------------------------------------------
    def upload(self, path: Path, *, collection: str | None = None, replace: bool = False,
               path_name: str | None = None) -> dict:
        """Register one file; returns the API's entry for it ({document_id, task_id, status, duplicate…}).

        The file is read here first, safely and once (:func:`stack.contract.spooled`): a FIFO,
        socket, vanished, unreadable or changing file raises that file's PipelineError before any
        request, so a batch fails it alone; the bytes sent are the bytes read."""
        from stack.contract import spooled

        params = {"replace": str(replace).lower()} | ({"collection": collection} if collection else {})
        if path_name is not None:
            params["path_name"] = path_name
        with spooled(path) as handle:
            response = self._call("POST", "/api/documents", params=params, files={"files": (printable(path.name), handle)})
        return response.json()["documents"][0]

    def ingest_files(self, files: Sequence[Path], *, collection: str | None = None, force: bool = False,
                     wait: bool = True, names: Mapping[Path, str] | None = None,
                     watcher: IngestWatcher | None = None) -> list[IngestResult]:
        """Upload every file (the API answers at once), then, with ``wait``, follow the workers until
        each document ends.  A file the upload cannot read is its own failed row; an error that is
        not the file's (the API unreachable, a key refused) ends the batch.  The same bytes already
        there are ``skipped`` (``force`` replaces them), unless their ingest is still running: then
        it is followed like a new one."""
        names = names or {}
        rows: list[IngestResult] = []
        waiting: dict[str, tuple[IngestResult, Callable[[str, float], None] | None]] = {}
        for file in files:
            started = time.perf_counter()
            result = IngestResult(printable(file), printable(names.get(file, file.name)), "failed")
            rows.append(result)
            try:
                entry = self.upload(file, collection=collection, replace=force, path_name=names.get(file))
            except PipelineError as exc:
                if exc.exit_code != 1:
                    raise
                result.error = exc.to_dict()
                result.seconds = round(time.perf_counter() - started, 3)
                if watcher:
                    watcher.ended(result)
                continue
            result.document_id = entry["document_id"]
            # The same bytes: ended already (or another file of this batch, or not waited for) is
            # skipped; an ingest still running is followed, so the row says how it ends.
            if entry["duplicate"] and (entry["status"] in TERMINAL or not wait or entry["task_id"] in waiting):
                result.status, result.note = "skipped", f"already {entry['status']} (use --force to re-ingest)"
            elif not wait:
                result.status, result.note = "queued", f"task {entry['task_id']}"
            else:
                waiting[entry["task_id"]] = (result, watcher.started(file) if watcher else None)
                continue
            if watcher:
                watcher.ended(result)
        ended: set[str] = set()

        def update(record: DocumentRecord) -> None:
            result, report = waiting[record.task_id]
            if report:
                report(record.status, record.progress)
            if record.status in TERMINAL and record.task_id not in ended:
                ended.add(record.task_id)
                result.status, result.chunks, result.format = record.status, record.chunks, record.format
                result.report = record.report if ParseReport.from_dict(record.report) else None
                result.seconds = round(sum(record.timings.values()), 3)
                if record.error:
                    result.error = {"code": record.error_code, "message": record.error, "hint": None}
                if watcher:
                    watcher.ended(result)

        if waiting:
            self.wait(list(waiting), update)
        return rows

    def task(self, task_id: str) -> DocumentRecord:
        """The document a task id (or a 4+ character prefix of one) was given to, as it is now.

        Any id the document was ever given answers, also after a re-queue or a retry; the record's
        ``task_id`` is the id asked about, so a caller waiting on it keeps recognising it."""
        return _record(self.task_view(task_id))

    def task_view(self, task_id: str) -> dict:
        """The API's whole answer for a task id: the document, plus ``current_task_id``,
        ``superseded`` and ``task_ids`` (every id of the document).  An ambiguous prefix is a usage
        error (exit 2) whose message lists the matches."""
        return self._task_call("GET", task_id)

    def _task_call(self, method: str, task_id: str) -> dict:
        from urllib.parse import quote

        try:
            return self._call(method, f"/api/tasks/{quote(task_id, safe='')}").json()
        except StackError as exc:
            if exc.code == "ambiguous":
                exc.exit_code = 2
            raise

    def tasks(self, *, limit: int = 20, collection: str | None = None) -> list[dict]:
        """Recent task ids, newest first, each with its document's current state."""
        params = {"limit": limit} | ({"collection": collection} if collection else {})
        return self._call("GET", "/api/tasks", params=params).json()

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
        """Cancel the current task of the document a task id (or prefix) was given to."""
        return _record(self._task_call("DELETE", task_id))

    def retry(self, document_id: str, *, collection: str | None = None) -> dict:
        params = {"collection": collection} if collection else {}
        return self._call("POST", f"/api/documents/{document_id}/retry", params=params).json()

    def metrics(self) -> str:
        """The API's Prometheus text (/metrics): what ``ragctl top`` shows."""
        return self._call("GET", "/metrics").text

    # -- the catalog ----------------------------------------------------------------------------
    def extracted_where(self, document_id: str, *, collection: str | None = None) -> str | None:
        """Where the stack keeps a document's extracted text (a file under extracted_results/, or its
        database), as its API says (``GET /api/documents/{id}/text``); None when none is kept, or when
        the API cannot say (its text store is down, or a stack from before that route): ``documents
        show`` then says nothing of it rather than fail."""
        params = {"collection": collection} if collection else {}
        try:
            return self._call("GET", f"/api/documents/{document_id}/text", params=params).json().get("where")
        except StackError:
            return None

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

    def rename_document(self, document_id: str, file_name: str, *, collection: str | None = None) -> dict:
        params = {"collection": collection} if collection else {}
        return self._call("PATCH", f"/api/documents/{document_id}", params=params,
                          json={"file_name": file_name}).json()

    def delete_document(self, id_prefix: str, *, collection: str | None = None) -> None:
        params = {"collection": collection} if collection else {}
        self._call("DELETE", f"/api/documents/{id_prefix}", params=params)

    # -- questions ------------------------------------------------------------------------------
    def where(self) -> str:
        return f"API at {self.api_url}"

    def warm_up(self, collection: str | None = None) -> None:
        """Nothing to load here: the stack's services load their models when they start."""

    def model_notice(self, collection: str | None = None) -> str | None:
        return None  # a stack's collection on an earlier model: ragctl doctor says so

    def embedding(self, collection: str) -> dict:
        """Where the live workers encode, from the readiness (issue #25); {} when it is not known."""
        try:
            where = self.readiness().get("embedding") or {}
        except PipelineError:
            return {}
        seen = next((w for w in where.values() if isinstance(w, dict) and w.get("backend")), None)
        return {key: seen.get(key) for key in ("backend", "engine", "device")} if seen else {}

    def _question_call(self, path: str, body: dict) -> dict:
        try:
            return self._call("POST", path, json={k: v for k, v in body.items() if v is not None}).json()
        except StackError as exc:
            if exc.code in QUESTION_ERRORS:  # the server's limit, when it differs from ours: still a usage error
                exc.exit_code = InvalidQuestion.exit_code
            raise

    def search(self, query: str, *, collection: str | None = None, top_k: int | None = None,
               mode: str = "hybrid") -> list[Hit]:
        check_question(query, what="query")  # the pipeline's own check: same code, message and exit 2 as embedded
        body = {"query": query, "mode": mode, "top_k": top_k, "collection": collection}
        hits = self._question_call("/api/search", body)["hits"]
        return [
            Hit(h["chunk_id"], h["document_id"], h["text"],
                {"doc_id": h["document_id"], "file_name": h["file"], "page": h["page"], "section": h["section"],
                 "heading": h.get("heading")},
                h["score"], h["bm25"], h["dense"])
            for h in hits
        ]

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None,
            generation: int | None = None) -> Answer:
        """``generation``: a given generation of the collection's index (the gate asks a reindex's new one)."""
        check_question(question)
        body = {"question": question, "top_k": top_k, "collection": collection, "generation": generation}
        data = self._question_call("/api/ask", body)
        data["sources"] = [Source(**s) for s in data["sources"]]
        return Answer(**data)

    # -- blue/green reindex (issue #28): a worker builds, the CLI's gate decides ------------------------
    def reindex(self, collection: str, action: str) -> dict:
        """Start a reindex step on a worker (build, build_and_swap, swap, discard); where it stands."""
        from urllib.parse import quote

        return self._call("POST", f"/api/collections/{quote(collection, safe='')}/reindex",
                          json={"action": action}).json()

    def reindex_state(self, collection: str) -> dict:
        from urllib.parse import quote

        return self._call("GET", f"/api/collections/{quote(collection, safe='')}/reindex").json()

    # -- collections (issue #26): the same methods as the embedded Pipeline's ----------------------
    def collections(self) -> list[CollectionInfo]:
        return [_collection(data) for data in self._call("GET", "/api/collections").json()]

    def collection_info(self, name: str) -> CollectionInfo:
        from urllib.parse import quote

        return _collection(self._call("GET", f"/api/collections/{quote(name, safe='')}").json())

    def create_collection(self, name: str, description: str | None = None) -> CollectionInfo:
        return _collection(self._call("POST", "/api/collections",
                                      json={"name": name, "description": description}).json())

    def delete_collection(self, name: str) -> CollectionInfo:
        from urllib.parse import quote

        return _collection(self._call("DELETE", f"/api/collections/{quote(name, safe='')}").json())

    # -- access (the admin key's business) ------------------------------------------------------
    def whoami(self) -> dict:
        return self._call("GET", "/api/whoami").json()

    def create_key(self, name: str, role: str, collections: list[str] | None = None) -> dict:
        """A new key with a role (scoped to ``collections``; None: all): its record and, this once, the key."""
        body = {"name": name, "role": role} | ({"collections": collections} if collections is not None else {})
        return self._call("POST", "/api/keys", json=body).json()

    def keys(self) -> list[dict]:
        return self._call("GET", "/api/keys").json()

    def revoke_key(self, name: str) -> dict:
        from urllib.parse import quote

        return self._call("DELETE", f"/api/keys/{quote(name, safe='')}").json()
