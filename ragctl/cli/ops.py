"""Operations: ``ragctl health``, ``doctor``, ``backup``, ``restore``, ``support-bundle`` and
``migrate`` and ``upgrade``.  Thin layers over ``ragctl.ops``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ragctl.cli import gate as gate_cli
from ragctl.cli.context import JsonOption, YesOption, current_runtime, project_root
from ragctl.output import EXIT_UNHEALTHY, confirm, console, emit, err_console, print_json
from ragctl.runtimes import kind_of
from ragctl.views import checks_table, line


def health(
    deep: Annotated[bool, typer.Option("--deep", help="Also push a tiny canary document end to end, find it, "
                                       "and remove it.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check every part of the running stack (local or Docker).  Exit 0 healthy, 3 unhealthy."""
    from rich.markup import escape

    from ragctl.ops.health import collect

    runtime = current_runtime()
    if as_json or not console.is_terminal:
        report = collect(runtime.root, deep=deep, runtime=runtime)
    else:
        with console.status("checking the stack …"):
            report = collect(runtime.root, deep=deep, runtime=runtime)
    if as_json:
        print_json(report.to_dict())
    else:
        table = checks_table(report.checks)
        table.title = escape(f"{report.project} ({report.runtime}, {report.api_url})")
        console.print(table)
        console.print("[green]healthy[/]" if report.healthy else
                      "[red]unhealthy[/]   Next: ragctl logs SERVICE   (for the failing parts)")
    if not report.healthy:
        raise typer.Exit(EXIT_UNHEALTHY)


