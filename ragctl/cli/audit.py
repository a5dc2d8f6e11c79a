"""``ragctl audit``: the audit log (its format: stack.contract) of every API replica and of the CLI,
merged in time order."""

from __future__ import annotations

from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, project_root
from ragctl.errors import ConfigError, UsageError
from ragctl.output import console, emit


def audit(
    since: Annotated[str | None, typer.Option("--since", help="Only lines from this long ago (90s, 15m, 1h, 7d) "
                                              "or this time on (2026-11-28T10:00, UTC unless it says).")] = None,
    event: Annotated[str | None, typer.Option("--event", "-e", help="Only this event: upload, rename, delete, "
                                              "cancel, retry, restore, key_create, key_revoke, collection_create, "
                                              "collection_delete, collection_reindex, question.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Who uploaded, deleted, cancelled, retried, restored, made or revoked keys (and asked), and when."""
    from ragctl.views import line
    from stack.contract import AUDIT_COMMON, AUDIT_EVENTS, parse_since, read_audit_events
    from stack.settings import load_settings

    if event is not None and event not in AUDIT_EVENTS:
        raise UsageError(f"Unknown event {event!r}: the events are {', '.join(AUDIT_EVENTS)}.", "ragctl audit --help")
    try:
        start = parse_since(since) if since else None
    except ValueError as exc:
        raise UsageError(str(exc), "ragctl audit --since 1h") from exc
    root = project_root()
    folder = load_settings(root).logs_path / "audit"
    try:
        entries = read_audit_events(folder, since=start, event=event)
    except PermissionError as exc:
        raise ConfigError(f"An audit file is not readable by this user: {exc}",
                          f"run ragctl audit as the user the stack's services run as (files under {folder})",
                          code="audit_unreadable") from exc

    def human() -> None:
        if not entries:
            console.print(f"No audit lines{' of ' + event if event else ''}{' since ' + since if since else ''} "
                          f"(under {folder}).", markup=False)
            return
        for entry in entries:
            details = " ".join(f"{k}={v}" for k, v in entry.items() if k not in AUDIT_COMMON)
            console.print(line((entry["time"], "dim"), " ", (entry.get("event"), "bold"), " ",
                               (f"{entry.get('key')} ({entry.get('role')}) from {entry.get('client')}", ""), " ",
                               (details, "")), soft_wrap=True, highlight=False)

    emit(entries, human, as_json=as_json)
