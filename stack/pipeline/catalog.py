"""The document catalog: what was ingested, from which file, with what outcome.

SQLite under the data folder, or PostgreSQL (``RAG_DATABASE_URL``).  One row per (collection, document id); the document id is the
SHA-256 of the file's bytes, so the same bytes are recognised whatever their name.

Every task id a document was ever given (its registration, a re-queue by the reaper, a retry, a
replace) is kept in ``task_ids``, in the order they were given, so that any of them resolves to
the document's current state for as long as the document exists (issue #15).  The newest one is
the document's current task, and it is also a fencing token: a write that carries an older task id
(a worker that was taken for dead and came back) is refused, so it can never undo the work of the
task that replaced it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.contract import DocumentRecord, RagError
from stack.names import IN_PROGRESS, DocumentStatus
from stack.pipeline.sqlite import connect

STATUSES = tuple(DocumentStatus)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT NOT NULL,
    collection TEXT NOT NULL,
    file_name TEXT NOT NULL,
    stored_path TEXT,
    format TEXT,
    parser TEXT,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error TEXT,
    embed_model TEXT,
    timings TEXT NOT NULL DEFAULT '{}',
    task_id TEXT,
    progress REAL NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '[]',
    worker TEXT,
    heartbeat_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS documents_status ON documents (collection, status);
CREATE TABLE IF NOT EXISTS task_ids (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    document_id TEXT NOT NULL,
    reason TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS task_ids_document ON task_ids (collection, document_id, seq);
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    description TEXT,
    state TEXT NOT NULL DEFAULT 'ready',
    created_at REAL NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0
);
"""

#: A collection's states in the ``collections`` table: ``ready``; ``deleting`` from the moment its
#: deletion starts until its last document row goes (a deletion a crash interrupted is finished by
#: running it again); ``deleted`` after (not listed: the row remembers that the name held data once).
READY, DELETING, DELETED = "ready", "deleting", "deleted"

#: The shortest task id prefix that is looked up (as for document ids).
MIN_PREFIX = 4

#: Record fields kept as JSON text, with the value of an empty one.
JSON_FIELDS = {"timings": {}, "log": [], "report": {}}



class _CatalogMoved(RagError):
    """Ends a swap's transaction without writing: the collection's documents changed under it."""


