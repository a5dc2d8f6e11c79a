"""A queued document whose broker message is lost is sent again, once, and nothing else is.

A Celery consumer that loses its Redis connection drops the tasks it had reserved but not started;
their messages stay in the broker's unacked set for the visibility timeout (an hour), and the
documents stayed ``queued`` that long (CI, a Redis restart under load).  The reaper now re-sends a
document queued for longer than ``stale_after_s`` whose task is neither waiting in the queue nor
accepted by a live worker, when two passes agree.

A real redis-server, real messages published by the project's Celery app (kombu's Redis
transport), the reaper's own code (``reap_stale_documents``) over a real SQLite catalog; no worker
consumes this Redis, so what waits in the queue stays there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from stack import coordination
from stack.names import INGEST_QUEUE, INGEST_TASK, DocumentStatus
from stack.pipeline.catalog import DocumentRecord
from stack.settings import load_settings

pytestmark = pytest.mark.slow

STALE_S = 0.5
HEARTBEAT_S = 0.2


@pytest.fixture
def reaper(tmp_path, redis_url, monkeypatch):
    """The reaper's module wired to this Redis and a fresh project: (tasks module, catalog, redis,
    the Celery app whose messages land in this Redis)."""
    from stack.pipeline.service import Pipeline
    from stack.worker import app as worker_app
    from stack.worker import tasks

    settings = load_settings(tmp_path, {"redis_url": redis_url, "stale_after_s": STALE_S,
                                        "worker_heartbeat_s": HEARTBEAT_S, "chroma_url": None})
    pipeline = Pipeline(settings)
    r = coordination.redis_client(redis_url)
    r.flushdb()
    broker = worker_app.make_celery(settings)
    monkeypatch.setattr(tasks, "pipeline", lambda: pipeline)
    monkeypatch.setattr(tasks, "_redis", lambda: r)
    monkeypatch.setattr(worker_app.app, "send_task", broker.send_task)  # real messages, this Redis
    deadline = time.monotonic() + 10
    while coordination.redis_uptime_s(r) < 2 * HEARTBEAT_S + 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # the reaper gives no verdicts on a Redis younger than two heartbeats
    yield tasks, pipeline.catalog, r, broker
    broker.close()


def queued(catalog, name: str) -> DocumentRecord:
    record = DocumentRecord(id=uuid.uuid4().hex, collection="default", file_name=name, size=1,
                            status=DocumentStatus.QUEUED, stored_path=f"blob:{name}", task_id=str(uuid.uuid4()))
    catalog.upsert(record, reason="registered")
    return record


def send(broker, record: DocumentRecord) -> None:
    broker.send_task(INGEST_TASK, kwargs={"document_id": record.id}, task_id=record.task_id,
                     queue=INGEST_QUEUE)


def test_waiting_tasks_reads_the_ids_of_real_messages_page_by_page(reaper):
    _tasks, catalog, r, broker = reaper
    records = [queued(catalog, f"n{i}.md") for i in range(5)]
    for record in records[:4]:
        send(broker, record)
    ids = {record.task_id for record in records}
    assert coordination.waiting_tasks(r, INGEST_QUEUE, ids, page=2) == ids - {records[4].task_id}
    assert coordination.waiting_tasks(r, INGEST_QUEUE, set()) == set()
    assert coordination.waiting_tasks(r, "no-such-queue", ids) == set()


def test_only_a_document_whose_message_is_lost_is_sent_again_after_two_passes(reaper):
    tasks, catalog, r, broker = reaper
    waiting = queued(catalog, "waiting.md")  # its message waits in the queue (a backlog)
    send(broker, waiting)
    accepted = queued(catalog, "accepted.md")  # a live worker took it (reserved, not started)
    coordination.beat_worker(r, "worker-a@host", ttl_s=60, accepted=[accepted.task_id])
    lost = queued(catalog, "lost.md")  # neither: its message is gone
    time.sleep(STALE_S + 0.1)
    fresh = queued(catalog, "fresh.md")  # queued just now: too young to judge

    first = tasks.reap_stale_documents()
    assert first["resent"] == [], "one pass is not evidence: a message may be between queue and worker"
    time.sleep(2 * HEARTBEAT_S + 0.1)
    second = tasks.reap_stale_documents()
    assert second["resent"] == [lost.id]

    after = catalog.get("default", lost.id)
    assert after.status == DocumentStatus.QUEUED and after.task_id != lost.task_id
    assert after.attempts == 0, "a lost message is not the document's failed attempt"
    assert any("lost" in line for line in after.log), after.log
    assert coordination.waiting_tasks(r, INGEST_QUEUE, {after.task_id}) == {after.task_id}, "a real message"
    assert catalog.by_task(lost.task_id).id == lost.id, "the old id keeps answering"
    assert set(catalog.task_ids("default", lost.id)) == {lost.task_id, after.task_id}
    for unchanged in (waiting, accepted, fresh):
        assert catalog.get("default", unchanged.id).task_id == unchanged.task_id
    assert coordination.reaper_counts(r).get("resent") == 1

    time.sleep(2 * HEARTBEAT_S + 0.1)
    # Its new message waits in the queue: sent once.  The one queued late, with no message either,
    # has now been unaccounted for in two passes itself.
    assert tasks.reap_stale_documents()["resent"] == [fresh.id]


def test_a_lost_document_that_moved_on_between_passes_is_left_alone(reaper):
    tasks, catalog, r, _broker = reaper
    lost = queued(catalog, "lost.md")
    time.sleep(STALE_S + 0.1)
    assert tasks.reap_stale_documents()["resent"] == []
    record = catalog.get("default", lost.id)
    record.status = DocumentStatus.PARSING  # its message came back and a live worker started it
    catalog.upsert(record)
    coordination.beat_worker(r, "worker-c@host", ttl_s=60, holding=[
        {"collection": "default", "document": lost.id, "task": lost.task_id}])
    time.sleep(2 * HEARTBEAT_S + 0.1)
    assert tasks.reap_stale_documents()["resent"] == []
    assert catalog.get("default", lost.id).task_id == lost.task_id
    assert not r.exists(coordination.REAPER_UNACCOUNTED), "no suspicion outlives its document's wait"


def test_a_second_delivery_of_a_running_task_is_dropped(reaper):
    """The broker may give a message out twice (restored after a lost connection): the task that
    finds its own id already running on a live worker returns without touching the document."""
    tasks, catalog, r, _broker = reaper
    record = queued(catalog, "running.md")
    coordination.beat_worker(r, "worker-b@host", ttl_s=60, holding=[
        {"collection": "default", "document": record.id, "task": record.task_id}])
    assert tasks._already_running(r, "default", record.id, record.task_id) == "worker-b@host"
    assert tasks._already_running(r, "default", record.id, str(uuid.uuid4())) is None
    result = tasks.ingest_document.apply(kwargs={"collection": "default", "document_id": record.id,
                                                 "path": "blob:none", "file_name": "running.md"},
                                         task_id=record.task_id).get()
    assert result["status"] == "duplicate" and result["worker"] == "worker-b@host"
    assert catalog.get("default", record.id).status == DocumentStatus.QUEUED

    # A holder whose process is gone (same host, pid ended) runs nothing.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(10)
    payload = json.loads(r.get(coordination.WORKER_PREFIX + "worker-b@host"))
    payload["pid"] = ended.pid
    r.set(coordination.WORKER_PREFIX + "worker-b@host", json.dumps(payload), ex=60)
    assert tasks._already_running(r, "default", record.id, record.task_id) is None
    assert os.getpid() != ended.pid
