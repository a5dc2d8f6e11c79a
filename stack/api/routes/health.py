"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import socket

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from stack import coordination
from stack.api import schemas
from stack.api.deps import MetricsDep, PipelineDep, RedisDep, auth

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=schemas.Health)
def health() -> schemas.Health:
    """Liveness: the API process answers.  No dependencies, no auth.  ``instance`` names the
    replica (its host name), so a balancer's spread can be seen from outside."""
    return schemas.Health(status="ok", instance=socket.gethostname())


@router.get("/api/health/ready", response_model=schemas.Readiness, dependencies=auth,
            responses={503: {"model": schemas.Readiness}})
def ready(redis: RedisDep, pipeline: PipelineDep):
    """Readiness: Redis answers, the Chroma server answers, at least one worker is alive."""
    checks, live = {}, {}
    try:
        redis.ping()
        checks["redis"] = "ok"
        live = coordination.live_workers(redis)
        checks["workers"] = f"{len(live)} live" if live else "no live worker"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        checks["redis"] = f"unreachable: {exc}"
        checks["workers"] = "unknown (redis unreachable)"
    try:
        pipeline.chroma.heartbeat()
        checks["chroma"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["chroma"] = f"unreachable: {exc}"
    failing = [name for name, value in checks.items() if value != "ok" and not value.endswith(" live")]
    body = schemas.Readiness(status="unready" if failing else "ready", checks=checks, failing=failing,
                             workers=sorted(live),
                             embedding={name: payload.get("embedding") for name, payload in sorted(live.items())})
    return JSONResponse(body.model_dump(), status_code=503 if failing else 200)


@router.get("/metrics", dependencies=auth, response_class=Response)
def prometheus(metrics: MetricsDep) -> Response:
    """Prometheus metrics: request latency, queue depth, stage durations, failures."""
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
