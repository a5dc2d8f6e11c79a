"""Collections (issue #26): list and show the ones the key may see; create and delete (admin).

Thin: each route calls the pipeline's collection methods (stack/pipeline/collection_admin.py), which
the CLI's embedded mode calls too.  A collection outside the caller's scope answers 404
``collection_not_found``, as one that does not exist."""

from __future__ import annotations

from typing import Literal

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
from stack.names import ACTIVE, INGEST_QUEUE
from stack.pipeline import collection_admin

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


class ReindexRequest(BaseModel):
    action: Literal["build", "build_and_swap", "swap", "discard"] = Field(
        default="build_and_swap", description="build: the new index is built beside the live one and left for a "
        "gate to ask (POST /api/ask with its generation); build_and_swap: swapped in when whole; swap / "
        "discard: what to do with the index a build left.")


class ReindexState(BaseModel):
    state: str = Field(description="queued, building, built, swapping, swapped, discarding, discarded, failed "
                       "(a document could not be rebuilt; the old index answers) or error.")
    action: str | None = None
    generation: int | None = Field(default=None, description="The new index's generation (ask it with "
                                   "POST /api/ask's generation before it is swapped in).")
    done: int | None = Field(default=None, description="Documents rebuilt so far (while building).")
    beat: int | None = Field(default=None, description="The worker's heartbeat while it works on the step: a "
                             "count that grows every few seconds; one that stops growing means the worker is gone.")
    results: list[dict] = Field(default_factory=list, description="Per document: the ingest result.")
    error: dict | None = None


@router.post("/api/collections/{name}/reindex", response_model=ReindexState, status_code=202, dependencies=auth,
             responses=ERRORS)
def reindex_collection(name: str, body: ReindexRequest, pipeline: PipelineDep, redis: RedisDep, audit: AuditDep):
    """Rebuild a collection's index blue/green on a worker (the live index answers meanwhile); follow it
    with GET on the same path."""
    from stack.names import REINDEX_TASK
    from stack.pipeline.store import validate_collection_name
    from stack.worker.app import app as celery

    validate_collection_name(name)
    if name not in collection_admin.names(pipeline):
        raise collection_admin.not_found(name)
    state = {"state": "queued", "action": body.action}
    if body.action in ("swap", "discard"):  # what a build left: the worker needs its generation and chunks
        built = coordination.reindex_state(redis, name) or {}
        if built.get("state") != "built":
            from stack.pipeline.collection_admin import CollectionBusy

            raise CollectionBusy(f"No new index of '{name}' waits for a {body.action}: its reindex is "
                                 f"{built.get('state') or 'not started'}.", hint=f"ragctl reindex -c {name}")
        state = {**built, "state": "swapping" if body.action == "swap" else "discarding", "action": body.action}
    coordination.set_reindex_state(redis, name, state)
    celery.send_task(REINDEX_TASK, kwargs={"collection": name, "action": body.action}, queue=INGEST_QUEUE)
    audit("collection_reindex", collection=name, action=body.action)
    return state


@router.get("/api/collections/{name}/reindex", response_model=ReindexState, dependencies=auth, responses=ERRORS)
def reindex_state(name: str, redis: RedisDep):
    """Where the collection's last reindex stands (404 when none ran in the last day)."""
    from stack.pipeline.errors import NotFound

    state = coordination.reindex_state(redis, name)
    if state is None:
        raise NotFound(f"No reindex of '{name}' in the last day.", hint=f"ragctl reindex -c {name}")
    return state
