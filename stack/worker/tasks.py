"""The ingest task and the reaper.  Both call the pipeline; neither holds logic of its own."""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from celery.signals import worker_ready, worker_shutdown

from stack import coordination
from stack.names import INGEST_TASK, REAP_TASK, DocumentStatus
from stack.settings import service_settings
from stack.worker.app import app, enqueue

log = logging.getLogger("ragctl.worker")
HEARTBEAT_EVERY_S = 5.0


@lru_cache(maxsize=1)
def pipeline():
    """One Pipeline (and one loaded model) per worker process, created on first use."""
    from stack.pipeline.service import Pipeline

    return Pipeline(service_settings())


def _redis():
    return coordination.redis_client(service_settings().redis_url)


# -- worker liveness ----------------------------------------------------------------------------
_current: dict[str, str | None] = {"document": None}


def _beat_forever(name: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            coordination.beat_worker(_redis(), name, _current["document"])
        except Exception as exc:  # noqa: BLE001 - Redis away: keep trying, the worker goes on
            log.warning("worker heartbeat failed: %s", exc)
        stop.wait(10)


_stop_beating = threading.Event()


def _warm_up() -> None:
    """Load the embedding model now, not on the first document.  Safe: the pool is threads, so
    there is no fork after this; a task that arrives meanwhile waits for the same load."""
    try:
        pipeline().embedder.encode(["warm-up"])
    except Exception as exc:  # noqa: BLE001 - the first task will report the real error
        log.warning("could not load the embedding model at start: %s", exc)


@worker_ready.connect
def _start_worker_heartbeat(sender=None, **_) -> None:
    name = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    threading.Thread(target=_beat_forever, args=(name, _stop_beating), daemon=True, name="rag-heartbeat").start()
    threading.Thread(target=_warm_up, daemon=True, name="rag-warm-up").start()


@worker_shutdown.connect
def _stop_worker_heartbeat(sender=None, **_) -> None:
    _stop_beating.set()
    try:
        coordination.forget_worker(_redis(), getattr(sender, "hostname", ""))
    except Exception:  # noqa: BLE001, S110 - shutting down anyway
        pass


@contextmanager
def document_heartbeat(collection: str, document_id: str, worker: str, hard_limit_s: float):
    """Touch the document's heartbeat every few seconds while the task runs.

    It is also the hard time limit: a task past ``hard_limit_s`` ends the worker process (thread
    pools cannot interrupt a task); the supervisor restarts the worker and the reaper re-queues
    or fails the document."""
    catalog = pipeline().catalog
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_EVERY_S):
            if time.monotonic() - started > hard_limit_s:
                log.error("document %s passed the hard limit of %.0f s; ending this worker", document_id, hard_limit_s)
                os._exit(70)
            try:
                catalog.touch(collection, document_id, worker)
            except Exception as exc:  # noqa: BLE001 - a busy SQLite must not kill the task
                log.warning("document heartbeat failed: %s", exc)

    thread = threading.Thread(target=beat, daemon=True, name="rag-doc-heartbeat")
    _current["document"] = document_id
    thread.start()
    try:
        yield
    finally:
        stop.set()
        _current["document"] = None


def _limits(task, soft_limit_s: float):
    """progress and should_cancel for the pipeline: Celery task state on each new stage (what
    Flower shows), the cancel flag, and the per-stage soft limit."""
    from stack.pipeline.errors import PipelineError

    r = _redis()
    task_id = task.request.id
    state = {"stage": None, "since": time.monotonic()}

    def on_progress(stage: str, fraction: float) -> None:
        if stage != state["stage"]:
            state["stage"], state["since"] = stage, time.monotonic()
            try:
                task.update_state(state=stage.upper(), meta={"stage": stage, "progress": fraction})
            except Exception as exc:  # noqa: BLE001 - the status record is the source of truth
                log.warning("could not update the task state: %s", exc)

    def should_cancel() -> bool:
        if state["stage"] and time.monotonic() - state["since"] > soft_limit_s:
            raise PipelineError(
                f"The {state['stage']} stage ran past its limit of {soft_limit_s:.0f} s.",
                hint="raise RAG_STAGE_SOFT_LIMIT_S for very large documents, or split the document",
            )
        try:
            return coordination.cancel_requested(r, task_id)
        except Exception as exc:  # noqa: BLE001 - Redis restarting: keep working, ask again next batch
            log.warning("could not read the cancel flag: %s", exc)
            return False

    return on_progress, should_cancel


