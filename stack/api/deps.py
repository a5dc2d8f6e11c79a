"""What routes depend on, as FastAPI dependencies: settings, the pipeline and its catalog, Redis,
the metrics, who the caller is (its key and role, checked against the abuse limits), the audit log,
and the document a path names.

``create_app`` builds these once and keeps them on ``app.state``; a route asks for them by type
(``pipeline: PipelineDep``), so it can be read, and tested, without the application's closure.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stack.api.errors import PipelineErrorWithStatus
from stack.api.limits import Limiter, client_address
from stack.api.metrics import ApiMetrics
from stack.keys import ADMIN_NAME, KeyStore
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

bearer = HTTPBearer(auto_error=False, description="RAG_API_KEY (role admin), or a key from POST /api/keys")


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the key's name (``admin`` for RAG_API_KEY), its role, the client's address,
    and the collections it may see (None: every one)."""

    name: str
    role: str
    client: str
    collections: frozenset[str] | None = None

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def default_collection(self, settings: Settings) -> str:
        """The configured default when the key sees it, else the first of its collections."""
        if self.sees(settings.collection):
            return settings.collection
        return min(self.collections)


def get_keys(request: Request) -> KeyStore:
    return request.app.state.keys


def get_limiter(request: Request) -> Limiter:
    return request.app.state.limiter


def too_many(message: str, hint: str, retry_after_s: int) -> PipelineErrorWithStatus:
    return PipelineErrorWithStatus(429, "rate_limited", message, hint, headers={"Retry-After": str(retry_after_s)})


def current_caller(request: Request, settings: SettingsDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The caller a request's bearer key names: RAG_API_KEY (``admin``), or a stored key that is not
    revoked (read from the key store on every request: a revocation holds at once on every replica).

    401 for a missing, wrong or revoked key; a client address with more than ``auth_fail_limit`` wrong
    keys in the current window gets 429 (with Retry-After) for the rest of it, whatever it sends.
    With no RAG_API_KEY set the API is open (development): a caller without a key is ``anonymous``,
    an admin."""
    peer = request.client.host if request.client else None
    client = client_address(peer, request.headers, settings.trusted_proxies)
    limiter = get_limiter(request)
    failures = limiter.peek("authfail", client)
    if failures.value > settings.auth_fail_limit:
        raise too_many(f"Too many failed authentications from {client}; refused for {failures.retry_after_s} s.",
                       "check the key you send, then retry after the time in Retry-After", failures.retry_after_s)
    admin_key = settings.api_key.get_secret_value() if settings.api_key else None
    if credentials is None:
        if admin_key is None:
            return Caller("anonymous", "admin", client)
        raise PipelineErrorWithStatus(401, "unauthorized", "Missing API key.", KEY_HINT)
    token = credentials.credentials
    if admin_key is not None and secrets.compare_digest(token.encode(), admin_key.encode()):
        return Caller(ADMIN_NAME, "admin", client)
    record = get_keys(request).lookup(token)
    if record is not None and record.active:
        scope = frozenset(record.collections) if record.collections is not None else None
        return Caller(record.name, record.role, client, scope)
    if record is None and admin_key is None:
        return Caller("anonymous", "admin", client)
    failures = limiter.hit("authfail", client)
    if failures.value > settings.auth_fail_limit:
        raise too_many(f"Too many failed authentications from {client}; refused for {failures.retry_after_s} s.",
                       "check the key you send, then retry after the time in Retry-After", failures.retry_after_s)
    if record is not None:
        raise PipelineErrorWithStatus(401, "unauthorized", f"The API key '{record.name}' was revoked.",
                                      "ask the stack's administrator for a new key (ragctl keys create)")
    raise PipelineErrorWithStatus(401, "unauthorized", "Wrong API key.", KEY_HINT)


KEY_HINT = "send 'Authorization: Bearer <key>': RAG_API_KEY from the project's .env, or a key from ragctl keys create"
CallerDep = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: str) -> Callable[[Caller], Caller]:
    """A dependency: the caller, when its role is one of ``roles``; 403 ``forbidden`` otherwise."""

    def check(caller: CallerDep) -> Caller:
        if caller.role not in roles:
            raise PipelineErrorWithStatus(403, "forbidden", f"The key '{caller.name}' (role {caller.role}) may not "
                                          "do this; it needs the role " + " or ".join(roles) + ".",
                                          "use an admin key (RAG_API_KEY), or ask its holder")
        return caller

    return check


require_admin = require_role("admin")
AdminDep = Annotated[Caller, Depends(require_admin)]

require_writer = require_role("admin", "editor")
WriterDep = Annotated[Caller, Depends(require_writer)]

#: ``dependencies=`` of routes that only an admin may use (keys, collections' creation, operations).
auth = [Depends(require_admin)]
#: ``dependencies=`` of routes an admin or an editor may use: uploads, deletes, retries, tasks (an
#: editor only in its collections: the routes check the scope).
writer_auth = [Depends(require_writer)]
#: ``dependencies=`` of routes that any valid key may use: search, ask, reading documents, /v1.
ask_auth = [Depends(current_caller)]


def check_upload_rate(request: Request, settings: SettingsDep, caller: CallerDep) -> None:
    """429 when the caller's key has sent more than ``upload_rate_limit`` uploads in this window."""
    count = get_limiter(request).hit("upload", caller.name)
    if count.value > settings.upload_rate_limit:
        raise too_many(f"The key '{caller.name}' sent more than {settings.upload_rate_limit} uploads in "
                       f"{settings.rate_window_s} s.", "retry after the time in Retry-After", count.retry_after_s)


class Auditor:
    """Writes audit lines (stack.audit) naming the request's caller."""

    def __init__(self, settings: Settings, caller: Caller) -> None:
        self.settings, self.caller = settings, caller

    def __call__(self, event: str, **details: Any) -> dict[str, Any]:
        from stack import audit

        return audit.record(self.settings, event, key=self.caller.name, role=self.caller.role,
                            client=self.caller.client, **details)

    def question(self, text: str, **details: Any) -> dict[str, Any]:
        """A question: its text only with RAG_AUDIT_QUESTIONS on; its length always."""
        text_detail = {"question": text} if self.settings.audit_questions else {}
        return self("question", chars=len(text), **text_detail, **details)


def get_auditor(settings: SettingsDep, caller: CallerDep) -> Auditor:
    return Auditor(settings, caller)


AuditDep = Annotated[Auditor, Depends(get_auditor)]


def collection_of(settings: Settings, name: str | None, caller: Caller | None = None) -> str:
    """A collection name from a request (validated), or the default (the caller's, when it is scoped).
    A collection outside the caller's scope is ``collection_not_found``, as one that does not exist."""
    from stack.pipeline.collection_admin import not_found
    from stack.pipeline.store import validate_collection_name

    if not name:
        return caller.default_collection(settings) if caller is not None else settings.collection
    validate_collection_name(name)
    if caller is not None and not caller.sees(name):
        raise not_found(name)
    return name


def find_document(document_id: str, pipeline: PipelineDep, settings: SettingsDep, caller: CallerDep,
                  collection: str | None = None) -> DocumentRecord:
    """The document a path names: its id, or the first 8+ characters of it (404 when none).  A
    collection outside the caller's scope answers exactly as a document that is not there."""
    from stack.pipeline.store import validate_collection_name

    name = validate_collection_name(collection) if collection else caller.default_collection(settings)
    if not caller.sees(name):
        raise pipeline.document_not_found(document_id, name)
    return pipeline.document(document_id, collection=name)


DocumentDep = Annotated[DocumentRecord, Depends(find_document)]
