"""What the API and the workers tell each other through Redis, named in one place.

- cancel flags (``rag:cancel:<task id>``), checked by workers between stages and batches;
- worker liveness (``rag:worker:<name>``): one key per worker process, renewed every
  ``worker_heartbeat_s`` by a daemon thread of that process and expiring after
  ``worker_dead_after_s``; it names the process (pid, a boot id) and the document it holds.  Read
  by readiness and health checks, and by the reaper: a document is only re-queued when no live key
  holds it (the evidence of death), never for a late document heartbeat alone;
- the reaper's lock (one pass at a time), its counters (``rag:metrics:reaper``) and the queued
  task ids it found unaccounted for (``rag:reaper:unaccounted``): a queued document whose message
  is in no queue and in no live worker's hands (lost in a broker restart, or never sent) is re-sent
  when two passes agree;
- stage timings and failure counts (``rag:metrics:*``), exposed by the API's /metrics;
- the intake pause (``rag:intake:paused``: short-lived, renewed, tied to one Redis run) that a
  backup sets: uploads get 503 meanwhile.
"""

from __future__ import annotations

import json
import os
import socket
import time
from functools import lru_cache
from pathlib import Path

CANCEL_PREFIX = "rag:cancel:"
WORKER_PREFIX = "rag:worker:"
STAGE_SECONDS = "rag:metrics:stage_seconds"
STAGE_COUNT = "rag:metrics:stage_count"
FAILURES = "rag:metrics:failures"
INTAKE_PAUSED = "rag:intake:paused"
REAPER_LOCK = "rag:reaper:lock"
REAPER_COUNTS = "rag:metrics:reaper"
REAPER_UNACCOUNTED = "rag:reaper:unaccounted"
REINDEX_PREFIX = "rag:reindex:"
#: The key's lifetime when the caller does not say (Settings.worker_dead_after_s is what services pass).
WORKER_TTL_S = 60
DAY_S = 24 * 3600


@lru_cache(maxsize=8)
def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)


def set_reindex_state(r, collection: str, state: dict) -> None:
    """Where a collection's reindex stands (queued, building, built, swapped, discarded, failed, error),
    for the API to tell the CLI that drives the gate; kept a day."""
    r.set(REINDEX_PREFIX + collection, json.dumps(state, ensure_ascii=False), ex=DAY_S)


def reindex_state(r, collection: str) -> dict | None:
    raw = r.get(REINDEX_PREFIX + collection)
    return json.loads(raw) if raw else None


def request_cancel(r, task_id: str) -> None:
    r.set(CANCEL_PREFIX + task_id, "1", ex=DAY_S)


def cancel_requested(r, task_id: str) -> bool:
    return bool(r.exists(CANCEL_PREFIX + task_id))


def beat_worker(r, name: str, current: dict | None = None, *, ttl_s: float = WORKER_TTL_S,
                boot: str | None = None, holding: list[dict] | None = None, stats: dict | None = None,
                accepted: list[str] | None = None) -> None:
    """This worker process is alive (for ``ttl_s``) and holds ``holding`` (each {collection, document,
    task}, and for people: name, stage, started; ``current`` is the first of them).  ``accepted``: the
    task ids its consumer took from the queue and still means to run (reserved, waiting for their
    countdown, running).  ``stats``: the process's throughput (``chunks_done``, ``chunks_per_s``),
    shown by /metrics and ``ragctl top``."""
    payload = {"pid": os.getpid(), "host": socket.gethostname(), "boot": boot, "at": time.time(), "current": current,
               "holding": holding if holding is not None else ([current] if current else []),
               "accepted": accepted or [], **(stats or {})}
    r.set(WORKER_PREFIX + name, json.dumps(payload), ex=max(1, round(ttl_s)))


def holders(r) -> dict[tuple[str, str], tuple[str, dict]]:
    """(collection, document id) → (name, key payload) of the worker that holds it, from the
    workers' own unexpired keys."""
    return holders_of(live_workers(r))


def holders_of(workers: dict[str, dict]) -> dict[tuple[str, str], tuple[str, dict]]:
    """``holders`` from keys already read (``live_workers``)."""
    held = {}
    for name, payload in workers.items():
        claims = payload.get("holding") or ([payload.get("current")] if payload.get("current") else [])
        for claim in claims:
            if isinstance(claim, dict) and claim.get("document"):
                held[(claim.get("collection") or "", claim["document"])] = (name, payload)
    return held