class DocumentCatalog(ABC):
    """The catalog's one contract, whatever holds it: SQLite (:class:`Catalog`, a file under
    ``data/``) or PostgreSQL (:class:`stack.pipeline.postgres.PostgresCatalog`, when
    ``RAG_DATABASE_URL`` is set); :func:`stack.pipeline.backends.open_catalog` chooses.

    Every method is written once, here, in the SQL both speak (``?`` placeholders, which the
    Postgres backend translates); a backend gives a connection (:meth:`_connect`: one transaction
    per ``with`` block, rows readable by column name), its two dialect statements, and
    :meth:`_lock_document`, which serialises the writes of one document (the fencing rule of
    :meth:`upsert` reads, then writes: two writers must not interleave)."""

    @abstractmethod
    def _connect(self) -> AbstractContextManager[Any]:
        """A transaction: ``db.execute(sql, args)`` returns a cursor (fetchone, fetchall, rowcount)."""

    @abstractmethod
    def _upsert_sql(self, columns: list[str]) -> str:
        """Insert or replace one whole document row; named parameters ``:column``."""

    #: Add a task id unless it is known; ``rowcount`` says whether it was added.
    _ADD_TASK_SQL = ""

    def _lock_document(self, db, collection: str, document_id: str) -> None:
        """Hold the document's write lock until the transaction ends (SQLite: the database's own)."""

    def upsert(self, record: DocumentRecord, *, reason: str | None = None) -> DocumentRecord:
        """Write ``record``.  A record carrying a task id is fenced by it (see the module docstring):

        - a task id not seen before is added to the document's task history (it becomes current);
        - a known task id that is no longer the document's newest is refused (superseded);
        - a known task id whose document row is gone is refused (the document was deleted).

        ``reason`` (for a new task id): why it was given — registered, re-queued, retry, replace.
        Returns the record; ``record.fenced`` says whether the write was refused."""
        return self.upsert_many([record], reason=reason)[0]

    def upsert_many(self, records: Sequence[DocumentRecord], *, reason: str | None = None) -> list[DocumentRecord]:
        """:meth:`upsert` of several records in one transaction (an embedding batch's documents end
        together: one commit, not one per document).  Each record is fenced on its own."""
        now = time.time()
        # One order for every writer: two transactions locking the same documents cannot deadlock.
        ordered = sorted(records, key=lambda r: (r.collection, r.id))
        with self._connect() as db:
            for record in ordered:
                self._write_record(db, record, reason, now)
        return list(records)

    def _write_record(self, db, record: DocumentRecord, reason: str | None, now: float) -> None:
        record.created_at = record.created_at or now
        record.updated_at = now
        data = record.to_dict()
        for name in JSON_FIELDS:
            data[name] = json.dumps(data[name], ensure_ascii=False)
        self._lock_document(db, record.collection, record.id)
        record.fenced = bool(record.task_id) and not self._may_write(db, record, reason, now)
        if not record.fenced:
            db.execute(self._upsert_sql(list(data)), data)

    def _may_write(self, db, record: DocumentRecord, reason: str | None, now: float) -> bool:
        added = db.execute(
            self._ADD_TASK_SQL, (record.task_id, record.collection, record.id, reason or "registered", now),
        ).rowcount
        if added:
            return True
        newest = db.execute(
            "SELECT task_id FROM task_ids WHERE collection = ? AND document_id = ? ORDER BY seq DESC LIMIT 1",
            (record.collection, record.id),
        ).fetchone()
        if newest is None or newest["task_id"] != record.task_id:
            return False  # superseded (or a task id of another document)
        exists = db.execute("SELECT 1 AS found FROM documents WHERE collection = ? AND id = ?",
                            (record.collection, record.id)).fetchone()
        return exists is not None

    def get(self, collection: str, document_id: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM documents WHERE collection = ? AND id = ?", (collection, document_id)
            ).fetchone()
        return _record(row) if row else None

    def find(self, collection: str, prefix: str) -> list[DocumentRecord]:
        """Documents whose id starts with ``prefix`` (users type short ids, as with git)."""
        escaped = _escape_like(prefix.lower())
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM documents WHERE collection = ? AND id LIKE ? ESCAPE '\\' ORDER BY created_at",
                (collection, escaped + "%"),
            ).fetchall()
        return [_record(row) for row in rows]

    def list(self, collection: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        query, args = "SELECT * FROM documents WHERE 1=1", []
        if collection is not None:
            query += " AND collection = ?"
            args.append(collection)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created_at", args).fetchall()
        return [_record(row) for row in rows]

    def by_task(self, task_id: str) -> DocumentRecord | None:
        """The document a task id was given to (any of its task ids, current or earlier), as it is now."""
        with self._connect() as db:
            row = db.execute(
                "SELECT d.* FROM task_ids t JOIN documents d ON d.collection = t.collection AND d.id = t.document_id "
                "WHERE t.task_id = ?", (task_id,)).fetchone()
            if row is None:  # a row written around the history (should not happen; cheap to allow)
                row = db.execute("SELECT * FROM documents WHERE task_id = ?", (task_id,)).fetchone()
        return _record(row) if row else None

    def find_tasks(self, prefix: str) -> list[TaskEntry]:
        """Task ids starting with ``prefix`` (at least MIN_PREFIX characters) whose document exists."""
        prefix = prefix.strip().lower()
        if len(prefix) < MIN_PREFIX:
            return []
        return self._tasks("WHERE t.task_id LIKE ? ESCAPE '\\'", (_escape_like(prefix) + "%",))

    def recent_tasks(self, limit: int = 20, collection: str | None = None) -> list[TaskEntry]:
        """The newest task ids first, each with its document as it is now."""
        where, args = ("WHERE t.collection = ?", (collection,)) if collection else ("", ())
        return self._tasks(where, args, limit)

    def task_ids(self, collection: str, document_id: str) -> list[str]:
        """Every task id a document was given, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT task_id FROM task_ids WHERE collection = ? AND document_id = ? ORDER BY seq",
                              (collection, document_id)).fetchall()
        return [row["task_id"] for row in rows]

    def _tasks(self, where: str, args: tuple, limit: int | None = None) -> list[TaskEntry]:
        query = ("SELECT t.task_id AS t_task_id, t.reason AS t_reason, t.created_at AS t_created_at, d.* "
                 "FROM task_ids t JOIN documents d ON d.collection = t.collection AND d.id = t.document_id "
                 f"{where} ORDER BY t.seq DESC" + (f" LIMIT {int(limit)}" if limit else ""))
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        entries = []
        for row in rows:
            data = dict(row)
            task_id, reason, created = data.pop("t_task_id"), data.pop("t_reason"), data.pop("t_created_at")
            entries.append(TaskEntry(task_id, reason or "registered", created, _record(data)))
        return entries

    def stale(self, heartbeat_before: float) -> list[DocumentRecord]:
        """Documents in progress whose worker has not been heard from since ``heartbeat_before``."""
        marks = ", ".join("?" for _ in IN_PROGRESS)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM documents WHERE status IN ({marks}) AND COALESCE(heartbeat_at, updated_at) < ?",
                (*IN_PROGRESS, heartbeat_before),
            ).fetchall()
        return [_record(row) for row in rows]

    def queued_before(self, updated_before: float) -> list[DocumentRecord]:
        """Documents queued (waiting for a worker) since before ``updated_before``."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM documents WHERE status = ? AND updated_at < ?",
                              (DocumentStatus.QUEUED, updated_before)).fetchall()
        return [_record(row) for row in rows]

    def touch(self, collection: str, document_id: str, worker: str | None = None, *,
              task_id: str | None = None) -> None:
        """A worker's heartbeat on the document it is working on (only while ``task_id``, when
        given, is still the document's task: a superseded worker does not speak for it)."""
        with self._connect() as db:
            db.execute(
                "UPDATE documents SET heartbeat_at = ?, worker = COALESCE(?, worker) WHERE collection = ? AND id = ? "
                "AND (CAST(? AS TEXT) IS NULL OR task_id = ?)",
                (time.time(), worker, collection, document_id, task_id, task_id),
            )

    # -- collections (issue #26) ------------------------------------------------------------
    def register_collection(self, name: str, description: str | None = None) -> bool:
        """Record a collection, or one that was deleted again (nothing when it is recorded and not
        deleted); True when this call added it."""
        with self._connect() as db:
            added = db.execute(
                "INSERT INTO collections (name, description, state, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET state = excluded.state, description = excluded.description, "
                "created_at = excluded.created_at WHERE collections.state = ?",
                (name, description, READY, time.time(), DELETED)).rowcount
        return bool(added)

    def collection_rows(self) -> dict[str, dict]:
        """name → {description, state, created_at} of every recorded collection."""
        with self._connect() as db:
            rows = db.execute("SELECT name, description, state, created_at FROM collections").fetchall()
        return {row["name"]: {k: row[k] for k in ("description", "state", "created_at")} for row in rows}

    def collection_state(self, name: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT state FROM collections WHERE name = ?", (name,)).fetchone()
        return row["state"] if row else None

    def mark_deleting(self, name: str) -> None:
        """The first step of a collection's deletion: from now on it is listed as ``deleting`` and takes
        no new documents, whatever happens to the steps after it."""
        with self._connect() as db:
            db.execute("INSERT INTO collections (name, description, state, created_at) VALUES (?, NULL, ?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET state = ?", (name, DELETING, time.time(), DELETING))

    def drop_collection(self, name: str) -> int:
        """The last step of a collection's deletion: its document rows go and its record says
        ``deleted``, in one transaction.  The task history stays (its ids answer 404, and fence any
        worker still holding one)."""
        with self._connect() as db:
            gone = db.execute("DELETE FROM documents WHERE collection = ?", (name,)).rowcount
            # Made again, it starts at its own name: its generations were dropped before this step.
            db.execute("UPDATE collections SET state = ?, description = NULL, generation = 0 WHERE name = ?",
                       (DELETED, name))
        return gone

    def generation(self, name: str) -> int:
        """Which generation of its index answers for a collection (0: the one under its own name)."""
        with self._connect() as db:
            row = db.execute("SELECT generation FROM collections WHERE name = ?", (name,)).fetchone()
        return int(row["generation"]) if row else 0

    def swap_generation(self, name: str, generation: int, rebuilt: Sequence[tuple[str, int, str]], *,
                        expected: Collection[str] | None = None) -> int | None:
        """Make ``generation`` the index that answers for ``name``, in one transaction with its documents'
        new chunk counts and model (``rebuilt``: document id, chunks, embedding model); the generation
        that answered until now, returned, is the caller's to drop.

        ``expected``: the ids of the documents the new index holds.  When the collection's done documents
        are others by the time of the swap (an ingest or a deletion landed since the caller last looked),
        nothing is written and None is returned: the caller catches up and swaps again."""
        now = time.time()
        try:
            with self._connect() as db:
                row = db.execute("SELECT generation FROM collections WHERE name = ?", (name,)).fetchone()
                previous = int(row["generation"]) if row else 0
                # The write first: it takes the write lock, so the documents read next stay as read until commit.
                db.execute("INSERT INTO collections (name, description, state, created_at, generation) "
                           "VALUES (?, NULL, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET generation = excluded.generation",
                           (name, READY, now, generation))
                if expected is not None:
                    done = {r["id"] for r in db.execute("SELECT id FROM documents WHERE collection = ? AND status = ?",
                                                         (name, DocumentStatus.DONE)).fetchall()}
                    if done != set(expected):
                        raise _CatalogMoved(f"the documents of {name} changed since the catch-up")
                for document_id, chunks, model in rebuilt:
                    db.execute("UPDATE documents SET chunks = ?, embed_model = ?, updated_at = ? "
                               "WHERE collection = ? AND id = ?", (chunks, model, now, name, document_id))
        except _CatalogMoved:
            return None  # rolled back by the transaction's end
        return previous

    def collection_stats(self) -> dict[str, dict]:
        """name → {documents, chunks, size, updated_at} of every collection that has documents."""
        with self._connect() as db:
            rows = db.execute("SELECT collection, count(*) AS documents, coalesce(sum(chunks), 0) AS chunks, "
                              "coalesce(sum(size), 0) AS size, max(updated_at) AS updated_at, "
                              "min(created_at) AS created_at FROM documents GROUP BY collection").fetchall()
        return {row["collection"]: {k: row[k] for k in ("documents", "chunks", "size", "updated_at", "created_at")}
                for row in rows}

    def holders_of(self, document_id: str) -> list[str]:
        """The collections that hold a document id (the same bytes may be in several)."""
        with self._connect() as db:
            rows = db.execute("SELECT collection FROM documents WHERE id = ?", (document_id,)).fetchall()
        return [row["collection"] for row in rows]

    def rename(self, collection: str, document_id: str, file_name: str) -> None:
        """Give a document another name (``ragctl sync``: a moved or renamed file), nothing else changed."""
        with self._connect() as db:
            self._lock_document(db, collection, document_id)
            db.execute("UPDATE documents SET file_name = ?, updated_at = ? WHERE collection = ? AND id = ?",
                       (file_name, time.time(), collection, document_id))

    def delete(self, collection: str, document_id: str) -> None:
        # The task history stays: its ids answer 404 (their document is gone), and a worker still
        # holding one of them can never write the document back (see upsert).
        with self._connect() as db:
            self._lock_document(db, collection, document_id)
            db.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, document_id))


