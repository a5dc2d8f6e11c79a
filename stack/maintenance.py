"""Quiescing the stack for a consistent copy, from where the services run.

``ragctl backup`` runs ``python -m stack.maintenance pause|resume|bgsave`` inside a container on
Docker (Redis is not published there) or calls these functions in-process for the local runtime.

pause: uploads get 503 (a short-lived flag that ``hold`` renews, so a crashed backup never leaves
intake closed for long), every
worker stops consuming the ingest queue (queued tasks stay queued, in Redis and in the catalog),
and the call waits until no document is being parsed, chunked, embedded or stored.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from stack.settings import Settings, service_settings


def _celery(settings: Settings):
    from stack.worker.app import make_celery

    app = make_celery(settings)
    app.conf.update(broker_connection_max_retries=1, broker_connection_timeout=3)
    return app


def pause(settings: Settings, *, reason: str = "backup", wait_s: float = 600) -> dict[str, Any]:
    from stack import coordination
    from stack.names import IN_PROGRESS, INGEST_QUEUE
    from stack.pipeline.backends import open_catalog

    r = coordination.redis_client(settings.redis_url)
    coordination.pause_intake(r, reason)
    replies = _celery(settings).control.cancel_consumer(INGEST_QUEUE, reply=True, timeout=3) or []
    catalog = open_catalog(settings)
    deadline = time.monotonic() + wait_s
    while True:
        busy = [r for status in IN_PROGRESS for r in catalog.list(status=status)]
        if not busy:
            break
        coordination.pause_intake(r, reason)  # renewed while waiting
        if time.monotonic() > deadline:
            resume(settings)
            return {"paused": False, "busy": [b.id for b in busy],
                    "error": f"{len(busy)} documents were still being ingested after {wait_s:.0f} s"}
        time.sleep(0.5)
    return {"paused": True, "workers_stopped_consuming": len(replies)}


def hold(settings: Settings, *, reason: str = "backup") -> dict[str, Any]:
    """Renew the intake pause (a backup calls this while it copies)."""
    from stack import coordination

    coordination.pause_intake(coordination.redis_client(settings.redis_url), reason)
    return {"held": True}


def resume(settings: Settings) -> dict[str, Any]:
    from stack import coordination
    from stack.names import INGEST_QUEUE

    coordination.resume_intake(coordination.redis_client(settings.redis_url))
    replies = _celery(settings).control.add_consumer(INGEST_QUEUE, reply=True, timeout=3) or []
    return {"resumed": True, "workers_consuming": len(replies)}


def bgsave(settings: Settings, *, wait_s: float = 120) -> dict[str, Any]:
    """Redis BGSAVE, waited for; returns where the snapshot is (inside Redis's own filesystem)."""
    from stack import coordination

    r = coordination.redis_client(settings.redis_url)
    before = r.lastsave()
    r.bgsave()
    deadline = time.monotonic() + wait_s
    while r.lastsave() == before or r.info("persistence").get("rdb_bgsave_in_progress"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis BGSAVE did not finish within {wait_s:.0f} s")
        time.sleep(0.2)
    info = r.info("persistence")
    directory, filename = r.config_get("dir")["dir"], r.config_get("dbfilename")["dbfilename"]
    return {"saved": info.get("rdb_last_bgsave_status") == "ok", "path": f"{directory}/{filename}",
            "keys": r.dbsize()}


def documents(settings: Settings) -> dict[str, list[str]]:
    """Collection → document ids, sorted, as the catalog holds them (backup's manifest, restore's and
    upgrade's checks), read through the backend this process is configured with."""
    from stack.pipeline.backends import open_catalog

    found: dict[str, list[str]] = {}
    for record in sorted(open_catalog(settings).list(), key=lambda r: (r.collection, r.id)):
        found.setdefault(record.collection, []).append(record.id)
    return found


def move_state(settings: Settings, *, replace: bool = False) -> dict[str, Any]:
    """The project folder's one-host state (SQLite files, extracted text, uploads) moved into the
    database RAG_DATABASE_URL names, verified, or rolled back (``ragctl upgrade``, in a container of
    the stopped stack).  Errors are returned, with their code and differences, not raised."""
    from stack.pipeline.errors import PipelineError
    from stack.pipeline.state_move import MoveMismatch, move_to_postgres

    url = settings.database_url.get_secret_value() if settings.database_url else ""
    if not url:
        return {"moved": False, "code": "no_database", "error": "RAG_DATABASE_URL is not set here"}
    try:
        report = move_to_postgres(settings.model_copy(update={"database_url": None}), url, replace=replace)
    except MoveMismatch as exc:
        return {"moved": False, "code": exc.code, "error": exc.message, "differences": exc.differences}
    except PipelineError as exc:
        return {"moved": False, "code": exc.code, "error": exc.message, "hint": exc.hint}
    return {"moved": True, **report.to_dict()}


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    actions = {"pause": pause, "hold": hold, "resume": resume, "bgsave": bgsave, "documents": documents,
               "move-state": move_state, "move-state-replace": lambda s: move_state(s, replace=True)}
    if action not in actions:
        sys.exit(f"usage: python -m stack.maintenance {'|'.join(actions)}")
    sys.stdout.write(json.dumps(actions[action](service_settings()), ensure_ascii=False) + "\n")