def process_gone(payload: dict) -> bool:
    """True when the key's process ran on this host (same hostname: same machine or container, so
    same pid namespace) and no longer exists: evidence of death without waiting for the key to
    expire (kill -9 on the local runtime).  A stopped (SIGSTOP) or starved process exists."""
    if payload.get("host") != socket.gethostname() or not payload.get("pid"):
        return False
    try:
        os.kill(int(payload["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        return Path(f"/proc/{int(payload['pid'])}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def claimed_tasks(workers: dict[str, dict]) -> set[str]:
    """The task ids that live workers (``live_workers``) hold or have accepted."""
    claimed = set()
    for payload in workers.values():
        claimed.update(str(task) for task in payload.get("accepted") or [])
        claimed.update(str(claim.get("task")) for claim in payload.get("holding") or [] if isinstance(claim, dict))
    return claimed


def waiting_tasks(r, queue: str, task_ids: set[str], page: int = 500) -> set[str]:
    """Which of ``task_ids`` still wait in ``queue``'s broker lists (a message of kombu's Redis
    transport names its task in ``headers.id``).  Read a page at a time: a backlog is legitimate."""
    from kombu.transport.redis import Channel  # its names for a queue's lists, one per priority step

    waiting: set[str] = set()
    if not task_ids:
        return waiting
    for step in Channel.priority_steps:
        key = f"{queue}{Channel.sep}{step}" if step else queue
        start = 0
        while len(waiting) < len(task_ids):
            raw_messages = r.lrange(key, start, start + page - 1)
            for raw in raw_messages:
                try:
                    task_id = json.loads(raw).get("headers", {}).get("id")
                except (ValueError, AttributeError):
                    continue
                if task_id in task_ids:
                    waiting.add(task_id)
            if len(raw_messages) < page:
                break
            start += page
    return waiting


def unaccounted_twice(r, task_ids: set[str], min_gap_s: float, now: float | None = None) -> set[str]:
    """Of ``task_ids`` (unaccounted for in this pass), those also unaccounted for in a pass at least
    ``min_gap_s`` earlier: a message on its way from the queue to a worker is in neither place for a
    moment, never across two passes.  Ids accounted for again are forgotten."""
    now = time.time() if now is None else now
    seen = {key.decode(): float(value) for key, value in r.hgetall(REAPER_UNACCOUNTED).items()}
    pipe = r.pipeline()
    gone = [task_id for task_id in seen if task_id not in task_ids]
    if gone:
        pipe.hdel(REAPER_UNACCOUNTED, *gone)
    fresh = {task_id: now for task_id in task_ids if task_id not in seen}
    if fresh:
        pipe.hset(REAPER_UNACCOUNTED, mapping=fresh)
    pipe.expire(REAPER_UNACCOUNTED, DAY_S)
    pipe.execute()
    return {task_id for task_id in task_ids if task_id in seen and now - seen[task_id] >= min_gap_s}


def forget_unaccounted(r) -> None:
    """Nothing is queued for long: no earlier pass's suspicion stands."""
    r.delete(REAPER_UNACCOUNTED)


def redis_uptime_s(r) -> float:
    """How long this Redis has run: liveness keys younger than a restart are not yet evidence."""
    return float(r.info("server").get("uptime_in_seconds", 0))


def reaper_lock(r, ttl_s: float) -> bool:
    """One reaper pass at a time across workers (two passes would re-queue one document twice)."""
    return bool(r.set(REAPER_LOCK, str(os.getpid()), nx=True, ex=max(1, round(ttl_s))))


def reaper_unlock(r) -> None:
    r.delete(REAPER_LOCK)


def count_reaper(r, **counts: int) -> None:
    """Add to the reaper's counters: requeued, failed, spared (late heartbeat, live worker), resent
    (a queued document whose message was lost)."""
    pipe = r.pipeline()
    for name, value in counts.items():
        if value:
            pipe.hincrby(REAPER_COUNTS, name, value)
    pipe.execute()


def reaper_counts(r) -> dict[str, int]:
    return {key.decode(): int(value) for key, value in r.hgetall(REAPER_COUNTS).items()}


def forget_worker(r, name: str) -> None:
    r.delete(WORKER_PREFIX + name)


def live_workers(r) -> dict[str, dict]:
    names = [key.decode() for key in r.scan_iter(WORKER_PREFIX + "*", count=100)]
    values = r.mget(names) if names else []
    return {name[len(WORKER_PREFIX):]: json.loads(value) for name, value in zip(names, values, strict=True) if value}


def record_stage_times(r, timings: dict[str, float]) -> None:
    pipe = r.pipeline()
    for stage, seconds in timings.items():
        pipe.hincrbyfloat(STAGE_SECONDS, stage, seconds)
        pipe.hincrby(STAGE_COUNT, stage, 1)
    pipe.execute()


def record_failure(r, code: str) -> None:
    r.hincrby(FAILURES, code, 1)


def queue_depth(r, queue: str) -> int:
    return int(r.llen(queue))


INTAKE_PAUSE_TTL_S = 90


def _run_id(r) -> str:
    return str(r.info("server").get("run_id", ""))


def pause_intake(r, reason: str, ttl_s: int = INTAKE_PAUSE_TTL_S) -> None:
    """Refuse uploads for ``ttl_s``; whoever paused keeps renewing it, so a crashed backup never
    leaves intake closed for long.  The flag names the Redis process that holds it: the copy of it
    inside a backup's own snapshot means nothing to the Redis that a restore starts."""
    r.set(INTAKE_PAUSED, f"{reason}|{_run_id(r)}", ex=ttl_s)


def resume_intake(r) -> None:
    r.delete(INTAKE_PAUSED)


def intake_paused(r) -> str | None:
    """The reason uploads are paused, or None."""
    value = r.get(INTAKE_PAUSED)
    if not value:
        return None
    reason, _, run_id = value.decode().rpartition("|")
    if run_id != _run_id(r):  # restored from a snapshot taken during a pause
        r.delete(INTAKE_PAUSED)
        return None
    return reason
