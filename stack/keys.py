"""API keys besides the admin key (``RAG_API_KEY``): named keys with a role, kept hashed.

A key is ``rk_`` + ``secrets.token_urlsafe(32)``; it is shown once, when it is made, and stored only
as its SHA-256 hash plus a short display prefix.  Roles: ``admin`` (everything), ``editor``
(upload, re-ingest and delete documents; search, ask and read) and ``ask`` (search, ask and read).
A key may be scoped to a list of collections (issue #26): it sees nothing else, and anything
outside its scope answers as if it did not exist.  A key with no list (every key made before
scopes existed) sees every collection; an admin key always does.  The store is a small interface (:class:`KeyStore`) with two backends, chosen
by stack.pipeline.backends.open_keys: a SQLite file under the project's data folder
(``data/keys.sqlite``), which every API replica of one host shares, and, with ``RAG_DATABASE_URL``
set, the table ``api_keys`` of the stack's PostgreSQL schema (stack.pipeline.postgres), which API
replicas on different hosts share (issue #12).

Lookups read the store on every request (no cache), so a revoked key stops working at once on every
replica.  No transport here: the API (stack.api.deps, stack.api.routes.keys) and the CLI (over the
API) use it.  psycopg is never imported here: the Postgres store runs on a ``Database`` it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from stack.contract import API_KEY_PREFIX, new_key
from stack.pipeline.errors import PipelineError
from stack.pipeline.sqlite import use_wal

if TYPE_CHECKING:
    from stack.pipeline.postgres import Database

Role = Literal["admin", "editor", "ask"]
ROLES: tuple[Role, ...] = ("admin", "editor", "ask")
#: Roles that may upload, re-ingest and delete documents (in their collections).
WRITERS = frozenset({"admin", "editor"})
PREFIX = API_KEY_PREFIX
#: The admin key's name (``RAG_API_KEY``); no stored key may take it.
ADMIN_NAME = "admin"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: How often a key's ``last_used_at`` is written at most (a write per request would serialise replicas).
TOUCH_EVERY_S = 60.0


class KeyRefused(PipelineError):
    """A key request the store refuses (bad name or role, a taken name, an unknown key)."""

    def __init__(self, code: str, message: str, hint: str | None = None, status: int = 422) -> None:
        super().__init__(message, hint=hint)
        self.code, self.http_status = code, status


@dataclass(frozen=True)
class ApiKey:
    """A stored key, as listed: never the key itself."""

    name: str
    role: Role
    prefix: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None
    #: The collections the key may see; None: every collection.
    collections: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        return asdict(self) | {"active": self.active,
                               "collections": list(self.collections) if self.collections is not None else None}


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise KeyRefused("invalid_key_name", f"Invalid key name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
                        "starting with a letter or digit.", "e.g. ragctl keys create --role ask --name web-team")
    if name == ADMIN_NAME:
        raise KeyRefused("invalid_key_name", f"'{ADMIN_NAME}' names the admin key (RAG_API_KEY).",
                        "choose another name")
    return name


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise KeyRefused("invalid_role", f"Unknown role {role!r}: the roles are {', '.join(ROLES)}.",
                        "--role ask (search, ask, read), --role editor (also upload and delete documents) "
                        "or --role admin (everything)")
    return role  # type: ignore[return-value]


def check_scope(role: str, collections) -> tuple[str, ...] | None:
    """A key's collections: None (all), or a sorted tuple of valid, distinct names; an admin key has no scope."""
    from stack.pipeline.store import validate_collection_name

    if collections is None:
        return None
    names = sorted({name.strip() for name in collections if name and name.strip()})
    if not names:
        raise KeyRefused("invalid_scope", "A scoped key needs at least one collection.",
                         "ragctl keys create --role ask --collections hr,policies --name NAME")
    if role == "admin":
        raise KeyRefused("invalid_scope", "An admin key sees every collection; it takes no --collections.",
                         "ragctl keys create --role editor --collections " + ",".join(names) + " --name NAME")
    for name in names:
        try:
            validate_collection_name(name)
        except PipelineError as exc:
            raise KeyRefused("invalid_scope", exc.message,
                             "ragctl keys create --role ask --collections hr,policies --name NAME") from exc
    return tuple(names)