class Catalog(DocumentCatalog):
    """The SQLite catalog, ``data/catalog.sqlite`` (embedded and local runtimes; backups read it)."""

    _ADD_TASK_SQL = ("INSERT OR IGNORE INTO task_ids (task_id, collection, document_id, reason, created_at) "
                     "VALUES (?, ?, ?, ?, ?)")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)
            self._add_missing_columns(db)
            db.execute("CREATE INDEX IF NOT EXISTS documents_task ON documents (task_id)")
            # A catalog written before task_ids existed: its current task ids become the history.
            db.execute("INSERT OR IGNORE INTO task_ids (task_id, collection, document_id, reason, created_at) "
                       "SELECT task_id, collection, id, 'registered', updated_at FROM documents "
                       "WHERE task_id IS NOT NULL ORDER BY updated_at")

    @staticmethod
    def _add_missing_columns(db) -> None:
        """Catalogs written by an older ragctl gain the newer columns (with their defaults)."""
        have = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
        wanted = {
            "task_id": "TEXT", "progress": "REAL NOT NULL DEFAULT 0", "log": "TEXT NOT NULL DEFAULT '[]'",
            "worker": "TEXT", "heartbeat_at": "REAL", "attempts": "INTEGER NOT NULL DEFAULT 0",
            "report": "TEXT NOT NULL DEFAULT '{}'",
        }
        for column, kind in wanted.items():
            if column not in have:
                db.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")
        if "generation" not in {row[1] for row in db.execute("PRAGMA table_info(collections)")}:
            db.execute("ALTER TABLE collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")

    def _connect(self):
        return connect(self.path, rows_as_dicts=True)

    def _upsert_sql(self, columns: list[str]) -> str:
        return (f"INSERT OR REPLACE INTO documents ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + name for name in columns)})")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class TaskEntry:
    """One task id a document was given, with the document as it is now."""

    task_id: str
    reason: str
    created_at: float
    record: DocumentRecord

    @property
    def current(self) -> bool:
        return self.record.task_id == self.task_id


def _record(row: sqlite3.Row | dict) -> DocumentRecord:
    data = dict(row)
    for name, empty in JSON_FIELDS.items():
        data[name] = json.loads(data[name]) if data.get(name) else type(empty)()
    return DocumentRecord(**data)
