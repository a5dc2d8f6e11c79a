"""The Celery application shared by the API (which only sends tasks), the workers and beat.

Importing this module is light: no torch, no chromadb.  The pipeline is imported by the tasks
when they first run, inside the worker process (never CUDA before a fork).
"""

from __future__ import annotations

import uuid

from celery import Celery

from stack.names import INGEST_QUEUE, INGEST_TASK, REAP_TASK, REINDEX_TASK, DocumentStatus
from stack.settings import service_settings

__all__ = ["INGEST_QUEUE", "INGEST_TASK", "REAP_TASK", "REINDEX_TASK", "app", "enqueue", "make_celery"]  # names re-exported


def make_celery(settings=None) -> Celery:
    settings = settings or service_settings()
    celery = Celery("ragctl", broker=settings.redis_url, backend=settings.redis_url, include=["stack.worker.tasks"])
    celery.conf.update(
        task_acks_late=True,  # a task is acknowledged when it ends, so a dead worker's task is redelivered
        task_reject_on_worker_lost=True,
        # Each process runs worker_concurrency ingest tasks as threads around one model (their chunks
        # share embedding batches: stack.pipeline.embed.SharedBatches) and reserves no more than that:
        # a big upload holds one thread, never the documents queued behind it.
        worker_concurrency=settings.worker_concurrency,
        worker_prefetch_multiplier=1,
        task_default_queue=INGEST_QUEUE,
        task_routes={INGEST_TASK: {"queue": INGEST_QUEUE}, REAP_TASK: {"queue": INGEST_QUEUE},
                     REINDEX_TASK: {"queue": INGEST_QUEUE}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # ride out a Redis restart
        broker_transport_options={"visibility_timeout": 3600},
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        # A reaper message that waited longer than one interval (every worker busy) is dropped:
        # the next one will do, and a backlog of them would only run back to back.
        beat_schedule={"reap-stale-documents": {"task": REAP_TASK, "schedule": settings.reap_interval_s,
                                                "options": {"expires": settings.reap_interval_s}}},
    )
    return celery


app = make_celery()


def enqueue(catalog, record, path: str, *, reason: str | None = None) -> str:
    """Give ``record`` a new task id, mark it queued and send its ingest task.  Returns the id.

    The record is written first, so the worker that takes the task always finds it.  The new id
    joins the document's task history (the catalog's ``task_ids``): every id given before keeps
    answering with the document's current state, and a worker still holding an older one can no
    longer write the record (``reason``: why this id was given, for ``tasks list``)."""
    reason = reason or ("registered" if not record.task_id else "registered again (retry or replace)")
    task_id = str(uuid.uuid4())
    record.task_id, record.status, record.progress = task_id, DocumentStatus.QUEUED, 0.0
    catalog.upsert(record, reason=reason)
    app.send_task(
        INGEST_TASK, kwargs={"collection": record.collection, "document_id": record.id, "path": path,
                             "file_name": record.file_name},
        task_id=task_id, queue=INGEST_QUEUE,
    )
    return task_id
