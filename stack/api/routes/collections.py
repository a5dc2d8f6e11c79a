"""Collections (issue #26): list and show the ones the key may see; create and delete (admin).

Thin: each route calls the pipeline's collection methods (stack/pipeline/collection_admin.py), which
the CLI's embedded mode calls too.  A collection outside the caller's scope answers 404
``collection_not_found``, as one that does not exist."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from stack import coordination
from stack.api.deps import (
    AuditDep,
    CallerDep,
    PipelineDep,
    RedisDep,
    SettingsDep,
    ask_auth,
    auth,
    collection_of,
)
from stack.api.errors import ERRORS
from stack.names import ACTIVE

router = APIRouter(tags=["collections"])


class CollectionOut(BaseModel):
    name: str
    description: str | None = None
    documents: int = Field(description="Documents filed in it, whatever their status.")
    chunks: int
    embed_model: str | None = Field(default=None, description="The model its vectors were made with (none yet: null).")
    size: int = Field(description="Bytes of its stored uploads.")
    created_at: float | None = None
    updated_at: float | None = Field(default=None, description="Its last document change.")
    state: str = Field(description="ready, deleting (a deletion runs, or was interrupted), or deleted.")
    default: bool = Field(description="The configured default collection.")


class CollectionRequest(BaseModel):
    name: str = Field(min_length=1, max_length=512, description="3-512 letters, digits, '.', '_', '-'.")
    description: str | None = Field(default=None, max_length=1000)


@router.get("/api/collections", response_model=list[CollectionOut], dependencies=ask_auth, responses=ERRORS)
def list_collections(pipeline: PipelineDep, caller: CallerDep):
    """The collections this key may see, with their documents, chunks, model, size and last change."""
    return [info.to_dict() for info in pipeline.collections() if caller.sees(info.name)]


@router.get("/api/collections/{name}", response_model=CollectionOut, dependencies=ask_auth, responses=ERRORS)
def show_collection(name: str, pipeline: PipelineDep, settings: SettingsDep, caller: CallerDep):
    """One collection (404 when it does not exist or the key may not see it)."""
    return pipeline.collection_info(collection_of(settings, name, caller)).to_dict()


@router.post("/api/collections", response_model=CollectionOut, status_code=201, dependencies=auth,
             responses=ERRORS)
def create_collection(body: CollectionRequest, pipeline: PipelineDep, audit: AuditDep):
    """A new, empty collection (409 when the name is taken)."""
    info = pipeline.create_collection(body.name, body.description)
    audit("collection_create", collection=info.name)
    return info.to_dict()


@router.delete("/api/collections/{name}", response_model=CollectionOut, dependencies=auth, responses=ERRORS)
async def delete_collection(name: str, pipeline: PipelineDep, redis: RedisDep, audit: AuditDep):
    """Delete a collection: its vectors, lexical index, stored uploads, extracted texts and catalog
    rows; its running ingests are cancelled.  Interrupted, the same request finishes it."""
    def run():
        for record in pipeline.catalog.list(name) if name else []:
            if record.task_id and record.status in ACTIVE:
                coordination.request_cancel(redis, record.task_id)
        return pipeline.delete_collection(name)

    info = await run_in_threadpool(run)
    audit("collection_delete", collection=info.name, documents=info.documents, chunks=info.chunks)
    return info.to_dict()
