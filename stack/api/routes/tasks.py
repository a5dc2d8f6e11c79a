"""A document's ingest tasks: where one stands, the recent ones, and cancelling.

One source of truth: the catalog.  A document keeps every task id it was ever given (registration,
a re-queue by the reaper, a retry, a replace), so any of them answers with the document's current
state for as long as the document exists; ids may be shortened to a prefix, as document ids."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from stack import coordination
from stack.api import schemas
from stack.api.deps import (
    AuditDep,
    Caller,
    CallerDep,
    CatalogDep,
    RedisDep,
    SettingsDep,
    collection_of,
    writer_auth,
)
from stack.api.errors import ERRORS, PipelineErrorWithStatus
from stack.names import TERMINAL, DocumentStatus
from stack.pipeline.catalog import MIN_PREFIX, Catalog, DocumentRecord, TaskEntry
from stack.pipeline.errors import NotFound

router = APIRouter(tags=["tasks"], dependencies=writer_auth)


class TaskView(schemas.TaskOut):
    """The document a task id was given to, as it is now.  ``task_id`` is the id asked about (in
    full); ``current_task_id`` the document's task now (they differ after a re-queue or a retry)."""

    current_task_id: str | None = None
    superseded: bool = Field(default=False, description="A newer task carries the document now; "
                             "status, progress and log are the document's current ones.")
    task_ids: list[str] = Field(default=[], description="Every task id of the document, oldest first.")


class TaskSummary(BaseModel):
    task_id: str
    document_id: str
    collection: str
    file_name: str
    status: schemas.Status
    progress: float
    current: bool = Field(description="This id is the document's current task.")
    current_task_id: str | None
    reason: str = Field(description="Why the id was given: registered, re-queued (and why), retry…")
    created_at: float = Field(description="When this task id was given.")
    updated_at: float
    worker: str | None = None
    error_code: str | None = None
    error: str | None = None


def resolve(catalog: Catalog, task_id: str, caller: Caller | None = None) -> tuple[str, DocumentRecord]:
    """The full task id and its document, from a task id or a prefix of one (MIN_PREFIX+ characters).
    404 when none; 409 ``ambiguous`` naming the matches when a prefix fits several.  A task of a
    collection outside the caller's scope is not there, for the lookup and for the prefix's matches."""
    def visible(record: DocumentRecord) -> bool:
        return caller is None or caller.sees(record.collection)

    record = catalog.by_task(task_id)
    if record is not None and visible(record):
        return task_id, record
    matches = [m for m in catalog.find_tasks(task_id) if visible(m.record)]
    if len(matches) == 1:
        return matches[0].task_id, matches[0].record
    if not matches:
        raise NotFound(f"No task with id '{task_id}'.",
                       hint=f"ragctl tasks list   (GET /api/tasks; ids may be shortened to {MIN_PREFIX}+ characters)")
    listed = ", ".join(f"{m.task_id} ({m.record.file_name}, {m.record.status})" for m in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise PipelineErrorWithStatus(409, "ambiguous", f"'{task_id}' is ambiguous: it matches {len(matches)} tasks: "
                                  f"{listed}{more}.", "give more of the task id")


def view(catalog: Catalog, task_id: str, record: DocumentRecord) -> TaskView:
    base = schemas.document_out(record).model_dump() | {"task_id": task_id}
    return TaskView(**base, document_id=record.id, status_url=f"/api/tasks/{task_id}",
                    current_task_id=record.task_id, superseded=record.task_id != task_id,
                    task_ids=catalog.task_ids(record.collection, record.id))


def summary(entry: TaskEntry) -> TaskSummary:
    r = entry.record
    return TaskSummary(task_id=entry.task_id, document_id=r.id, collection=r.collection, file_name=r.file_name,
                       status=r.status, progress=r.progress, current=entry.current, current_task_id=r.task_id,
                       reason=entry.reason, created_at=entry.created_at, updated_at=r.updated_at, worker=r.worker,
                       error_code=r.error_code, error=r.error)


@router.get("/api/tasks", response_model=list[TaskSummary], responses=ERRORS)
def list_tasks(catalog: CatalogDep, settings: SettingsDep, caller: CallerDep,
               limit: int = Query(default=20, ge=1, le=1000),
               collection: str | None = Query(default=None, max_length=512)):
    """Recent task ids, newest first, each with its document's current state (of the key's collections)."""
    if collection:
        entries = catalog.recent_tasks(limit, collection_of(settings, collection, caller))
    elif caller.collections is None:
        entries = catalog.recent_tasks(limit)
    else:
        entries = [e for name in caller.collections for e in catalog.recent_tasks(limit, name)]
        entries = sorted(entries, key=lambda e: e.created_at, reverse=True)[:limit]
    return [summary(entry) for entry in entries]


@router.get("/api/tasks/{task_id}", response_model=TaskView, responses=ERRORS)
def get_task(task_id: str, catalog: CatalogDep, caller: CallerDep):
    """Where a document's ingest stands: status, progress, stage log, error, timings, worker.

    Any task id the document was ever given answers (or a prefix of one, 4+ characters)."""
    full_id, record = resolve(catalog, task_id, caller)
    return view(catalog, full_id, record)


@router.delete("/api/tasks/{task_id}", response_model=TaskView, responses=ERRORS)
def cancel_task(task_id: str, catalog: CatalogDep, redis: RedisDep, audit: AuditDep, caller: CallerDep):
    """Cancel the document's current task: a queued one never starts; a running one stops at its
    next stage or batch."""
    full_id, record = resolve(catalog, task_id, caller)
    if record.status in TERMINAL:
        raise PipelineErrorWithStatus(409, "finished", f"The task already ended ({record.status}).",
                                      f"DELETE /api/documents/{record.id} removes the document")
    coordination.request_cancel(redis, record.task_id)
    audit("cancel", task_id=record.task_id, document_id=record.id, file_name=record.file_name,
          collection=record.collection, status=record.status)
    if record.status == DocumentStatus.QUEUED:
        record.status = DocumentStatus.CANCELLED
        record.note("cancelled while queued")
        catalog.upsert(record)
    return view(catalog, full_id, catalog.get(record.collection, record.id) or record)