def backup(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Archive to write (default: "
                                             "backups/<project>-<UTC time>.tar.gz in the project).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the deployment: uploads, catalog, vectors, Redis, extracted text and configuration.

    A running stack is paused first (uploads get 503, workers finish their document and wait)."""
    from ragctl.ops.backup import backup as make_backup

    runtime = current_runtime()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = out or runtime.root / "backups" / f"{runtime.project_config.name}-{stamp}.tar.gz"
    manifest = make_backup(runtime.root, target, progress=None if as_json else _say, runtime=runtime)
    summary = {"file": str(target), "size_bytes": target.stat().st_size, "files": len(manifest.files),
               "documents": {c: len(ids) for c, ids in manifest.documents.items()}, "vectors": manifest.vectors,
               "embed_model": manifest.embed_model, "runtime": manifest.runtime}

    def human() -> None:
        console.print(f"Backed up {summary['files']} files to {target} ({summary['size_bytes'] / 1e6:.1f} MB).",
                      markup=False)
        counts = ", ".join(f"{name}: {n} documents, {summary['vectors'].get(name, 0)} vectors"
                           for name, n in summary["documents"].items()) or "no documents"
        console.print(f"Collections: {counts}.", markup=False)
        console.print(f"Next, to check it: ragctl restore {target} --verify-only", markup=False)

    emit(summary, human, as_json=as_json)


def restore(
    file: Annotated[Path, typer.Argument(help="An archive made by ragctl backup.")],
    verify_only: Annotated[bool, typer.Option("--verify-only", help="Check checksums and compatibility; "
                                              "change nothing.")] = False,
    eval_file: gate_cli.EvalOption = None,
    max_drop: gate_cli.MaxDropOption = None,
    no_eval: gate_cli.NoEvalOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before replacing the data.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into this project (replaces its data; asks first), then verify it.

    With --eval (or [eval] file) the set is asked before and after; the data that answered before is
    first backed up to backups/ and put back when the answers got worse (exit 1).  Where nothing answers
    yet (no project, no documents, a stack that is down) there is nothing to compare: the restore is
    made ungated and says so."""
    from ragctl.ops.backup import check_compatible, read_archive

    root = project_root(required=False)  # a backup brings its configuration
    verification = read_archive(file)
    problems = verification.problems + check_compatible(root, verification.manifest)
    manifest = verification.manifest
    if verify_only or problems:
        result = {"file": str(file), "valid": not problems, "problems": problems, "files": len(manifest.files),
                  "documents": {c: len(ids) for c, ids in manifest.documents.items()},
                  "vectors": manifest.vectors, "embed_model": manifest.embed_model, "created": manifest.created}

        def report() -> None:
            for problem in problems:
                err_console.print(f"problem: {problem}", markup=False)
            console.print(f"{'valid' if not problems else 'not restorable'}: {file} ({len(manifest.files)} files, "
                          f"made {manifest.created} by ragctl {manifest.ragctl_version}).", markup=False)

        emit(result, report, as_json=as_json)
        if problems:
            raise typer.Exit(1)
        return
    gate, questions = _restore_gate(root, eval_file, max_drop, no_eval)
    confirm(f"Replace the data of {root} with {file} (made {manifest.created})"
            + (f", gated on {gate.file}" if gate.file else "") + "?", yes=yes, as_json=as_json)
    outcome = _gated_restore(root, file, gate, questions, as_json=as_json)
    result = outcome.restored

    def human() -> None:
        if outcome.skipped:
            err_console.print(f"The gate did not run: {outcome.skipped}, nothing answered to compare with.",
                              markup=False)
        if outcome.verdict:
            gate_cli.print_verdict(outcome.verdict)
        if not outcome.applied:
            gate_cli.refused(f"Not restored: the answers got worse; what answered before was put back from "
                             f"{outcome.safety}.", outcome.verdict)
            return
        if result["verified"]:
            console.print(f"Restored and verified {file}: documents, vectors and checksums match"
                          f"{gate_cli.held(outcome.verdict)}.", markup=False)
            if outcome.safety:
                console.print(f"What answered before is kept in {outcome.safety}.", markup=False)
        for problem in result["problems"]:
            err_console.print(f"problem: {problem}", markup=False)

    emit({k: v for k, v in result.items() if k != "manifest"} | {"file": str(file)} | outcome.to_dict(), human,
         as_json=as_json)
    if not outcome.applied or not result["verified"]:
        raise typer.Exit(1)


def _restore_gate(root: Path, eval_file: Path | None, max_drop: float | None, no_eval: bool):
    """The gate's settings and questions (``gate_cli.resolve``) of restore and migrate; a folder without
    ragctl.toml has no [eval] to read."""
    from ragctl.ops.gate import DEFAULT_MAX_DROP, GateSettings
    from ragctl.project import CONFIG_NAME

    if (root / CONFIG_NAME).is_file():
        return gate_cli.resolve(root, eval_file, max_drop, no_eval)
    if eval_file is None or no_eval:
        return GateSettings(None, DEFAULT_MAX_DROP, "none"), None
    from ragctl.cli.eval import load_questions_or_fail

    gate = GateSettings(eval_file, DEFAULT_MAX_DROP if max_drop is None else max_drop, "--eval")
    return gate, load_questions_or_fail(eval_file)


def _gated_restore(root: Path, file: Path, gate, questions, *, as_json: bool):
    """ragctl.ops.gate.gated_restore with the CLI's progress bar and eval runs; the runs are stored again
    afterwards (the restore, or putting back what answered before, replaced data/eval/ under them)."""
    from ragctl.cli.context import open_backend
    from ragctl.cli.eval import _runs_folder
    from ragctl.ops.eval import save_run
    from ragctl.ops.gate import gated_restore

    ask = gate_cli.measure(gate.file, questions, as_json=as_json) if gate.file else None
    safety = root / "backups" / f"before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
    outcome = gated_restore(root, file, measure=ask, open_reading=open_backend, safety=safety,
                            max_drop=gate.max_drop, progress=None if as_json else _say)
    for run in outcome.runs:
        save_run(_runs_folder(), run)
    return outcome


def doctor(
    fix: Annotated[bool, typer.Option("--fix", help="Offer the safe fixes (start or restart a service) as a "
                                      "numbered plan, and apply them after confirmation.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply the plan without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Find what is wrong and say why and what to run (the guide's troubleshooting, automated).

    Exit 0 when no check fails, 3 otherwise."""
    from contextlib import nullcontext

    from rich.markup import escape

    from ragctl.ops.doctor import diagnose, plan
    from ragctl.ops.doctor import fix as apply_fixes

    runtime = current_runtime()
    findings = diagnose(runtime.root, runtime=runtime)
    steps = plan(findings) if fix else []
    applied: list[str] = []
    waited = []
    if steps:
        if not as_json:
            console.print(checks_table(findings, causes=True))
            console.print("[bold]Plan[/] (safe steps only):")
            for number, step in enumerate(steps, 1):
                console.print(line(f"  {number}. {step.hint or ''}   ",
                                   (f"({step.name}: {step.cause or ''})", "dim")))
        confirm(f"Apply these {len(steps)} steps?", yes=yes, as_json=as_json)
        spinner = console.status("applying the fixes …") if console.is_terminal and not as_json else None

        def waiting(what: str, seconds: float) -> None:
            if spinner is not None:
                spinner.update(escape(f"waiting for {what} ({seconds:.0f} s) …"))

        def rediagnose():
            fresh = current_runtime()
            return diagnose(fresh.root, runtime=fresh)

        with spinner or nullcontext():
            result = apply_fixes(runtime, steps, rediagnose=rediagnose, on_wait=waiting)
        applied, waited, findings = result.applied, result.waited, result.findings
    failed = [f for f in findings if f.status == "fail"]
    late = [w for w in waited if not w.ready]

    def human() -> None:
        if applied:
            console.print("Applied: " + "; ".join(applied) + ".", markup=False)
        for wait in waited:
            console.print(("  waited for " if wait.ready else "  gave up waiting for ") + wait.describe(),
                          markup=False, style=None if wait.ready else "yellow")
        if applied:
            console.print("After the fixes:", markup=False)
        if not steps or applied:
            general = [f for f in findings if f.group != "security"]
            secure = [f for f in findings if f.group == "security"]
            console.print(checks_table(general, causes=True))
            if secure:
                console.print("[bold]Security[/]")
                console.print(checks_table(secure, causes=True))
        if failed:
            manual = [f for f in failed if not f.action]
            nxt = ("  Next: ragctl doctor --fix   (safe steps: start or restart services)"
                   if any(f.action for f in failed) and not fix else f"  Next: {manual[0].hint}" if manual else
                   f"  Next: ragctl logs {late[0].service or 'SERVICE'}   (then ragctl doctor again)" if late else "")
            console.print(f"[red]{len(failed)} checks fail.[/]{escape(nxt)}")
        else:
            console.print("[green]No check fails.[/]")

    emit({"project": str(runtime.root), "ok": not failed, "findings": [f.to_dict() for f in findings],
          "security": {"ok": not [f for f in failed if f.group == "security"],
                       "checks": [f.name for f in findings if f.group == "security"]},
          "applied": applied, "waited": [w.to_dict() for w in waited]}, human, as_json=as_json)
    if failed:
        raise typer.Exit(EXIT_UNHEALTHY)


def support_bundle(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Tarball to write (default: "
                                             "ragctl-support-<UTC time>.tar.gz here).")] = None,
    as_json: JsonOption = False,
) -> None:
    """A tarball for whoever helps you: versions, configuration, ps, health, doctor and recent logs,
    with secrets redacted."""
    from ragctl.ops.support import make_support_bundle

    runtime = current_runtime()
    target = out or Path.cwd() / f"ragctl-support-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
    result = make_support_bundle(runtime.root, target, runtime=runtime)
    emit(result, lambda: console.print(f"Wrote {target} ({len(result['files'])} files, secrets redacted).  Read it "
                                       f"before you send it: tar -tzf {target}", markup=False), as_json=as_json)


def migrate(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every step (risky ones marked); change "
                                          "nothing.")] = False,
    container: Annotated[list[str] | None, typer.Option("--container", help="The legacy container (repeat "
                                                        "for several); default: those mounting ./data.")] = None,
    finalize: Annotated[bool, typer.Option("--finalize", help="Remove the stopped legacy container(s).")] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="Back to the old layout: remove the new stack, "
                                           "restore data/, start the legacy container.")] = False,
    eval_file: gate_cli.EvalOption = None,
    max_drop: gate_cli.MaxDropOption = None,
    no_eval: gate_cli.NoEvalOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move the guide's single-container layout (data/ and logs/ on the host) to the Compose stack.

    Resumable: run it again after an interruption.  With --eval (or [eval] file) the set is asked of the
    old layout's data (read in-process, once it is stopped and backed up) and of the new stack; the
    migration is rolled back when the answers got worse (exit 1).  See docs/operations.md."""
    from rich.markup import escape

    from ragctl.ops import migrate as migration

    root = project_root(required=False)  # the guide's layout has no ragctl.toml yet
    if finalize or rollback:
        confirm("Remove the legacy container(s)?" if finalize else
                "Remove the new stack (and its volumes) and go back to the old layout?", yes=yes, as_json=as_json)
        ledger = migration.finalize(root) if finalize else migration.rollback(root, say=None if as_json else _say)
        emit(ledger, lambda: console.print(f"Migration {ledger['state'].replace('_', ' ')}."), as_json=as_json)
        return
    containers = migration.find_legacy_containers(root, container)
    steps = migration.plan(root, containers)
    if not as_json:
        for number, step in enumerate(steps, 1):
            mark = "[green]done[/]" if step.done else "[red]RISKY[/]" if step.risky else "     "
            console.print(f"{number}. {mark}", line(f"{step.name:<10} {step.description}"))
            if step.risky and not step.done:
                console.print(line("           ", (migration.RISKY[step.name], "dim")))
    if dry_run:
        if as_json:
            print_json({"project": str(root), "dry_run": True, "legacy": [c.name for c in containers],
                        "steps": [s.to_dict() for s in steps]})
        return
    gate, questions = _restore_gate(root, eval_file, max_drop, no_eval)
    confirm("Run the migration (risky steps included)" + (f", gated on {gate.file}" if gate.file else "") + "?",
            yes=yes, as_json=as_json)
    ledger = _gated_migrate(root, container, gate, questions, as_json=as_json)
    shown = {k: v for k, v in ledger.items() if k not in ("eval_before", "eval_after")}
    refused = ledger["state"] == "rolled_back"

    def human() -> None:
        if ledger.get("gate_skipped"):
            err_console.print(f"The gate did not run: {ledger['gate_skipped']}.", markup=False)
        if ledger.get("gate"):
            gate_cli.print_verdict(ledger["gate"])
        if refused:
            gate_cli.refused("Rolled back: the stack answered worse than the old layout; the legacy container(s) "
                             f"{', '.join(ledger['legacy']) or '-'} run again on the data of before.", ledger["gate"])
            return
        console.print(f"[green]Migrated.[/] Vectors before and after: {escape(str(ledger['steps']['verify']['vectors']))}"
                      f"{escape(gate_cli.held(ledger.get('gate')))}.  The legacy container(s) "
                      f"{escape(', '.join(ledger['legacy']) or '-')} are stopped, not removed.")
        console.print("Next: ragctl migrate --finalize   (or ragctl migrate --rollback)")

    emit(shown, human, as_json=as_json)
    if refused:
        raise typer.Exit(1)


def _gated_migrate(root: Path, container: list[str] | None, gate, questions, *, as_json: bool) -> dict:
    """ragctl.ops.migrate.migrate with the CLI's gate: the set asked of the old layout in this process and of
    the stack through its API; the runs are stored again at the end (the restore into the stack, or the
    rollback, replaced data/ under them)."""
    from ragctl.cli.context import open_backend, open_embedded
    from ragctl.cli.eval import _runs_folder
    from ragctl.ops import migrate as migration
    from ragctl.ops.eval import save_run

    checked = None
    if gate.file:
        checked = migration.MigrationGate(gate_cli.measure(gate.file, questions, as_json=as_json),
                                          open_before=open_embedded, open_after=open_backend, max_drop=gate.max_drop)
    ledger = migration.migrate(root, container_names=container, say=None if as_json else _say, gate=checked)
    for key in ("eval_before", "eval_after"):
        if ledger.get(key):
            save_run(_runs_folder(), ledger[key])
    return ledger


def upgrade(
    replace: Annotated[bool, typer.Option("--replace", help="Empty ragctl's tables in the stack's PostgreSQL first "
                                          "(they hold state from an earlier upgrade).")] = False,
    eval_file: gate_cli.EvalOption = None,
    max_drop: gate_cli.MaxDropOption = None,
    no_eval: gate_cli.NoEvalOption = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move a Compose stack's SQLite state (catalog, postings, text, uploads, keys) into its PostgreSQL.

    Stops the stack for the move (checked, one transaction), starts it on PostgreSQL and checks the
    document ids; on any failure it goes back to the SQLite files, which it only reads.  With --eval (or
    [eval] file) the set is asked before and once the stack runs on PostgreSQL; the upgrade is rolled back
    the same way when the answers got worse (exit 1)."""
    from ragctl.cli.context import open_backend
    from ragctl.ops.gate import gated_upgrade
    from ragctl.runtime.capabilities import Upgradable, require

    runtime = require(current_runtime(), Upgradable, "move its state into PostgreSQL")
    gate, questions = gate_cli.resolve(runtime.root, eval_file, max_drop, no_eval)
    if kind_of(runtime.kind).has_services and not runtime.uses_postgres:
        confirm(f"Stop the {runtime.kind} stack of {runtime.root}, move its state into PostgreSQL and start it "
                "again" + (f", gated on {gate.file}" if gate.file else "") + "?", yes=yes, as_json=as_json)
    ask = gate_cli.measure(gate.file, questions, as_json=as_json) if gate.file else None
    outcome = gated_upgrade(runtime, measure=ask, open_reading=open_backend, max_drop=gate.max_drop, replace=replace,
                            progress=None if as_json else _say)
    result = outcome.result

    def human() -> None:
        if outcome.skipped and gate.file:
            err_console.print(f"The gate did not run: {outcome.skipped}.", markup=False)
        if outcome.verdict:
            gate_cli.print_verdict(outcome.verdict)
        if not outcome.applied:
            gate_cli.refused("Upgrade rolled back: the stack answered worse on PostgreSQL; it runs on its SQLite "
                             "files again (nothing lost).", outcome.verdict)
            return
        if not result["upgraded"]:
            console.print(f"Nothing to upgrade: {result['reason']}.", markup=False)
            return
        move = result["move"]
        console.print(f"Upgraded: {result['documents']} documents in {len(result['collections'])} collection(s), "
                      f"{move['task_ids']} task ids and {move['keys']} API keys moved into PostgreSQL and checked "
                      f"({result['seconds']:.0f} s){gate_cli.held(outcome.verdict)}.", markup=False)
        console.print(f"The stack runs on PostgreSQL{'' if result['running'] else ' (stopped again, as it was)'}; the "
                      f"SQLite files in {runtime.root / 'data'} were only read: keep them until you have a backup "
                      "(ragctl backup).", markup=False)

    emit(outcome.to_dict(), human, as_json=as_json)
    if not outcome.applied:
        raise typer.Exit(1)


def _say(text: str) -> None:
    err_console.print(f"{text} …", style="dim", markup=False, highlight=False)
