"""One way to open the pipeline's SQLite files: WAL (readers never block the writer), a busy
timeout for concurrent writers, one transaction per ``with`` block, always closed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: Path, *, rows_as_dicts: bool = False) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=30)
    if rows_as_dicts:
        db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        with db:
            yield db
    finally:
        db.close()
