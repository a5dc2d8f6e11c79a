"""Collections as things to create, list, show and delete (issue #26).

A collection exists when the catalog records it (``ragctl collections create``, or its first
ingest), when documents are filed under it, or when it is the configured default.  Its deletion
removes, in this order, each step repeatable: the catalog marks it ``deleting`` (from then on it
takes no documents and says so); its vectors (the Chroma collection); its lexical index; the stored
upload and extracted text of each of its documents that no other collection holds; then its
document rows, in one transaction with its record turning ``deleted`` (made again, the name starts
empty: see :func:`_register`).  A crash between two steps leaves a collection
listed as ``deleting``, and the same command finishes it.

No transport here: :class:`stack.pipeline.service.Pipeline` exposes these as methods, which the CLI's
embedded mode and the API's routes call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stack.contract import CollectionInfo
from stack.names import CANARY_COLLECTION
from stack.pipeline import generations
from stack.pipeline.catalog import DELETED, DELETING, READY
from stack.pipeline.errors import NotFound, PipelineError

if TYPE_CHECKING:
    from stack.pipeline.service import Pipeline


class CollectionExists(PipelineError):
    code = "collection_exists"
    http_status = 409


class CollectionBusy(PipelineError):
    """A collection whose deletion started: it takes nothing until the deletion is finished."""

    code = "collection_deleting"
    http_status = 409


def not_found(name: str) -> NotFound:
    """The one answer for a collection that does not exist, or that the caller may not see."""
    error = NotFound(f"No collection named '{name}'.", hint="ragctl collections list   (GET /api/collections)")
    error.code = "collection_not_found"
    return error


def check_writable(pipeline: Pipeline, name: str) -> None:
    """Refuse new documents for a collection whose deletion started; record a new one."""
    from stack.pipeline.store import validate_collection_name

    validate_collection_name(name)
    state = pipeline.catalog.collection_state(name)
    if state == DELETING:
        raise CollectionBusy(f"The collection '{name}' is being deleted; it takes no documents.",
                             hint=f"ragctl collections delete {name} --yes   (finishes the deletion), then ingest again")
    if state in (None, DELETED):
        _register(pipeline, name, None, state)


def _register(pipeline: Pipeline, name: str, description: str | None, state: str | None) -> None:
    """Record a collection.  One made again after a deletion starts empty: vectors or postings left
    under its name (an ingest past its last cancel check when the deletion ran) are removed first, so
    they can never answer for a document the catalog does not hold."""
    if state == DELETED:
        pipeline.drop_vectors(name)
        pipeline.lexical(name).drop()
    pipeline.catalog.register_collection(name, description)


def names(pipeline: Pipeline) -> list[str]:
    """Every collection that exists (deleting ones too), sorted; the default always."""
    rows = {name for name, row in pipeline.catalog.collection_rows().items() if row["state"] != DELETED}
    return sorted(rows | set(pipeline.catalog.collection_stats()) | {pipeline.settings.collection})


def info_all(pipeline: Pipeline, *, only: set[str] | None = None, models: bool = True) -> list[CollectionInfo]:
    """Every collection (or those in ``only`` that exist), with its counts."""
    stats = pipeline.catalog.collection_stats()
    rows = {name: row for name, row in pipeline.catalog.collection_rows().items()
            if row["state"] != DELETED or name in stats}
    default = pipeline.settings.collection
    result = []
    for name in sorted(set(rows) | set(stats) | {default}):
        if only is not None and name not in only:
            continue
        row, stat = rows.get(name, {}), stats.get(name, {})
        if name == CANARY_COLLECTION and not stat.get("documents") and only is None:
            continue  # ragctl health --deep's, emptied after each check
        result.append(CollectionInfo(
            name=name, description=row.get("description"), documents=stat.get("documents", 0),
            chunks=stat.get("chunks", 0), size=stat.get("size", 0),
            embed_model=_model(pipeline, name) if models else None,
            created_at=row.get("created_at") or stat.get("created_at"), updated_at=stat.get("updated_at"),
            state=row.get("state") or READY, default=name == default))
    return result


def _model(pipeline: Pipeline, name: str) -> str | None:
    from stack.pipeline.store import recorded_model

    return (recorded_model(pipeline.chroma, pipeline.index_of(name)) or {}).get("embed_model")


def info(pipeline: Pipeline, name: str) -> CollectionInfo:
    found = info_all(pipeline, only={name})
    if not found:
        raise not_found(name)
    return found[0]


def create(pipeline: Pipeline, name: str, description: str | None = None) -> CollectionInfo:
    """A new, empty collection; CollectionExists when the name is taken (nothing changed)."""
    from stack.pipeline.store import validate_collection_name

    validate_collection_name(name, hint="ragctl collections create hr-policies --description 'HR rules'")
    if description is not None and len(description) > 1000:
        raise PipelineError("A collection's description is at most 1000 characters.",
                            hint="ragctl collections create NAME --description 'a sentence'")
    state = pipeline.catalog.collection_state(name)
    if state == DELETING:
        raise CollectionBusy(f"The collection '{name}' is being deleted.",
                             hint=f"ragctl collections delete {name} --yes   (finishes it), then create it again")
    if state not in (None, DELETED) or name in pipeline.catalog.collection_stats():
        raise CollectionExists(f"A collection named '{name}' exists already.",
                               hint=f"ragctl collections show {name}")
    _register(pipeline, name, description, state)
    return info(pipeline, name)


def delete(pipeline: Pipeline, name: str) -> CollectionInfo:
    """Remove a collection and everything in it (see the module docstring); returns what it held."""
    from stack.pipeline.store import validate_collection_name

    validate_collection_name(name, hint="ragctl collections list")
    if name not in names(pipeline):
        raise not_found(name)
    before = info(pipeline, name)
    catalog = pipeline.catalog
    catalog.mark_deleting(name)
    records = catalog.list(name)
    pipeline.drop_vectors(name)
    pipeline.lexical(name).drop()
    generations.cleanup(pipeline, name)  # a reindex's index, half-built or not yet dropped
    for record in records:
        if set(catalog.holders_of(record.id)) <= {name}:  # the same bytes elsewhere keep their copy
            pipeline.blobs.delete(record.id)
            pipeline.texts.delete(record.id)
    catalog.drop_collection(name)
    before.state = "deleted"
    return before
