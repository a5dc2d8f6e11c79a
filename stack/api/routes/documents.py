"""Documents: upload (registered at once, ingested by the workers), list, show, chunks, extracted text,
delete, retry.

Whether an upload is new, a duplicate or a retry is the pipeline's intake policy
(``stack.pipeline.intake``); these routes only hand the received file to the blob store
(``pipeline.blobs``: a folder on one host, the database with RAG_DATABASE_URL, where a worker on
another host reads it) and queue its reference.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from stack import coordination
from stack.api import schemas
from stack.api.deps import (
    AuditDep,
    CallerDep,
    DocumentDep,
    PipelineDep,
    RedisDep,
    SettingsDep,
    WriterDep,
    ask_auth,
    check_upload_rate,
    collection_of,
    writer_auth,
)
from stack.api.errors import ERRORS, PipelineErrorWithStatus, error_response
from stack.api.uploads import ReceivedForm, receive_form, relative_name
from stack.names import ACTIVE, RETRYABLE, DocumentStatus
from stack.pipeline import intake
from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.collection_admin import check_writable
from stack.pipeline.errors import PipelineError, UnsupportedFormat
from stack.pipeline.service import Pipeline
from stack.settings import Settings

router = APIRouter(tags=["documents"])

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


def enqueue(pipeline: Pipeline, record: DocumentRecord) -> str:
    """Send the record's ingest task; with Redis away, the record is marked failed and the answer is 503."""
    from stack.worker.app import enqueue as send

    try:
        return send(pipeline.catalog, record, record.stored_path or "")
    except Exception as exc:  # kombu raises OperationalError and friends when Redis is away
        record.status, record.error_code = DocumentStatus.FAILED, "queue_unavailable"
        record.error = f"queue unreachable: {exc}"
        pipeline.catalog.upsert(record)
        raise PipelineErrorWithStatus(503, "queue_unavailable", f"The task queue (Redis) is unreachable: {exc}",
                                      "ragctl ps   (is redis running?) then POST /api/documents/{id}/retry") from exc


def registered(record: DocumentRecord, *, duplicate: bool) -> schemas.Registered:
    task_id = record.task_id
    return schemas.Registered(document_id=record.id, task_id=task_id, status=record.status,
                              status_url=f"/api/tasks/{task_id}" if task_id else None,
                              file_name=record.file_name, duplicate=duplicate)


@router.post("/api/documents", response_model=schemas.UploadResponse, status_code=202,
             responses=ERRORS | {200: {"model": schemas.UploadResponse}}, openapi_extra=UPLOAD_BODY,
             dependencies=[*writer_auth, Depends(check_upload_rate)])
async def upload(request: Request, settings: SettingsDep, pipeline: PipelineDep, redis: RedisDep, audit: AuditDep,
                 caller: WriterDep, collection: str | None = None, replace: bool = False,
                 path_name: str | None = None):
    """Register one or more documents and queue them for ingest; answers at once (admin, or an
    editor in its collections).  ``path_name`` (one file only): the name to record, folders kept
    (``ragctl sync`` names a file by its path in the synced folder)."""
    paused = await run_in_threadpool(intake_pause_reason, redis)
    if paused:
        raise PipelineErrorWithStatus(503, "intake_paused", f"Uploads are paused ({paused}).",
                                      "retry in a few minutes; nothing was received")
    # The API's own scratch: received files wait here until the blob store takes them.
    form = await receive_form(request, settings.data_path / "uploads" / ".incoming", settings.max_upload_bytes)
    try:
        name = collection_of(settings, form.fields.get("collection") or collection, caller)
        await run_in_threadpool(check_writable, pipeline, name)
        replace_all = replace or form.fields.get("replace", "").lower() in ("1", "true", "yes", "on")
        if path_name is not None:
            if len(form.files) != 1:
                raise PipelineErrorWithStatus(422, "invalid_request", "path_name names one file; this upload has "
                                              f"{len(form.files)}.", "send one file with path_name")
            form.files[0].file_name = relative_name(path_name)
    except PipelineError:
        form.discard()
        raise
    response = await run_in_threadpool(register_all, form, name, replace_all, pipeline, settings)
    await run_in_threadpool(audit_upload, audit, response, name)
    return response


