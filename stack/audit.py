"""The audit log's writer: one JSON line per action that changes what the stack holds, and who did it.

The format (the line, the file names, the reader) is the contract's (``stack/contract.py``, "the audit
log"): the CLI reads it (``ragctl audit``) and records its own actions there.  This module is the
writer the API's processes keep open.

Events: ``stack.contract.AUDIT_EVENTS`` (``question`` for ask, search and chat completions).  A
question's text is written only when ``RAG_AUDIT_QUESTIONS`` is on; otherwise only its length.

Several API replicas (containers sharing ``logs/``) and processes (the CLI's ``restore``: ``stack.contract.write_audit_action``) write at once,
so every process writes its own file: no two writers ever share one, whatever the file system (a bind
mount, NFS).  Within a process a lock orders threads, and each line goes out in one ``write`` on an
``O_APPEND`` descriptor, cut below 4 KB.  A process starts a new file when its own reaches
``RAG_AUDIT_MAX_MB``; whenever one starts a file, files not written for ``RAG_AUDIT_RETENTION_DAYS``
are deleted.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from stack.contract import AUDIT_FILE_GLOB, audit_entry, audit_file_name


class AuditLog:
    """This process's audit writer for one folder (get it with :func:`audit_log`)."""

    def __init__(self, folder: Path, *, max_bytes: int = 20 * 1024 * 1024, retention_days: int = 90) -> None:
        self.folder, self.max_bytes, self.retention_days = folder, max_bytes, retention_days
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._pid = -1

    @property
    def path(self) -> Path | None:
        return self._path

    def _open(self) -> int:
        """The descriptor of this process's current file: a new one after a fork, or when full."""
        pid = os.getpid()
        if self._fd is not None and self._pid == pid:
            if os.fstat(self._fd).st_size < self.max_bytes:
                return self._fd
            os.close(self._fd)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._path = self.folder / audit_file_name()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pid = pid
        prune(self.folder, self.retention_days, keep=self._path)
        return self._fd

    def record(self, event: str, *, key: str | None, role: str | None, client: str | None,
               **details: Any) -> dict[str, Any]:
        """Append one line; returns what was written.  Never raises for a full disk or a bad folder:
        the action it records has happened, and the log says why it could not write (once per error)."""
        entry, line = audit_entry(event, key=key, role=role, client=client, **details)
        with self._lock:
            try:
                os.write(self._open(), line)
            except OSError as exc:
                import logging

                logging.getLogger("stack.audit").error("audit log not written (%s): %s", exc, line.decode().rstrip())
        return entry


_LOGS: dict[Path, AuditLog] = {}
_LOGS_LOCK = threading.Lock()


def audit_log(settings) -> AuditLog:
    """This process's writer for the project's ``logs/audit`` (one per folder)."""
    folder = (settings.logs_path / "audit").resolve()
    with _LOGS_LOCK:
        log = _LOGS.get(folder)
        if log is None:
            log = _LOGS[folder] = AuditLog(folder, max_bytes=settings.audit_max_mb * 1024 * 1024,
                                           retention_days=settings.audit_retention_days)
        return log


def record(settings, event: str, *, key: str | None, role: str | None, client: str | None,
           **details: Any) -> dict[str, Any]:
    return audit_log(settings).record(event, key=key, role=role, client=client, **details)


def prune(folder: Path, retention_days: int, *, keep: Path | None = None) -> list[Path]:
    """Delete audit files not written for ``retention_days``; the ones deleted."""
    cutoff = time.time() - retention_days * 86400
    removed = []
    for path in folder.glob(AUDIT_FILE_GLOB):
        try:
            if path != keep and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another process pruned it first
            pass
    return removed
