"""``ragctl sync DIR``: keep a collection the same as a folder (the library is ragctl/sync.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ragctl.cli.context import CollectionOption, JsonOption, YesOption, open_backend, project_root
from ragctl.output import EXIT_ERROR, confirm, console, err_console, fail, print_json
from ragctl.sync import parse_interval
from stack.contract import ParseReport, RagError, count_lost_parts, lost_parts_note

if TYPE_CHECKING:
    from ragctl.backends import Backend


#: What ends ``sync --watch`` instead of another try: the key was revoked or may not write here.
ENDS_A_WATCH = {"unauthorized", "forbidden"}


def _wait(seconds: float) -> bool:
    """Sleep until the next pass; False when Ctrl-C asked to stop."""
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        err_console.print("Stopped.")
        return False
    return True


def target_for(backend: Backend, collection: str):
    """The collection as ragctl/sync.py's SyncTarget, through a backend (the running stack's API or the
    embedded pipeline): each file is ingested under its path in the folder, and waited for."""
    from ragctl.sync import SyncTarget

    def ingest(items):
        return backend.ingest_files([path for path, _ in items], collection=collection, names=dict(items))

    return SyncTarget(records=lambda: backend.documents(collection=collection), ingest=ingest,
                      rename=lambda doc, name: backend.rename_document(doc, name, collection=collection),
                      delete=lambda doc: backend.delete_document(doc, collection=collection))


def _summary(plan, *, dry_run: bool) -> None:
    from rich.table import Table

    from ragctl.views import cell

    counts = plan.counts()
    table = Table(box=None, pad_edge=False, title=None)
    for column in ("action", "path", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    style = {"done": "green", "failed": "red", "kept": "yellow", "skipped": "cyan"}
    for step in plan.steps:
        if step.action == "unchanged":
            continue
        detail = (f"from {step.old_path}" if step.old_path else "") or (step.error or {}).get("message") or \
            step.reason or ""
        if step.report and ParseReport.from_dict(step.report):
            detail = (detail + "; " if detail else "") + "not read: " + ParseReport.from_dict(step.report).summary()
        outcome = "planned" if dry_run else (step.outcome or "")
        table.add_row(cell(step.action), cell(step.path), cell(outcome, style.get(outcome, "")), cell(detail))
    if table.row_count:
        console.print(table)
    words = ", ".join(f"{n} {name}" for name, n in counts.items() if n or name in ("new", "unchanged"))
    console.print(f"{'Plan' if dry_run else 'Synced'}: {words} ({plan.seconds:.1f} s).", markup=False,
                  highlight=False)
    lost = lost_parts_note(step.report for step in plan.steps)
    if lost and not dry_run:
        console.print(lost, markup=False, highlight=False)
    gone = counts["gone"]
    if gone and not dry_run and any(s.outcome == "kept" for s in plan.steps):
        console.print(f"{gone} documents are no longer in the folder and were kept; remove them with "
                      "ragctl sync DIR --delete", markup=False, highlight=False)


def sync(
    folder: Annotated[Path, typer.Argument(help="The folder to follow.", show_default=False)],
    collection: CollectionOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Also delete documents whose files are gone from "
                                         "the folder (asks first; --yes).")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Keep syncing until Ctrl-C (polling, with the stat "
                                        "cache: an unchanged tree reads no file).")] = False,
    interval: Annotated[str, typer.Option("--interval", help="With --watch: time between passes (30s, 5m).")]
    = "30s",
    include: Annotated[list[str] | None, typer.Option("--include", metavar="GLOB", show_default=False,
                                                      help="Also take files matching GLOB (as ingest).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", metavar="GLOB", show_default=False,
                                                      help="Leave out files matching GLOB (as ingest).")] = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Make a collection hold what a folder holds: new files ingested, changed ones re-ingested (the old
    version answers until the new one is stored), moved ones renamed, gone ones listed (--delete removes
    them). Exit 1 when any file failed."""
    from ragctl import sync as library
    from ragctl.errors import UsageError

    root = project_root()
    seconds = parse_interval(interval) if watch else 0.0
    if not folder.is_dir():
        fail(UsageError(f"{folder} is not a folder.", "ragctl sync FOLDER --collection NAME", code="not_found"),
             as_json=as_json)
    if watch and delete and not yes:
        fail(UsageError("--watch with --delete deletes documents without asking on every pass: add --yes.",
                        f"ragctl sync {folder} --watch --delete --yes"), as_json=as_json)
    backend = open_backend()
    from stack.settings import load_settings

    name = collection or load_settings(root).collection
    from stack.contract import validate_collection_name

    try:
        validate_collection_name(name)
    except RagError as exc:
        fail(exc, as_json=as_json)
    target = target_for(backend, name)
    cache = library.StatCache.for_folder(load_settings(root).data_path, folder, name)
    options = {"include": include or (), "exclude": exclude or ()}
    if delete and not dry_run and not yes:
        plan = library.sync_once(folder, target, cache, delete=False, dry_run=True, **options)
        gone = plan.of(library.GONE)
        if gone:
            confirm(f"Delete {len(gone)} documents whose files are gone from {folder} "
                    f"({', '.join(s.path for s in gone[:3])}{'…' if len(gone) > 3 else ''})?", yes=yes,
                    as_json=as_json)
    while True:
        try:
            plan = library.sync_once(folder, target, cache, delete=delete, dry_run=dry_run, **options)
        except RagError as exc:
            # Watching, a pass the stack could not take (its API restarting, Redis down) is tried again
            # at the next interval, as a service's restart would; a key refused is for good.
            if not watch or exc.code in ENDS_A_WATCH:
                raise
            err_console.print(f"This pass failed: {exc.message} Trying again in {interval}.", markup=False,
                              highlight=False)
            if not _wait(seconds):
                return
            continue
        if as_json:
            print_json({"folder": str(folder), "collection": name, "mode": backend.mode, "dry_run": dry_run,
                        "summary": plan.counts(), "seconds": plan.seconds,
                        "lost_parts": count_lost_parts(s.report for s in plan.steps),
                        "steps": [s.to_dict() for s in plan.steps if s.action != library.UNCHANGED]})
        else:
            _summary(plan, dry_run=dry_run)
        if not watch:
            break
        if not _wait(seconds):
            return
    if library.failed(plan):
        raise typer.Exit(EXIT_ERROR)
