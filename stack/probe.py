"""What the stack's own parts say about themselves, asked from where they run.

``ragctl health`` runs this inside a worker container (``python -m stack.probe``; Redis and Chroma
are not published there) or in-process for the local runtime.  Every probe reports its result or its
error; none raises, so one dead part never hides the state of the others.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from stack.settings import Settings, service_settings


def _timed(probe) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = probe()
        result["ok"] = result.get("ok", True)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def probe_redis(settings: Settings) -> dict[str, Any]:
    from stack import coordination
    from stack.names import INGEST_QUEUE

    r = coordination.redis_client(settings.redis_url)
    r.ping()
    info = r.info("persistence")
    workers = coordination.live_workers(r)
    return {"ping": True, "aof_enabled": bool(info.get("aof_enabled")),
            "queue_depth": coordination.queue_depth(r, INGEST_QUEUE),
            "heartbeats": sorted(workers), "intake_paused": coordination.intake_paused(r),
            # Where each worker encodes (issue #25): backend, engine, device, precision, threads.
            "embedding": {name: payload.get("embedding") for name, payload in sorted(workers.items())}}


def probe_celery(settings: Settings, timeout_s: float = 3.0) -> dict[str, Any]:
    from stack.names import INGEST_QUEUE
    from stack.worker.app import make_celery

    celery_app = make_celery(settings)
    # A probe gives up on a dead broker instead of riding it out as the services do.
    celery_app.conf.update(broker_connection_max_retries=1, broker_connection_timeout=3)
    inspect = celery_app.control.inspect(timeout=timeout_s)
    ping = inspect.ping() or {}
    registered = inspect.registered() or {}
    queues = inspect.active_queues() or {}
    conf = inspect.conf(with_defaults=True) or {}
    return {"workers": sorted(ping), "registered": sorted({t for tasks in registered.values() for t in tasks}),
            "registered_by": {name: sorted(tasks) for name, tasks in registered.items()},
            "consuming_ingest": sorted(name for name, qs in queues.items()
                                       if any(q.get("name") == INGEST_QUEUE for q in qs)),
            # Each worker's own configuration: the backend its results go to.
            "backends": {name: str(c.get("result_backend") or "") for name, c in conf.items()}}


def probe_chroma(settings: Settings) -> dict[str, Any]:
    from stack.pipeline.store import collection_of_chroma, open_chroma

    client = open_chroma(settings)
    client.heartbeat()
    collections = {}
    for collection in client.list_collections():
        name = collection if isinstance(collection, str) else collection.name
        collections[collection_of_chroma(name)] = {"count": client.get_collection(name).count(),
                             "embed_model": (client.get_collection(name).metadata or {}).get("embed_model")}
    return {"heartbeat": True, "collections": collections}


def probe_queue_age(settings: Settings) -> dict[str, Any]:
    from stack.names import DocumentStatus
    from stack.pipeline.backends import open_catalog

    queued = open_catalog(settings).list(status=DocumentStatus.QUEUED)
    oldest = min((r.created_at for r in queued), default=None)
    return {"queued": len(queued), "oldest_queued_age_s": round(time.time() - oldest, 1) if oldest else None}


def probe_gpu() -> dict[str, Any]:
    import torch

    available = torch.cuda.is_available()
    return {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": available,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else []}


def probe(settings: Settings, *, gpu: bool = True) -> dict[str, Any]:
    redis = _timed(lambda: probe_redis(settings))
    # Celery's control channel is Redis: with Redis away it would only wait out its own retries.
    celery = _timed(lambda: probe_celery(settings)) if redis["ok"] else {"ok": False, "error": "Redis unreachable"}
    report = {"redis": redis, "celery": celery,
              "chroma": _timed(lambda: probe_chroma(settings)), "queue": _timed(lambda: probe_queue_age(settings)),
              "configured": {"embed_model": settings.embed_model, "max_upload_mb": settings.max_upload_mb,
                             "collection": settings.collection, "device": settings.device}}
    if gpu:
        report["gpu"] = _timed(probe_gpu)
    return report


if __name__ == "__main__":
    sys.stdout.write(json.dumps(probe(service_settings(), gpu="--no-gpu" not in sys.argv)) + "\n")