def audit_upload(audit, response: JSONResponse, collection: str) -> None:
    """One audit line per file of the request: registered (new or duplicate) or rejected."""
    import json

    body = json.loads(response.body)
    if "error" in body:
        audit("upload", collection=collection, status=response.status_code, error=body["error"]["code"])
        return
    for entry in body["documents"]:
        audit("upload", document_id=entry["document_id"], file_name=entry["file_name"], collection=collection,
              task_id=entry["task_id"], duplicate=entry["duplicate"], status=entry["status"])
    for entry in body.get("rejected", []):
        audit("upload", file_name=entry["file_name"], collection=collection, rejected=entry.get("code"))


def live_holder_check(settings: Settings):
    """The reaper's evidence of life for intake: a worker's unexpired key names the document.
    Redis away: no evidence (the queueing that follows reports Redis with its own error)."""
    r = coordination.redis_client(settings.redis_url)

    def held(record: DocumentRecord) -> bool:
        try:
            return (record.collection, record.id) in coordination.holders(r)
        except Exception:  # noqa: BLE001 - see above
            return False

    return held


def intake_pause_reason(redis) -> str | None:
    try:
        return coordination.intake_paused(redis)
    except Exception:  # noqa: BLE001 - Redis away: enqueue reports it with its own error
        return None


def register_all(form: ReceivedForm, collection: str, replace: bool, pipeline: Pipeline,
                 settings: Settings) -> JSONResponse:
    """Sniff each received file, ask the intake policy, and queue the ones it admits.  Whatever happens,
    no temporary file of the request outlives it (a file the blob store adopted is no longer temporary)."""
    try:
        return _register_all(form, collection, replace, pipeline, settings)
    finally:
        form.discard()


def _register_all(form: ReceivedForm, collection: str, replace: bool, pipeline: Pipeline,
                  settings: Settings) -> JSONResponse:
    from stack.pipeline.sniff import sniff_file

    held_by_live_worker = live_holder_check(settings)
    results, rejected = [], []
    for received in form.files:
        try:
            sniff_file(received.path, received.file_name)
        except PipelineError as exc:
            received.path.unlink(missing_ok=True)
            rejected.append((received, exc))
            continue
        decision = intake.decide(pipeline.catalog.get(collection, received.sha256), replace=replace,
                                 stale_after_s=settings.stale_after_s, held_by_live_worker=held_by_live_worker)
        if decision.duplicate:
            received.path.unlink(missing_ok=True)
            results.append(registered(decision.existing, duplicate=True))
            continue
        stored = pipeline.blobs.adopt(received.sha256, received.file_name, received.path)
        record = intake.queued_record(decision, document_id=received.sha256, collection=collection,
                                      file_name=received.file_name, size=received.size, stored_path=stored,
                                      embed_model=settings.embed_model)
        enqueue(pipeline, record)
        results.append(registered(record, duplicate=False))
    if rejected and not results:
        received, exc = rejected[0]
        status = 415 if isinstance(exc, UnsupportedFormat) else 422
        return error_response(status, exc.code, f"{received.file_name}: {exc.message}", exc.hint)
    body = schemas.UploadResponse(documents=results).model_dump()
    body["rejected"] = [{"file_name": r.file_name, **exc.to_dict()} for r, exc in rejected]
    queued = any(not r.duplicate for r in results)
    return JSONResponse(body, status_code=202 if queued else 200)


