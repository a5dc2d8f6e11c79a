"""A document's ingest task: where it stands, and cancelling it."""

from __future__ import annotations

from fastapi import APIRouter

from stack import coordination
from stack.api import schemas
from stack.api.deps import CatalogDep, RedisDep, auth
from stack.api.errors import ERRORS, PipelineErrorWithStatus
from stack.names import TERMINAL, DocumentStatus
from stack.pipeline.catalog import Catalog, DocumentRecord
from stack.pipeline.errors import NotFound

router = APIRouter(tags=["tasks"], dependencies=auth)


def task_record(catalog: Catalog, task_id: str) -> DocumentRecord:
    record = catalog.by_task(task_id)
    if record is None:
        raise NotFound(f"No task with id '{task_id}'.", hint="GET /api/documents lists documents and their tasks")
    return record


@router.get("/api/tasks/{task_id}", response_model=schemas.TaskOut, responses=ERRORS)
def get_task(task_id: str, catalog: CatalogDep):
    """Where a document's ingest stands: status, progress, stage log, error, timings, worker."""
    return schemas.task_out(task_record(catalog, task_id))


@router.delete("/api/tasks/{task_id}", response_model=schemas.TaskOut, responses=ERRORS)
def cancel_task(task_id: str, catalog: CatalogDep, redis: RedisDep):
    """Cancel: a queued task never starts; a running one stops at its next stage or batch."""
    record = task_record(catalog, task_id)
    if record.status in TERMINAL:
        raise PipelineErrorWithStatus(409, "finished", f"The task already ended ({record.status}).",
                                      f"DELETE /api/documents/{record.id} removes the document")
    coordination.request_cancel(redis, task_id)
    if record.status == DocumentStatus.QUEUED:
        record.status = DocumentStatus.CANCELLED
        record.note("cancelled while queued")
        catalog.upsert(record)
    return schemas.task_out(catalog.by_task(task_id))
