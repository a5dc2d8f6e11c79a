"""The FastAPI application.  Routes are thin: they validate, call the pipeline's catalog and
search functions, or hand a document to the workers.  The API never parses or embeds a document.

Run it with ``uvicorn stack.api.app:app`` (settings from the environment; see stack/settings.py).

The routes live in ``stack.api.routes`` (one router per area: health, documents, tasks,
questions); what they share (settings, the pipeline, Redis, the API key check) comes from
``stack.api.deps``; errors become one JSON envelope in ``stack.api.errors``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

from stack import coordination
from stack.api import errors
from stack.api.errors import ERRORS, PipelineErrorWithStatus, error_response  # noqa: F401 - re-exported
from stack.api.metrics import ApiMetrics
from stack.api.routes import documents, health, questions, tasks
from stack.names import INGEST_QUEUE
from stack.settings import Settings, service_settings
from stack.version import version


def create_app(settings: Settings | None = None) -> FastAPI:
    from stack.pipeline.service import Pipeline

    settings = settings or service_settings()
    pipeline = Pipeline(settings)
    redis = coordination.redis_client(settings.redis_url)
    metrics = ApiMetrics(redis, pipeline.catalog, INGEST_QUEUE)
    app = FastAPI(
        title="ragctl API",
        version=version(),
        description="Upload documents (answered at once; workers ingest them), follow their tasks, search and ask.",
    )
    app.state.settings, app.state.pipeline, app.state.redis, app.state.metrics = settings, pipeline, redis, metrics

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), response.status_code, started)
        return response

    errors.install(app)
    for router in (health.router, documents.router, tasks.router, questions.router):
        app.include_router(router)
    return app


def __getattr__(name: str):
    # ``uvicorn stack.api.app:app`` builds the app on first access, from the environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
