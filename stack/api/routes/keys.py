"""Who am I, and the API keys (admin only): create (the key is shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from stack.api.deps import AuditDep, CallerDep, auth, get_keys
from stack.api.errors import ERRORS
from stack.keys import ApiKey

router = APIRouter(tags=["keys"])


class WhoAmI(BaseModel):
    name: str = Field(description="The key's name: 'admin' for RAG_API_KEY, 'anonymous' on an open API.")
    role: str = Field(description="admin (everything), editor (also upload and delete documents) or ask "
                      "(search, ask, read documents, /v1).")
    collections: list[str] | None = Field(default=None, description="The collections the key sees; null: all.")


class KeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="Unique; letters, digits, '.', '_', '@', '-'.")
    role: str = Field(default="ask", description="ask, editor or admin.")
    collections: list[str] | None = Field(default=None, max_length=1000,
                                          description="The collections the key may see; null or absent: all "
                                          "(an admin key always sees all).")


class KeyOut(BaseModel):
    name: str
    role: str
    prefix: str = Field(description="The key's first characters, to recognise it; never the key.")
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    active: bool
    collections: list[str] | None = Field(default=None, description="The collections it sees; null: all.")


class NewKey(KeyOut):
    key: str = Field(description="The key itself: shown this once, stored only as its SHA-256 hash.")


def key_out(record: ApiKey) -> dict:
    return record.to_dict()


@router.get("/api/whoami", response_model=WhoAmI, responses=ERRORS)
def whoami(caller: CallerDep) -> WhoAmI:
    """The name and role of the key this request carries (any valid key)."""
    scope = sorted(caller.collections) if caller.collections is not None else None
    return WhoAmI(name=caller.name, role=caller.role, collections=scope)


@router.post("/api/keys", response_model=NewKey, status_code=201, dependencies=auth, responses=ERRORS)
def create_key(body: KeyRequest, request: Request, audit: AuditDep):
    """Make a key with a role; the answer holds the key, once."""
    record, key = get_keys(request).create(body.name, body.role, body.collections)
    audit("key_create", key_name=record.name, key_role=record.role, key_prefix=record.prefix,
          key_collections=list(record.collections) if record.collections is not None else None)
    return key_out(record) | {"key": key}


@router.get("/api/keys", response_model=list[KeyOut], dependencies=auth, responses=ERRORS)
def list_keys(request: Request):
    """Every stored key (revoked ones too), oldest first; never the keys themselves."""
    return [key_out(record) for record in get_keys(request).list()]


@router.delete("/api/keys/{name}", response_model=KeyOut, dependencies=auth, responses=ERRORS)
def revoke_key(name: str, request: Request, audit: AuditDep):
    """Revoke a key: refused (401) from the next request on, on every replica."""
    record = get_keys(request).revoke(name)
    audit("key_revoke", key_name=record.name, key_role=record.role, key_prefix=record.prefix)
    return key_out(record)
