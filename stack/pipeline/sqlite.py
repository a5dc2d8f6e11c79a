"""One way to open the pipeline's SQLite files: WAL (readers never block the writer), a busy
timeout for concurrent writers, one transaction per ``with`` block, always closed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: Path, *, rows_as_dicts: bool = False) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, timeout=30)
    if rows_as_dicts:
        db.row_factory = sqlite3.Row
    try:
        use_wal(db)
        with db:
            yield db
    finally:
        db.close()


def use_wal(db: sqlite3.Connection, attempts: int = 50) -> None:
    """Put the file in WAL mode, which it keeps.  Connections that open a new file at once (a
    worker's threads on a new collection's index) race to switch it, and the switch can fail with
    "database is locked" at once, without the busy timeout; one of them wins, so the others wait a
    moment and find it done."""
    for attempt in range(attempts):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
