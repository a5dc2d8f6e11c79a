"""The audit log: one JSON line per action that changes what the stack holds, and who did it.

Events: ``upload``, ``delete``, ``cancel``, ``retry``, ``restore``, ``key_create``, ``key_revoke``,
and ``question`` (ask, search, chat completions).  Each line has ``time`` (UTC, ISO 8601),
``event``, ``key`` (the key's name, never the key), ``role``, ``client`` (its address) and the
event's details (document id, file name, collection, key name…).  A question's text is written
only when ``RAG_AUDIT_QUESTIONS`` is on; otherwise only its length.

Where and how: ``<logs>/audit/audit-<host>-<pid>-<start>.jsonl``.  Several API replicas (containers
sharing ``logs/``) and processes (the CLI's ``restore``) write at once, so every process writes
its own file: no two writers ever share one, whatever the file system (a bind mount, NFS).  Within a
process a lock orders threads, and each line goes out in one ``write`` on an ``O_APPEND`` descriptor,
cut below 4 KB.  A process starts a new file when its own reaches ``RAG_AUDIT_MAX_MB``; whenever one
starts a file, files not written for ``RAG_AUDIT_RETENTION_DAYS`` are deleted.  :func:`read_events`
merges every file in time order (``ragctl audit``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVENTS = ("upload", "delete", "cancel", "retry", "restore", "key_create", "key_revoke", "question")
#: A line stays below this (bytes, newline included): long details are cut.
MAX_LINE = 4000
#: Longest text kept in one detail value.
MAX_VALUE = 500
FILE_GLOB = "audit-*.jsonl"
COMMON = ("time", "event", "key", "role", "client")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text)[:64] or "host"


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[:MAX_VALUE] + "…"
    if isinstance(value, (list, tuple)):
        return [_cut(item) for item in value[:50]]
    if isinstance(value, dict):
        return {str(k)[:64]: _cut(v) for k, v in list(value.items())[:50]}
    return value


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


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
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        self._path = self.folder / f"audit-{_safe(socket.gethostname())}-{pid}-{stamp}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pid = pid
        prune(self.folder, self.retention_days, keep=self._path)
        return self._fd

    def record(self, event: str, *, key: str | None, role: str | None, client: str | None,
               **details: Any) -> dict[str, Any]:
        """Append one line; returns what was written.  Never raises for a full disk or a bad folder:
        the action it records has happened, and the log says why it could not write (once per error)."""
        entry = {"time": now_iso(), "event": event, "key": key, "role": role, "client": client,
                 **{k: _cut(v) for k, v in details.items() if v is not None}}
        line = json.dumps(entry, ensure_ascii=False, default=str)
        while len(line.encode()) >= MAX_LINE:  # drop the biggest details first, and say which
            details = [k for k in entry if k not in COMMON and k != "cut"]
            if not details:
                break
            biggest = max(details, key=lambda k: len(json.dumps(entry[k], ensure_ascii=False, default=str)))
            entry["cut"] = [*entry.get("cut", []), biggest]
            del entry[biggest]
            line = json.dumps(entry, ensure_ascii=False, default=str)
        data = (line + "\n").encode()
        with self._lock:
            try:
                os.write(self._open(), data)
            except OSError as exc:
                import logging

                logging.getLogger("stack.audit").error("audit log not written (%s): %s", exc, line)
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


def record_local(settings, event: str, **details: Any) -> dict[str, Any]:
    """A line for an action taken on this machine by the CLI (``ragctl restore``): no key; the OS user."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = str(os.getuid())
    return record(settings, event, key=f"local:{user}", role="operator", client=f"local:{socket.gethostname()}",
                  **details)


def prune(folder: Path, retention_days: int, *, keep: Path | None = None) -> list[Path]:
    """Delete audit files not written for ``retention_days``; the ones deleted."""
    cutoff = time.time() - retention_days * 86400
    removed = []
    for path in folder.glob(FILE_GLOB):
        try:
            if path != keep and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another process pruned it first
            pass
    return removed


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``90s``, ``15m``, ``1h``, ``7d`` ago, or an ISO time (``2026-11-28T10:00``; UTC unless it says)."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a duration (90s, 15m, 1h, 7d) nor a time (2026-11-28T10:00)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut by a crash mid-write: skipped
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("time"), str):
                    yield entry
    except FileNotFoundError:  # pruned while we read
        return


def read_events(folder: Path, *, since: datetime | None = None, event: str | None = None) -> list[dict[str, Any]]:
    """Every process's lines under ``folder``, merged in time order, filtered by time and event."""
    entries = []
    for path in sorted(folder.glob(FILE_GLOB)) if folder.is_dir() else []:
        for entry in _lines(path):
            try:
                when = datetime.fromisoformat(entry["time"])
            except ValueError:
                continue
            if since is not None and when < since:
                continue
            if event is not None and entry.get("event") != event:
                continue
            entries.append((when, entry))
    entries.sort(key=lambda pair: pair[0])
    return [entry for _, entry in entries]