@app.task(name=INGEST_TASK, bind=True, max_retries=5)
def ingest_document(self, collection: str, document_id: str, path: str, file_name: str) -> dict:
    """Parse, chunk, embed and store one uploaded document (queued by the API)."""
    p = pipeline()
    catalog = p.catalog
    record = catalog.get(collection, document_id)
    # A redelivered or superseded message: the record says which task owns the document now.
    if record is None or record.task_id != self.request.id:
        return {"status": "superseded", "document_id": document_id}
    if record.status in (DocumentStatus.DONE, DocumentStatus.CANCELLED):
        return {"status": record.status, "document_id": document_id}
    r = _redis()
    if coordination.cancel_requested(r, self.request.id):
        record.status = DocumentStatus.CANCELLED
        record.note("cancelled before it started")
        catalog.upsert(record)
        return {"status": DocumentStatus.CANCELLED, "document_id": document_id}
    worker = self.request.hostname or f"worker@{os.getpid()}"
    record.worker = worker
    record.note(f"picked up by {worker}" + (f" (attempt {record.attempts + 1})" if record.attempts else ""))
    catalog.upsert(record)
    settings = p.settings
    on_progress, should_cancel = _limits(self, settings.stage_soft_limit_s)
    with document_heartbeat(collection, document_id, worker, settings.task_hard_limit_s):
        result = p.ingest_file(
            Path(path), collection=collection, force=True, display_name=file_name,
            progress=on_progress, should_cancel=should_cancel,
        )
    if result.error and result.error.get("code") == "store_unavailable" and self.request.retries < self.max_retries:
        delay = min(60, 2 ** (self.request.retries + 1))
        record = catalog.get(collection, document_id)
        record.status = DocumentStatus.QUEUED
        record.note(f"vector store unreachable; retry {self.request.retries + 1} in {delay} s")
        catalog.upsert(record)
        raise self.retry(countdown=delay)
    try:
        if result.status == DocumentStatus.DONE:
            coordination.record_stage_times(r, catalog.get(collection, document_id).timings)
        elif result.error:
            coordination.record_failure(r, result.error.get("code", "error"))
    except Exception as exc:  # noqa: BLE001 - metrics are best effort
        log.warning("could not record metrics: %s", exc)
    return result.to_dict()


@app.task(name=REAP_TASK)
def reap_stale_documents() -> dict:
    """Re-queue (or, after too many attempts, fail) documents whose worker stopped answering."""
    settings = pipeline().settings
    catalog = pipeline().catalog  # Pipeline is light until a document needs the model
    requeued, failed = [], []
    for record in catalog.stale(time.time() - settings.stale_after_s):
        stage, worker = record.status, record.worker or "a worker"
        if record.attempts + 1 >= settings.max_attempts:
            record.status, record.error_code = DocumentStatus.FAILED, "worker_lost"
            record.error = (f"{worker} stopped responding during {stage}, {record.attempts + 1} times; "
                            "the document may be too large or crash the parser")
            record.note(f"failed: {record.error}")
            catalog.upsert(record)
            failed.append(record.id)
            continue
        record.attempts += 1
        record.note(f"{worker} stopped responding during {stage}; re-queued (attempt {record.attempts + 1})")
        enqueue(catalog, record, record.stored_path or "")
        requeued.append(record.id)
    if requeued or failed:
        log.warning("reaper: re-queued %s, failed %s", requeued, failed)
    return {"requeued": requeued, "failed": failed}
