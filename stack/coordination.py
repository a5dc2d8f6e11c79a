"""What the API and the workers tell each other through Redis, named in one place.

- cancel flags (``rag:cancel:<task id>``), checked by workers between stages and batches;
- worker heartbeats (``rag:worker:<name>``, expiring), read by readiness and health checks;
- stage timings and failure counts (``rag:metrics:*``), exposed by the API's /metrics;
- the intake pause (``rag:intake:paused``: short-lived, renewed, tied to one Redis run) that a
  backup sets: uploads get 503 meanwhile.
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache

CANCEL_PREFIX = "rag:cancel:"
WORKER_PREFIX = "rag:worker:"
STAGE_SECONDS = "rag:metrics:stage_seconds"
STAGE_COUNT = "rag:metrics:stage_count"
FAILURES = "rag:metrics:failures"
INTAKE_PAUSED = "rag:intake:paused"
WORKER_TTL_S = 30
DAY_S = 24 * 3600


@lru_cache(maxsize=8)
def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)


def request_cancel(r, task_id: str) -> None:
    r.set(CANCEL_PREFIX + task_id, "1", ex=DAY_S)


def cancel_requested(r, task_id: str) -> bool:
    return bool(r.exists(CANCEL_PREFIX + task_id))


def beat_worker(r, name: str, current: str | None = None) -> None:
    payload = {"pid": os.getpid(), "at": time.time(), "current": current}
    r.set(WORKER_PREFIX + name, json.dumps(payload), ex=WORKER_TTL_S)


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
