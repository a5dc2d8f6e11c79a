"""The FastAPI application.  Routes are thin: they validate, call the pipeline's catalog and
search functions, or hand a document to the workers.  The API never parses or embeds a document.

Run it with ``uvicorn stack.api.app:app`` (settings from the environment; see stack/settings.py).
"""


import json
import secrets
import socket
import time
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ragctl import __version__
from stack import coordination
from stack.api import schemas
from stack.api.metrics import ApiMetrics
from stack.api.uploads import UploadError, move_into_place, receive_form
from stack.pipeline.answer import Answer
from stack.pipeline.catalog import IN_PROGRESS, DocumentRecord
from stack.pipeline.errors import ModelMismatch, NotFound, PipelineError, StoreUnavailable, UnsupportedFormat
from stack.settings import Settings, service_settings

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "collection": {"type": "string"},
                        "replace": {"type": "boolean"},
                    },
                }
            }
        },
    }
}
ERRORS = {code: {"model": schemas.ErrorResponse} for code in (401, 404, 409, 413, 415, 422, 503)}

_STATUS_OF = {NotFound: 404, ModelMismatch: 409, StoreUnavailable: 503, UnsupportedFormat: 415}


def error_response(status: int, code: str, message: str, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "hint": hint}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or service_settings()
    from stack.pipeline.service import Pipeline

    pipeline = Pipeline(settings)
    redis = coordination.redis_client(settings.redis_url)
    from stack.worker.app import INGEST_QUEUE

    metrics = ApiMetrics(redis, pipeline.catalog, INGEST_QUEUE)
    app = FastAPI(
        title="ragctl API",
        version=__version__,
        description="Upload documents (answered at once; workers ingest them), follow their tasks, search and ask.",
    )
    app.state.pipeline, app.state.settings = pipeline, settings
    bearer = HTTPBearer(auto_error=False, description="RAG_API_KEY")

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if settings.api_key is None:
            return
        expected = settings.api_key.get_secret_value()
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
            raise PipelineErrorWithStatus(401, "unauthorized", "Missing or wrong API key.",
                                          "send 'Authorization: Bearer <RAG_API_KEY>' (see the project's .env)")

    auth = [Depends(require_key)]

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), response.status_code, started)
        return response

    @app.exception_handler(PipelineError)
    async def pipeline_error(request: Request, exc: PipelineError) -> JSONResponse:
        status = getattr(exc, "status", None) or next(
            (code for kind, code in _STATUS_OF.items() if isinstance(exc, kind)), 422)
        return error_response(status, exc.code, exc.message, exc.hint)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.hint)

    def collection_of(name: str | None) -> str:
        from stack.pipeline.store import validate_collection_name

        return validate_collection_name(name or settings.collection)

    def find(document_id: str, collection: str | None) -> DocumentRecord:
        return pipeline.document(document_id, collection=collection_of(collection))

    def document_out(record: DocumentRecord) -> schemas.DocumentOut:
        return schemas.DocumentOut(**{k: v for k, v in record.to_dict().items() if k != "stored_path"})

    def task_out(record: DocumentRecord) -> schemas.TaskOut:
        return schemas.TaskOut(**document_out(record).model_dump(), document_id=record.id,
                               status_url=f"/api/tasks/{record.task_id}")

    def enqueue(record: DocumentRecord) -> str:
        from stack.worker.app import enqueue as send

        try:
            return send(pipeline.catalog, record, record.stored_path or "")
        except Exception as exc:  # kombu raises OperationalError and friends when Redis is away
            record.status, record.error_code, record.error = "failed", "queue_unavailable", f"queue unreachable: {exc}"
            pipeline.catalog.upsert(record)
            raise PipelineErrorWithStatus(503, "queue_unavailable", f"The task queue (Redis) is unreachable: {exc}",
                                          "ragctl ps   (is redis running?) then POST /api/documents/{id}/retry") from exc

    # -- health -------------------------------------------------------------------------------
    @app.get("/api/health", response_model=schemas.Health, tags=["health"])
    def health() -> schemas.Health:
        """Liveness: the API process answers.  No dependencies, no auth.  ``instance`` names the
        replica (its host name), so a balancer's spread can be seen from outside."""
        return schemas.Health(status="ok", instance=socket.gethostname())

    @app.get("/api/health/ready", response_model=schemas.Readiness, dependencies=auth, tags=["health"],
             responses={503: {"model": schemas.Readiness}})
    def ready():
        """Readiness: Redis answers, the Chroma server answers, at least one worker is alive."""
        checks, workers = {}, []
        try:
            redis.ping()
            checks["redis"] = "ok"
            workers = sorted(coordination.live_workers(redis))
            checks["workers"] = f"{len(workers)} live" if workers else "no live worker"
        except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
            checks["redis"] = f"unreachable: {exc}"
            checks["workers"] = "unknown (redis unreachable)"
        try:
            pipeline.chroma.heartbeat()
            checks["chroma"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["chroma"] = f"unreachable: {exc}"
        failing = [name for name, value in checks.items() if value != "ok" and not value.endswith(" live")]
        body = schemas.Readiness(status="unready" if failing else "ready", checks=checks, failing=failing,
                                 workers=workers)
        return JSONResponse(body.model_dump(), status_code=503 if failing else 200)

    @app.get("/metrics", dependencies=auth, tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics: request latency, queue depth, stage durations, failures."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    # -- documents ----------------------------------------------------------------------------
    @app.post("/api/documents", response_model=schemas.UploadResponse, status_code=202, dependencies=auth,
              responses=ERRORS | {200: {"model": schemas.UploadResponse}}, openapi_extra=UPLOAD_BODY,
              tags=["documents"])
    async def upload(request: Request, collection: str | None = None, replace: bool = False):
        """Register one or more documents and queue them for ingest; answers at once."""
        from starlette.concurrency import run_in_threadpool

        paused = await run_in_threadpool(intake_pause_reason)
        if paused:
            raise PipelineErrorWithStatus(503, "intake_paused", f"Uploads are paused ({paused}).",
                                          "retry in a few minutes; nothing was received")
        uploads = settings.data_path / "uploads"
        form = await receive_form(request, uploads / ".incoming", settings.max_upload_bytes)
        try:
            name = collection_of(form.fields.get("collection") or collection)
            replace_all = replace or form.fields.get("replace", "").lower() in ("1", "true", "yes", "on")
        except PipelineError:
            form.discard()
            raise
        return await run_in_threadpool(register_all, form, name, replace_all, uploads)

    def intake_pause_reason() -> str | None:
        try:
            return coordination.intake_paused(redis)
        except Exception:  # noqa: BLE001 - Redis away: enqueue reports it with its own error
            return None

    def register_all(form, collection: str, replace: bool, uploads):
        from stack.pipeline.sniff import sniff_file

        results, rejected = [], []
        for received in form.files:
            try:
                sniff_file(received.path)
            except PipelineError as exc:
                received.path.unlink(missing_ok=True)
                rejected.append((received, exc))
                continue
            existing = pipeline.catalog.get(collection, received.sha256)
            if existing is not None and not replace and existing.status not in ("failed", "cancelled"):
                received.path.unlink(missing_ok=True)
                results.append(schemas.Registered(
                    document_id=existing.id, task_id=existing.task_id, status=existing.status,
                    status_url=f"/api/tasks/{existing.task_id}" if existing.task_id else None,
                    file_name=existing.file_name, duplicate=True))
                continue
            stored = move_into_place(received, uploads, received.sha256)
            record = DocumentRecord(
                id=received.sha256, collection=collection, file_name=received.file_name, size=received.size,
                status="queued", stored_path=str(stored), embed_model=settings.embed_model,
                created_at=existing.created_at if existing else 0.0,
            )
            record.note("registered" + (" (replacing)" if existing else ""))
            task_id = enqueue(record)
            results.append(schemas.Registered(document_id=record.id, task_id=task_id, status="queued",
                                              status_url=f"/api/tasks/{task_id}", file_name=record.file_name,
                                              duplicate=False))
        if rejected and not results:
            received, exc = rejected[0]
            status = 415 if isinstance(exc, UnsupportedFormat) else 422
            return error_response(status, exc.code, f"{received.file_name}: {exc.message}", exc.hint)
        body = schemas.UploadResponse(documents=results).model_dump()
        body["rejected"] = [{"file_name": r.file_name, **exc.to_dict()} for r, exc in rejected]
        queued = any(not r.duplicate for r in results)
        return JSONResponse(body, status_code=202 if queued else 200)

    @app.get("/api/documents", response_model=list[schemas.DocumentOut], dependencies=auth, tags=["documents"])
    def list_documents(status: schemas.Status | None = None, collection: str | None = None):
        """Documents, oldest first; filter by status and collection."""
        name = collection_of(collection) if collection else None
        return [document_out(r) for r in pipeline.documents(collection=name, status=status)]

    @app.get("/api/documents/{document_id}", response_model=schemas.DocumentOut, dependencies=auth,
             responses=ERRORS, tags=["documents"])
    def get_document(document_id: str, collection: str | None = None):
        """One document (its id, or the first 8+ characters of it)."""
        return document_out(find(document_id, collection))

    @app.get("/api/documents/{document_id}/chunks", response_model=list[schemas.ChunkOut], dependencies=auth,
             responses=ERRORS, tags=["documents"])
    def document_chunks(document_id: str, collection: str | None = None):
        """The chunks of a done document, in order, with their provenance."""
        record = find(document_id, collection)
        if record.status != "done":
            return []
        return [{"chunk_id": cid, "text": text, "page": meta.get("page"), "section": meta.get("section"),
                 "heading": meta.get("heading")}
                for cid, text, meta in pipeline.chunks_of(record)]

    @app.delete("/api/documents/{document_id}", dependencies=auth, responses=ERRORS, tags=["documents"])
    def delete_document(document_id: str, collection: str | None = None) -> dict[str, str]:
        """Delete a document: vectors, lexical entries, stored file, extracted text and record."""
        record = find(document_id, collection)
        if record.task_id and record.status in ("queued", *IN_PROGRESS):
            coordination.request_cancel(redis, record.task_id)
        pipeline.delete_document(record.id, collection=record.collection)
        return {"deleted": record.id, "file_name": record.file_name}

    @app.post("/api/documents/{document_id}/retry", response_model=schemas.Registered, status_code=202,
              dependencies=auth, responses=ERRORS, tags=["documents"])
    def retry_document(document_id: str, collection: str | None = None):
        """Queue a failed or cancelled document again, from its stored copy."""
        record = find(document_id, collection)
        if record.status not in ("failed", "cancelled"):
            raise PipelineErrorWithStatus(409, "not_retryable", f"{record.file_name} is {record.status}; only failed "
                                          "or cancelled documents are retried.", "GET /api/documents/{id}")
        record.attempts, record.error, record.error_code = 0, None, None
        record.note("retry requested")
        task_id = enqueue(record)
        return schemas.Registered(document_id=record.id, task_id=task_id, status="queued",
                                  status_url=f"/api/tasks/{task_id}", file_name=record.file_name, duplicate=False)

    # -- tasks --------------------------------------------------------------------------------
    def task_record(task_id: str) -> DocumentRecord:
        record = pipeline.catalog.by_task(task_id)
        if record is None:
            raise NotFound(f"No task with id '{task_id}'.", hint="GET /api/documents lists documents and their tasks")
        return record

    @app.get("/api/tasks/{task_id}", response_model=schemas.TaskOut, dependencies=auth, responses=ERRORS,
             tags=["tasks"])
    def get_task(task_id: str):
        """Where a document's ingest stands: status, progress, stage log, error, timings, worker."""
        return task_out(task_record(task_id))

    @app.delete("/api/tasks/{task_id}", response_model=schemas.TaskOut, dependencies=auth, responses=ERRORS,
                tags=["tasks"])
    def cancel_task(task_id: str):
        """Cancel: a queued task never starts; a running one stops at its next stage or batch."""
        record = task_record(task_id)
        if record.status in ("done", "failed", "cancelled"):
            raise PipelineErrorWithStatus(409, "finished", f"The task already ended ({record.status}).",
                                          f"DELETE /api/documents/{record.id} removes the document")
        coordination.request_cancel(redis, task_id)
        if record.status == "queued":
            record.status = "cancelled"
            record.note("cancelled while queued")
            pipeline.catalog.upsert(record)
        return task_out(pipeline.catalog.by_task(task_id))

    # -- questions ----------------------------------------------------------------------------
    @app.post("/api/search", response_model=schemas.SearchResponse, dependencies=auth, responses=ERRORS,
              tags=["questions"])
    def search(body: schemas.SearchRequest):
        """Ranked passages with scores and provenance (same JSON as ``ragctl search --json``)."""
        hits = pipeline.search(body.query, collection=collection_of(body.collection), top_k=body.top_k,
                               mode=body.mode)
        return {"query": body.query, "mode": body.mode,
                "hits": [{"rank": i, **h.to_dict()} for i, h in enumerate(hits, start=1)]}

    @app.post("/api/ask", response_model=Answer, dependencies=auth, responses=ERRORS,
              tags=["questions"])
    def ask(body: schemas.AskRequest):
        """An answer with sources [n] (same JSON as ``ragctl ask --json``); ``stream`` gives SSE with an LLM."""
        collection = collection_of(body.collection)
        if body.stream and settings.llm_configured:
            return stream_answer(body, collection)
        return pipeline.ask(body.question, collection=collection, top_k=body.top_k).to_dict()

    def stream_answer(body: schemas.AskRequest, collection: str) -> StreamingResponse:
        from stack.pipeline.answer import sources_from_hits, stream_llm_answer

        hits = pipeline.search(body.question, collection=collection, top_k=body.top_k)
        sources = sources_from_hits(hits)

        def events():
            yield f"event: sources\ndata: {json.dumps([s.__dict__ for s in sources], ensure_ascii=False)}\n\n"
            text = []
            try:
                for delta in stream_llm_answer(
                    body.question, sources, api_key=settings.openai_api_key.get_secret_value(),
                    model=settings.llm_model, base_url=settings.openai_base_url, timeout_s=settings.llm_timeout_s,
                ):
                    text.append(delta)
                    yield f"event: delta\ndata: {json.dumps(delta, ensure_ascii=False)}\n\n"
            except Exception as exc:  # noqa: BLE001 - the stream is open: report in-band
                yield f"event: error\ndata: {json.dumps(str(exc))}\n\n"
                return
            done = {"question": body.question, "answer": "".join(text), "mode": "llm",
                    "sources": [s.__dict__ for s in sources], "model": settings.llm_model}
            yield f"event: done\ndata: {json.dumps(done, ensure_ascii=False)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


class PipelineErrorWithStatus(PipelineError):
    """An API-level error that carries its own HTTP status."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status, self.code = status, code


def __getattr__(name: str):
    # ``uvicorn stack.api.app:app`` builds the app on first access, from the environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
