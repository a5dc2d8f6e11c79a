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

from stack.pipeline.sqlite import connect

STATUSES = ("queued", "parsing", "chunking", "embedding", "storing", "done", "failed", "cancelled")

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
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE INDEX IF NOT EXISTS documents_status ON documents (collection, status);
"""


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
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self):
        return connect(self.path, rows_as_dicts=True)

    def upsert(self, record: DocumentRecord) -> DocumentRecord:
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        data = record.to_dict()
        data["timings"] = json.dumps(record.timings)
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

    def delete(self, collection: str, document_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM documents WHERE collection = ? AND id = ?", (collection, document_id))


def _record(row: sqlite3.Row) -> DocumentRecord:
    data = dict(row)
    data["timings"] = json.loads(data["timings"] or "{}")
    return DocumentRecord(**data)