def _scope_text(scope: tuple[str, ...] | None) -> str | None:
    return json.dumps(list(scope)) if scope is not None else None


class KeyStore(Protocol):
    """What the API needs from a key store, whatever keeps it."""

    def create(self, name: str, role: str, collections=None) -> tuple[ApiKey, str]:
        """A new key (scoped to ``collections``, None: all): its record, and the key itself (the only
        time it is seen)."""

    def lookup(self, key: str) -> ApiKey | None:
        """The record of a presented key (revoked ones too: the caller tells 401 apart), or None."""

    def list(self) -> list[ApiKey]: ...

    def revoke(self, name: str) -> ApiKey:
        """Revoke a key by name (at once, for every replica); NotFound-like error when none."""

    def register(self, name: str, role: str, collections, key_hash: str) -> None:
        """Record a key made elsewhere, by its hash (a stack's sync service: ragctl/sync_services.py):
        added when the name is free, its hash, role and scope updated when the name holds an active
        key, left alone when that key was revoked (a revocation holds across restarts)."""


#: register() in the SQL both stores speak.
_REGISTER_SQL = ("INSERT INTO api_keys (name, role, hash, prefix, created_at, collections) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, role = excluded.role, "
                 "collections = excluded.collections WHERE api_keys.revoked_at IS NULL")
#: What ``keys list`` shows as the prefix of a registered key (its key is never seen by the store).
REGISTERED_PREFIX = PREFIX + "(sync)"


def _register_args(name: str, role: str, collections, key_hash: str) -> tuple:
    name, role = check_name(name), check_role(role)
    scope = check_scope(role, collections)
    return name, role, key_hash, REGISTERED_PREFIX, time.time(), _scope_text(scope)


def register_service_keys(store: KeyStore, spec: str | None) -> list[str]:
    """Register the keys ``RAG_SYNC_KEYS`` names ("name=collection=sha256,…"): each an ``editor`` key
    scoped to its one collection.  Returns their names."""
    names = []
    for entry in (spec or "").split(","):
        if not entry.strip():
            continue
        name, collection, key_hash = entry.strip().rsplit("=", 2)
        store.register(name, "editor", [collection], key_hash)
        names.append(name)
    return names


