"""The document catalog: what was ingested, from which file, with what outcome.

SQLite under the data folder.  One row per (collection, document id); the document id is the
SHA-256 of the file's bytes, so the same bytes are recognised whatever their name.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS documents_status ON documents (collection, status);
"""

_JSON_FIELDS = ("timings", "log")


@dataclass
class DocumentRecord:
    id: str
    collection: str
    file_name: str
    size: int
    status: str
    stored_path: str | None = None
    format: str | None = None
    parser: str | None = None
    chunks: int = 0
    error_code: str | None = None
    error: str | None = None
    embed_model: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    task_id: str | None = None
    progress: float = 0.0
    log: list[str] = field(default_factory=list)
    worker: str | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def note(self, line: str) -> None:
        """Add a line to the short stage log (the last 20 lines are kept)."""
        self.log = [*self.log, f"{time.strftime('%H:%M:%S')} {line}"][-20:]


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)
            self._add_missing_columns(db)
            db.execute("CREATE INDEX IF NOT EXISTS documents_task ON documents (task_id)")

    @staticmethod
    def _add_missing_columns(db) -> None:
        """Catalogs written by an older ragctl gain the newer columns (with their defaults)."""
        have = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
        wanted = {
            "task_id": "TEXT", "progress": "REAL NOT NULL DEFAULT 0", "log": "TEXT NOT NULL DEFAULT '[]'",
            "worker": "TEXT", "heartbeat_at": "REAL", "attempts": "INTEGER NOT NULL DEFAULT 0",
        }
        for column, kind in wanted.items():
            if column not in have:
                db.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")

    def _connect(self):
        return connect(self.path, rows_as_dicts=True)

    def upsert(self, record: DocumentRecord) -> DocumentRecord:
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        data = record.to_dict()
        for name in _JSON_FIELDS:
            data[name] = json.dumps(data[name], ensure_ascii=False)
        columns = ", ".join(data)
        placeholders = ", ".join(f":{name}" for name in data)
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO documents ({columns}) VALUES ({placeholders})", data)
        return record

    def get(self, collection: str, document_id: str) -> DocumentRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM documents WHERE collection = ? AND id = ?", (collection, document_id)
            ).fetchone()
        return _record(row) if row else None

    def find(self, collection: str, prefix: str) -> list[DocumentRecord]:
        """Documents whose id starts with ``prefix`` (users type short ids, as with git)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM documents WHERE collection = ? AND id LIKE ? ORDER BY created_at",
                (collection, prefix.lower() + "%"),
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
        with self._connect() as db:
            row = db.execute("SELECT * FROM documents WHERE task_id = ?", (task_id,)).fetchone()
        return _record(row) if row else None

    def stale(self, heartbeat_before: float) -> list[DocumentRecord]:
        """Documents in progress whose worker has not been heard from since ``heartbeat_before``."""
        marks = ", ".join("?" for _ in IN_PROGRESS)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT * FROM documents WHERE status IN ({marks}) AND COALESCE(heartbeat_at, updated_at) < ?",
                (*IN_PROGRESS, heartbeat_before),
            ).fetchall()
        return [_record(row) for row in rows]

    def touch(self, collection: str, document_id: str, worker: str | None = None) -> None:
        """A worker's heartbeat on the document it is working on."""
        with self._connect() as db:
            db.execute(
                "UPDATE documents SET heartbeat_at = ?, worker = COALESCE(?, worker) WHERE collection = ? AND id = ?",
                (time.time(), worker, collection, document_id),
            )

    def delete(self, collection: str, document_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, document_id))


def _record(row: sqlite3.Row) -> DocumentRecord:
    data = dict(row)
    for name in _JSON_FIELDS:
        data[name] = json.loads(data[name]) if data[name] else ({} if name == "timings" else [])
    return DocumentRecord(**data)
