"""The intake policy (stack.pipeline.intake): what a file whose bytes are already known gets."""

from __future__ import annotations

import pytest

from stack.names import ACTIVE, IN_PROGRESS, TERMINAL, DocumentStatus
from stack.pipeline import intake
from stack.pipeline.catalog import DocumentRecord
from stack.pipeline.intake import Action

NOW = 1_000_000.0


def record(status: str, *, heartbeat_at: float | None = None, updated_at: float = NOW - 1,
           task_id: str | None = "t-1") -> DocumentRecord:
    return DocumentRecord(id="abc", collection="default", file_name="a.pdf", size=3, status=status,
                          task_id=task_id, heartbeat_at=heartbeat_at, created_at=NOW - 100, updated_at=updated_at)


def decide(existing, **kwargs):
    return intake.decide(existing, stale_after_s=45, now=NOW, **kwargs)


@pytest.mark.parametrize(("status", "action"), [
    (DocumentStatus.QUEUED, Action.FOLLOW),
    (DocumentStatus.PARSING, Action.FOLLOW),
    (DocumentStatus.CHUNKING, Action.FOLLOW),
    (DocumentStatus.EMBEDDING, Action.FOLLOW),
    (DocumentStatus.STORING, Action.FOLLOW),
    (DocumentStatus.DONE, Action.SKIP),
    (DocumentStatus.FAILED, Action.INGEST),
    (DocumentStatus.CANCELLED, Action.INGEST),
])
def test_each_status_has_one_decision(status, action):
    decision = decide(record(status))
    assert decision.action is action
    assert decision.duplicate == (action is not Action.INGEST)
    assert decision.existing is not None and decision.existing.status == status


def test_every_status_is_covered():
    assert set(DocumentStatus) == {*ACTIVE, *TERMINAL} and not set(ACTIVE) & TERMINAL


def test_new_bytes_are_ingested():
    decision = decide(None)
    assert decision.action is Action.INGEST and not decision.duplicate and decision.existing is None


@pytest.mark.parametrize("status", list(DocumentStatus))
def test_replace_always_ingests(status):
    assert decide(record(status), replace=True).action is Action.INGEST


def test_a_followed_task_is_named():
    assert "task t-1" in decide(record(DocumentStatus.QUEUED)).reason
    assert "task" not in decide(record(DocumentStatus.PARSING, task_id=None)).reason


@pytest.mark.parametrize("status", IN_PROGRESS)
def test_an_abandoned_ingest_is_taken_over(status):
    assert decide(record(status, heartbeat_at=NOW - 46)).action is Action.INGEST
    assert decide(record(status, heartbeat_at=None, updated_at=NOW - 46)).action is Action.INGEST  # never beat
    assert decide(record(status, heartbeat_at=NOW - 5, updated_at=NOW - 500)).action is Action.FOLLOW
    # Without a limit nothing counts as abandoned.
    assert intake.decide(record(status, heartbeat_at=NOW - 10_000), now=NOW).action is Action.FOLLOW


@pytest.mark.parametrize("status", IN_PROGRESS)
def test_a_late_heartbeat_of_a_document_a_live_worker_holds_is_followed(status):
    """The reaper's evidence, used at intake too: a busy (starved, frozen) worker is not a dead one."""
    late = record(status, heartbeat_at=NOW - 500)
    assert decide(late, held_by_live_worker=lambda r: r.id == "abc").action is Action.FOLLOW
    assert decide(late, held_by_live_worker=lambda r: False).action is Action.INGEST


def test_a_long_queue_is_not_abandoned():
    assert decide(record(DocumentStatus.QUEUED, updated_at=NOW - 10_000)).action is Action.FOLLOW


def test_queued_record_starts_over_but_keeps_first_seen():
    old = record(DocumentStatus.FAILED)
    old.attempts, old.error, old.chunks = 3, "boom", 7
    fresh = intake.queued_record(decide(old), document_id="abc", collection="default", file_name="b.pdf", size=4,
                                 stored_path="/x/b.pdf", embed_model="m")
    assert fresh.status == DocumentStatus.QUEUED and fresh.file_name == "b.pdf" and fresh.size == 4
    assert (fresh.attempts, fresh.error, fresh.chunks) == (0, None, 0)
    assert fresh.created_at == old.created_at and "retrying" in fresh.log[-1]
    new = intake.queued_record(decide(None), document_id="def", collection="c1", file_name="n.md", size=1,
                               stored_path="/x/n.md", embed_model=None)
    assert new.created_at == 0.0 and new.log[-1].endswith("registered")


def test_queued_record_refuses_a_duplicate():
    with pytest.raises(ValueError):
        intake.queued_record(decide(record(DocumentStatus.DONE)), document_id="abc", collection="default",
                             file_name="a.pdf", size=3, stored_path="/x", embed_model=None)
