"""What routes depend on, as FastAPI dependencies: settings, the pipeline and its catalog, Redis,
the metrics, the API key check, and the document a path names.

``create_app`` builds these once and keeps them on ``app.state``; a route asks for them by type
(``pipeline: PipelineDep``), so it can be read, and tested, without the application's closure.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stack.api.errors import PipelineErrorWithStatus
from stack.api.metrics import ApiMetrics
from stack.pipeline.catalog import Catalog, DocumentRecord
from stack.pipeline.service import Pipeline
from stack.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_catalog(request: Request) -> Catalog:
    return request.app.state.pipeline.catalog


def get_redis(request: Request) -> Any:
    return request.app.state.redis


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
RedisDep = Annotated[Any, Depends(get_redis)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]

bearer = HTTPBearer(auto_error=False, description="RAG_API_KEY")


def require_key(settings: SettingsDep,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """401 unless the request carries ``Authorization: Bearer <RAG_API_KEY>`` (when a key is set)."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value()
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise PipelineErrorWithStatus(401, "unauthorized", "Missing or wrong API key.",
                                      "send 'Authorization: Bearer <RAG_API_KEY>' (see the project's .env)")


#: ``dependencies=`` of every route but liveness.
auth = [Depends(require_key)]


def collection_of(settings: Settings, name: str | None) -> str:
    """A collection name from a request (validated), or the configured default."""
    from stack.pipeline.store import validate_collection_name

    return validate_collection_name(name or settings.collection)


def find_document(document_id: str, pipeline: PipelineDep, settings: SettingsDep,
                  collection: str | None = None) -> DocumentRecord:
    """The document a path names: its id, or the first 8+ characters of it (404 when none)."""
    return pipeline.document(document_id, collection=collection_of(settings, collection))


DocumentDep = Annotated[DocumentRecord, Depends(find_document)]
