"""Unattended sync (issue #26 part 4): the ``[[sync]]`` tables of ragctl.toml, as the Compose and
Swarm templates render them.

Each table is one folder kept the same as one collection by a service running
``ragctl sync /sync --watch`` inside the stack's image, with the host folder mounted read-only::

    [[sync]]
    path = "/srv/share/hr"      # the host folder (relative: to the project folder)
    collection = "hr"
    interval = "30s"           # between passes (30s, 5m, 1h)
    delete = false             # also delete documents whose files are gone

How it authenticates: with its own key, an ``editor`` key scoped to its one collection, named
``sync-<collection>``.  ``render`` generates the key into .env (``RAG_SYNC_KEY_<COLLECTION>``) like
the stack's other secrets; the sync service gets only that key (not .env, not the admin key, not
the data network: it talks to the API and nothing else); the API is given the key's SHA-256 (never
the key) and records it in its key store when it starts (:func:`stack.keys.register_service_keys`).
So the key exists before the sync service first calls, whatever order the services start in, in
Compose and Swarm alike; it is an ordinary key, listed by ``ragctl keys list``, named in the audit
log, and ``ragctl keys revoke sync-hr`` stops that sync for good (a restart does not bring it back).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from ragctl.errors import ConfigError
from ragctl.project import CONFIG_NAME, ProjectConfig

#: The key a sync service authenticates with, by collection.
KEY_NAME_PREFIX = "sync-"


class SyncFolder(BaseModel):
    """One ``[[sync]]`` table."""

    path: str = Field(min_length=1)
    collection: str
    interval: str = "30s"
    delete: bool = False

    @field_validator("collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        from stack.contract import validate_collection_name

        return validate_collection_name(value, hint=f"set collection in a [[sync]] table of {CONFIG_NAME}")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        from ragctl.sync import parse_interval

        parse_interval(value)
        return value

    @property
    def slug(self) -> str:
        """The collection as a service name's tail: lower case, letters, digits and '-'."""
        return re.sub(r"[^a-z0-9-]+", "-", self.collection.lower()).strip("-") or "x"

    @property
    def service(self) -> str:
        return f"sync-{self.slug}"

    @property
    def key_name(self) -> str:
        return KEY_NAME_PREFIX + self.collection[: 64 - len(KEY_NAME_PREFIX)]

    @property
    def key_var(self) -> str:
        """The .env entry holding this service's key."""
        return "RAG_SYNC_KEY_" + self.slug.upper().replace("-", "_")

    @property
    def seconds(self) -> float:
        from ragctl.sync import parse_interval

        return parse_interval(self.interval)


def load_sync_folders(root: Path) -> list[SyncFolder]:
    """The project's ``[[sync]]`` tables (a single ``[sync]`` table counts as one), validated: each
    folder exists, and no collection (or service name) is synced twice."""
    where = root / CONFIG_NAME
    raw = ProjectConfig.load(root).toml.get("sync", [])
    tables = [raw] if isinstance(raw, dict) else raw
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"sync in {where} is not a table: write [[sync]] with path, collection and interval.",
                          f"fix {where}")
    folders = []
    for index, table in enumerate(tables, start=1):
        try:
            folder = SyncFolder(**table)
        except (ValidationError, ValueError) as exc:
            raise ConfigError(f"[[sync]] number {index} in {where} is invalid: {_first(exc)}", f"fix {where}") from exc
        except Exception as exc:  # a RagError from the collection or interval check
            raise ConfigError(f"[[sync]] number {index} in {where} is invalid: {exc}", f"fix {where}") from exc
        host = (root / Path(folder.path).expanduser()).resolve()
        if not host.is_dir():
            raise ConfigError(f"[[sync]] number {index} in {where}: {host} is not a folder.",
                              f"create it, or fix path in {where}")
        folders.append(folder.model_copy(update={"path": str(host)}))
    for attribute in ("collection", "service"):
        seen: dict[str, SyncFolder] = {}
        for folder in folders:
            other = seen.setdefault(getattr(folder, attribute), folder)
            if other is not folder:
                raise ConfigError(f"Two [[sync]] tables in {where} sync into {folder.collection!r}"
                                  + (f" and {other.collection!r} (one service name, {folder.service})"
                                     if attribute == "service" else "") + ": one folder per collection.",
                                  f"keep one of them in {where}")
    return folders


def sync_services_wanted(root: Path) -> dict[str, int]:
    """Service → replicas (one each) of the project's sync services, for ``ps``, ``health`` and ``up``'s wait.
    A configuration that no longer reads (a folder gone) wants none: ``render`` says what is wrong."""
    try:
        return {folder.service: 1 for folder in load_sync_folders(root)}
    except ConfigError:
        return {}


def _first(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    return str(exc)


def render_entries(root: Path, existing_env: dict[str, str], *, https_api: bool) -> dict:
    """What the templates need: ``sync_services`` (one dict per folder, its key generated when .env
    has none yet), ``sync_key_hashes`` (what the API registers), ``sync_api_url``."""
    import hashlib

    from stack.contract import new_key

    services = []
    for folder in load_sync_folders(root):
        key = existing_env.get(folder.key_var) or new_key()
        services.append({"service": folder.service, "collection": folder.collection, "path": folder.path,
                         "interval": folder.interval, "delete": folder.delete, "key_var": folder.key_var,
                         "key": key, "key_name": folder.key_name,
                         "key_hash": hashlib.sha256(key.encode()).hexdigest()})
    registered = ",".join(f"{s['key_name']}={s['collection']}={s['key_hash']}" for s in services)
    return {"sync_services": services, "sync_keys_registered": registered,
            "sync_api_url": ("https" if https_api else "http") + "://api:8000"}