class SqliteKeyStore:
    """The key store in one SQLite file (WAL, busy timeout: several API processes share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()  # a connection per thread: a lookup ~0.1 ms, not ~6 (busy test host)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in one transaction.  Outside a transaction every read sees what
        any process committed last (WAL), so a revocation is seen by the next request."""
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.row_factory = sqlite3.Row
            use_wal(db)
            with db:
                db.execute("""CREATE TABLE IF NOT EXISTS api_keys (
                    name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
                    created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL, collections TEXT)""")
                if "collections" not in {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}:
                    db.execute("ALTER TABLE api_keys ADD COLUMN collections TEXT")  # a store made before scopes
            self._local.db, self._local.pid = db, os.getpid()
        with db:
            yield db

    def create(self, name: str, role: str, collections=None) -> tuple[ApiKey, str]:
        name, role = check_name(name), check_role(role)
        scope = check_scope(role, collections)
        key = new_key()
        record = ApiKey(name=name, role=role, prefix=key[:len(PREFIX) + 6], created_at=time.time(), collections=scope)
        try:
            with self._connect() as db:
                db.execute("INSERT INTO api_keys (name, role, hash, prefix, created_at, collections) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (record.name, record.role, hash_key(key), record.prefix,
                                                         record.created_at, _scope_text(scope)))
        except sqlite3.IntegrityError as exc:
            raise _taken(name) from exc
        return record, key

    def lookup(self, key: str) -> ApiKey | None:
        if not key.startswith(PREFIX):
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM api_keys WHERE hash = ?", (hash_key(key),)).fetchone()
            if row is None:
                return None
            record = _record(row)
            now = time.time()
            if record.active and (record.last_used_at or 0) < now - TOUCH_EVERY_S:
                try:
                    db.execute("UPDATE api_keys SET last_used_at = ? WHERE name = ?", (now, record.name))
                except sqlite3.OperationalError:  # busy past the timeout: the next request records it
                    pass
        return record

    def list(self) -> list[ApiKey]:
        with self._connect() as db:
            return [_record(row) for row in db.execute("SELECT * FROM api_keys ORDER BY created_at, name")]

    def revoke(self, name: str) -> ApiKey:
        with self._connect() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                       (time.time(), name))
            row = db.execute("SELECT * FROM api_keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        return _record(row)

    def register(self, name: str, role: str, collections, key_hash: str) -> None:
        with self._connect() as db:
            db.execute(_REGISTER_SQL, _register_args(name, role, collections, key_hash))


class PostgresKeyStore:
    """The key store in PostgreSQL: table ``api_keys`` (created with the stack's schema, version 2),
    through the process's capped pool (:class:`stack.pipeline.postgres.Database`).

    Every call is one short transaction on the server, so what one replica writes the next request
    of any other sees: no cache.  A duplicate name is refused by the primary key (``ON CONFLICT DO
    NOTHING``: of concurrent creates of one name exactly one wins, on any number of hosts)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, role: str, collections=None) -> tuple[ApiKey, str]:
        name, role = check_name(name), check_role(role)
        scope = check_scope(role, collections)
        key = new_key()
        record = ApiKey(name=name, role=role, prefix=key[:len(PREFIX) + 6], created_at=time.time(), collections=scope)
        with self.db.transaction() as tx:
            row = tx.execute("INSERT INTO api_keys (name, role, hash, prefix, created_at, collections) "
                             "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING name",
                             (record.name, record.role, hash_key(key), record.prefix, record.created_at,
                              _scope_text(scope))).fetchone()
        if row is None:
            raise _taken(name)
        return record, key

    def lookup(self, key: str) -> ApiKey | None:
        if not key.startswith(PREFIX):
            return None
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM api_keys WHERE hash = ?", (hash_key(key),)).fetchone()
            if row is None:
                return None
            record = _record(row)
            now = time.time()
            if record.active and (record.last_used_at or 0) < now - TOUCH_EVERY_S:
                # One replica writes it; one that finds the row locked (another touch, a revocation)
                # skips rather than waits, as SQLite's busy timeout does: the next request records it.
                tx.execute("UPDATE api_keys SET last_used_at = ? WHERE name IN (SELECT name FROM api_keys "
                           "WHERE name = ? AND revoked_at IS NULL AND coalesce(last_used_at, 0) < ? "
                           "FOR UPDATE SKIP LOCKED)", (now, record.name, now - TOUCH_EVERY_S))
        return record

    def list(self) -> list[ApiKey]:
        with self.db.transaction() as tx:
            rows = tx.execute('SELECT * FROM api_keys ORDER BY created_at, name COLLATE "C"').fetchall()
        return [_record(row) for row in rows]

    def revoke(self, name: str) -> ApiKey:
        with self.db.transaction() as tx:
            tx.execute("UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                       (time.time(), name))
            row = tx.execute("SELECT * FROM api_keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        return _record(row)

    def register(self, name: str, role: str, collections, key_hash: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(_REGISTER_SQL, _register_args(name, role, collections, key_hash))


def _record(row) -> ApiKey:
    """A stored row (sqlite3.Row or psycopg's dict row) as a record."""
    scope = row["collections"]
    return ApiKey(name=row["name"], role=row["role"], prefix=row["prefix"], created_at=row["created_at"],
                  last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
                  collections=tuple(json.loads(scope)) if scope else None)


def _taken(name: str) -> KeyRefused:
    return KeyRefused("key_exists", f"A key named {name!r} exists already (names stay taken after a "
                      "revocation, so that the audit log names one key).", "choose another name", status=409)


def _not_found(name: str) -> KeyRefused:
    return KeyRefused("key_not_found", f"No key named {name!r}.", "ragctl keys list", status=404)


def key_store(data_path: Path) -> KeyStore:
    """The SQLite key store under a project's data folder (shared by every API replica on its host).
    Which store a stack uses is stack.pipeline.backends.open_keys's choice (PostgreSQL with
    RAG_DATABASE_URL)."""
    return SqliteKeyStore(data_path / "keys.sqlite")
