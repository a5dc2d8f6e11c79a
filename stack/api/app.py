"""The FastAPI application.  Routes are thin: they validate, call the pipeline's catalog and
search functions, or hand a document to the workers.  The API never parses or embeds a document.

Run it with ``uvicorn stack.api.app:app`` (settings from the environment; see stack/settings.py).

The routes live in ``stack.api.routes`` (one router per area: health, documents, tasks,
questions); what they share (settings, the pipeline, Redis, the API key check) comes from
``stack.api.deps``; errors become one JSON envelope in ``stack.api.errors``.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import FastAPI, Request

from stack import coordination
from stack.api import errors
from stack.api.errors import ERRORS, PipelineErrorWithStatus, error_response  # noqa: F401 - re-exported
from stack.api.limits import Limiter
from stack.api.metrics import ApiMetrics
from stack.api.routes import collections, documents, health, keys, openai_compat, questions, tasks, web
from stack.names import INGEST_QUEUE
from stack.pipeline.backends import open_keys
from stack.settings import Settings, service_settings
from stack.version import version


def create_app(settings: Settings | None = None, *, warm_up: bool = False) -> FastAPI:
    """The application.  ``warm_up``: load the embedding model in the background now, so that the
    first question does not wait for it (the server does; tests building many apps do not)."""
    from stack.pipeline.service import Pipeline

    settings = settings or service_settings()
    pipeline = Pipeline(settings)
    redis = coordination.redis_client(settings.redis_url)
    key_store = open_keys(settings)
    metrics = ApiMetrics(redis, pipeline.catalog, INGEST_QUEUE, key_store)
    app = FastAPI(
        title="ragctl API",
        version=version(),
        description="Upload documents (answered at once; workers ingest them), follow their tasks, search and ask.",
        docs_url=None, redoc_url=None,  # served by install_docs, from the package: no CDN
    )
    app.state.settings, app.state.pipeline, app.state.redis, app.state.metrics = settings, pipeline, redis, metrics
    app.state.keys, app.state.limiter = key_store, Limiter(redis, settings.rate_window_s)
    _register_sync_keys(app.state.keys, settings)

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(request.method, getattr(route, "path", "unmatched"), response.status_code, started)
        return response

    errors.install(app)
    install_docs(app)
    web.install(app)  # the page for colleagues at / (public; its API calls carry the key)
    for router in (health.router, documents.router, tasks.router, questions.router, openai_compat.router,
                   keys.router, collections.router):
        app.include_router(router)
    if warm_up:
        threading.Thread(target=pipeline.warm_up, daemon=True, name="rag-warm-up").start()
    return app


#: Where the Swagger UI page loads its script, style sheet and icon from (this server, never a CDN).
DOCS_ASSETS = "/docs/assets"


def _register_sync_keys(store, settings: Settings) -> None:
    """The sync services' keys (ragctl.toml [[sync]]) in the key store before any of them calls; a
    store that cannot be reached now is said in the log, and the next start registers them."""
    from stack.keys import register_service_keys
    from stack.pipeline.errors import PipelineError

    try:
        register_service_keys(store, settings.sync_keys)
    except PipelineError as exc:
        logging.getLogger("ragctl.api").warning("sync service keys not registered: %s", exc.message)


def install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI 5 from the ``fastapi-offline`` package's files, so the page works on a closed
    network.  ReDoc is left out: its bundle loads a logo from its vendor's CDN.  Swagger UI's online
    validator badge is off (it would send the schema's URL to validator.swagger.io)."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles
    from starlette.responses import HTMLResponse

    app.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}" if redirect_url else None,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    if redirect_url:
        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()


def __getattr__(name: str):
    # ``uvicorn stack.api.app:app`` builds the app on first access, from the environment.
    if name == "app":
        globals()["app"] = create_app(warm_up=True)
        return globals()["app"]
    raise AttributeError(name)
