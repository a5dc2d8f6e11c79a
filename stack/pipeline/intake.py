"""Intake: what happens when a file arrives whose bytes the catalog may already know.

One policy for every way in.  The API's upload route asks :func:`decide` before it queues a file
for the workers; the pipeline's own ingest (the CLI's embedded mode) asks it before it parses one.
A document is identified by the SHA-256 of its bytes, so "the same file" means the same bytes in
the same collection, whatever the file is called.

The policy, by the status of the record already there (``replace``/``--force`` always ingests):

======================  ========  ==================================================================
existing record         action    why
======================  ========  ==================================================================
none                    INGEST    new bytes.
``done``                SKIP      the same bytes were ingested already; doing it again would give the
                                  same chunks.  ``replace`` re-ingests (e.g. after a parser fix).
``queued``              FOLLOW    a worker will take it: answer with the existing task rather than
                                  queue the same bytes twice (two tasks would race on one record).
in progress, alive      FOLLOW    a worker (or another CLI run) is ingesting it now: same reason.
in progress, abandoned  INGEST    no heartbeat for ``stale_after_s``: whoever ingested it died (a
                                  killed worker or ``ragctl ingest``).  Waiting would wait forever
                                  for the embedded path, which has no reaper; in the stack it does now
                                  what the reaper would do at its next round.
``failed``/``cancelled``  INGEST  the user sending the file again is the retry: the reason it failed
                                  may be fixed (a bigger limit, a model that loads, a store that
                                  answers), and a cancel is undone by asking again.
======================  ========  ==================================================================

Before this module, the API treated everything but ``failed``/``cancelled`` as a duplicate while
the pipeline skipped only ``done`` (so the embedded path ingested a document a worker was busy
with a second time).  The table above keeps the API's answers for the common cases and gives the
pipeline the same ones.  A ``queued`` record is never treated as abandoned: a long queue is not a
dead worker.

Free of transport: no HTTP, no Celery.  The caller moves files and sends tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from stack.names import IN_PROGRESS, RETRYABLE, DocumentStatus
from stack.pipeline.catalog import DocumentRecord


class Action(StrEnum):
    INGEST = "ingest"  # (re)ingest: new bytes, a retry, a replacement, or an abandoned ingest
    SKIP = "skip"  # the same bytes are done: nothing to do
    FOLLOW = "follow"  # the same bytes are queued or being ingested: the existing task carries them


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str  # one line, for the document's log and the caller's note
    existing: DocumentRecord | None = None

    @property
    def duplicate(self) -> bool:
        """Nothing new is queued or ingested: the caller answers with the existing record."""
        return self.action is not Action.INGEST


def decide(
    existing: DocumentRecord | None,
    *,
    replace: bool = False,
    stale_after_s: float | None = None,
    now: float | None = None,
    held_by_live_worker: Callable[[DocumentRecord], bool] | None = None,
) -> Decision:
    """The intake policy (see the module's docstring) for a file whose bytes match ``existing``.

    ``stale_after_s``: how long an in-progress record may go without a heartbeat before its
    ingest counts as abandoned (``Settings.stale_after_s``, the reaper's limit); None never does.
    ``held_by_live_worker``: the reaper's evidence (a worker's unexpired liveness key names the
    document); a late heartbeat of a document a live worker holds is a busy worker, not a dead one."""
    if existing is None:
        return Decision(Action.INGEST, "new")
    status = existing.status
    if replace:
        return Decision(Action.INGEST, f"replacing ({status})", existing)
    if status == DocumentStatus.DONE:
        return Decision(Action.SKIP, f"already ingested as {existing.file_name}", existing)
    if status in RETRYABLE:
        return Decision(Action.INGEST, f"retrying ({status})", existing)
    if status in IN_PROGRESS and stale_after_s is not None:
        heard = existing.heartbeat_at or existing.updated_at
        silent = (time.time() if now is None else now) - heard
        if heard and silent > stale_after_s and not (held_by_live_worker and held_by_live_worker(existing)):
            return Decision(Action.INGEST, f"abandoned during {status} (no heartbeat for {silent:.0f} s)",
                            existing)
    task = f" (task {existing.task_id})" if existing.task_id else ""
    return Decision(Action.FOLLOW, f"already {status} as {existing.file_name}{task}", existing)


def queued_record(
    decision: Decision, *, document_id: str, collection: str, file_name: str, size: int, stored_path: str,
    embed_model: str | None,
) -> DocumentRecord:
    """The fresh record to queue for an INGEST decision.  A replaced or retried document keeps the
    time it was first seen; everything else (attempts, error, log, chunks) starts over."""
    if decision.action is not Action.INGEST:
        raise ValueError(f"nothing to queue: {decision.reason}")
    existing = decision.existing
    record = DocumentRecord(
        id=document_id, collection=collection, file_name=file_name, size=size, status=DocumentStatus.QUEUED,
        stored_path=stored_path, embed_model=embed_model, created_at=existing.created_at if existing else 0.0,
    )
    record.note("registered" + (f": {decision.reason}" if existing else ""))
    return record