@router.get("/api/documents", response_model=list[schemas.DocumentOut], dependencies=ask_auth)
def list_documents(pipeline: PipelineDep, settings: SettingsDep, caller: CallerDep,
                   status: schemas.Status | None = None, collection: str | None = None):
    """Documents, oldest first, of the collections the key sees; filter by status and collection."""
    name = collection_of(settings, collection, caller) if collection else None
    return [schemas.document_out(r) for r in pipeline.documents(collection=name, status=status)
            if caller.sees(r.collection)]


@router.get("/api/documents/{document_id}", response_model=schemas.DocumentOut, responses=ERRORS,
            dependencies=ask_auth)
def get_document(record: DocumentDep):
    """One document (its id, or the first 8+ characters of it)."""
    return schemas.document_out(record)


@router.get("/api/documents/{document_id}/chunks", response_model=list[schemas.ChunkOut], responses=ERRORS,
            dependencies=ask_auth)
def document_chunks(record: DocumentDep, pipeline: PipelineDep):
    """The chunks of a done document, in order, with their provenance."""
    if record.status != DocumentStatus.DONE:
        return []
    return [{"chunk_id": cid, "text": text, "page": meta.get("page"), "section": meta.get("section"),
             "heading": meta.get("heading")}
            for cid, text, meta in pipeline.chunks_of(record)]


@router.get("/api/documents/{document_id}/text", response_model=schemas.ExtractedTextOut, responses=ERRORS,
            dependencies=ask_auth)
def document_text(record: DocumentDep, pipeline: PipelineDep):
    """The document's extracted text (the parser's output, before chunking) and where the stack keeps
    it; both null while none is kept.  The text store is the stack's (a folder on its hosts, or its
    database): clients read it here, never from the store."""
    texts = pipeline.texts
    return {"document_id": record.id, "file_name": record.file_name, "where": texts.where(record.id),
            "text": texts.text(record.id)}


class Rename(BaseModel):
    file_name: str = Field(min_length=1, max_length=1000, description="The new name (folders kept: a/b.hwpx).")


@router.patch("/api/documents/{document_id}", response_model=schemas.DocumentOut, responses=ERRORS,
              dependencies=writer_auth)
def rename_document(body: Rename, record: DocumentDep, pipeline: PipelineDep, audit: AuditDep):
    """Give a document another name (a moved or renamed file of a synced folder); nothing re-parsed or
    re-embedded: its record and its chunks' citations take the name."""
    renamed = pipeline.rename_document(record.id, relative_name(body.file_name), collection=record.collection)
    audit("rename", document_id=record.id, file_name=renamed.file_name, old_file_name=record.file_name,
          collection=record.collection)
    return schemas.document_out(renamed)


@router.delete("/api/documents/{document_id}", responses=ERRORS, dependencies=writer_auth)
def delete_document(record: DocumentDep, pipeline: PipelineDep, redis: RedisDep, audit: AuditDep) -> dict[str, str]:
    """Delete a document: vectors, lexical entries, stored file, extracted text and record."""
    if record.task_id and record.status in ACTIVE:
        coordination.request_cancel(redis, record.task_id)
    pipeline.delete_document(record.id, collection=record.collection)
    audit("delete", document_id=record.id, file_name=record.file_name, collection=record.collection)
    return {"deleted": record.id, "file_name": record.file_name}


@router.post("/api/documents/{document_id}/retry", response_model=schemas.Registered, status_code=202,
             responses=ERRORS, dependencies=writer_auth)
def retry_document(record: DocumentDep, pipeline: PipelineDep, audit: AuditDep):
    """Queue a failed or cancelled document again, from its stored copy."""
    if record.status not in RETRYABLE:
        raise PipelineErrorWithStatus(409, "not_retryable", f"{record.file_name} is {record.status}; only failed "
                                      "or cancelled documents are retried.", "GET /api/documents/{id}")
    record.attempts, record.error, record.error_code = 0, None, None
    record.note("retry requested")
    enqueue(pipeline, record)
    audit("retry", document_id=record.id, file_name=record.file_name, collection=record.collection,
          task_id=record.task_id)
    return registered(record, duplicate=False)
