"""Threads that open a new SQLite file at once all get it (a worker's threads on a new collection's
lexical index: CI saw "database is locked" from the switch to WAL, which skips the busy timeout)."""

from __future__ import annotations

import threading

from stack.pipeline.sqlite import connect


def test_threads_opening_a_new_file_at_once_all_write_to_it_in_wal_mode(tmp_path):
    errors: list[str] = []
    for round_ in range(60):
        path = tmp_path / f"index-{round_}.sqlite"
        barrier = threading.Barrier(6)

        def write(path=path, barrier=barrier):
            barrier.wait()
            try:
                with connect(path) as db:
                    db.execute("CREATE TABLE IF NOT EXISTS postings (term TEXT)")
                    db.execute("INSERT INTO postings VALUES ('봉화댐')")
            except Exception as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=write) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == 6 - len(errors)
    assert errors == []
