"""Operations: ``ragctl health``, ``doctor``, ``backup`` and ``restore``.  Thin layers over
ragctl.health, ragctl.doctor and ragctl.backup."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ragctl.output import EXIT_UNHEALTHY, RagctlError, confirm, console, err_console, print_json

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def register(app: typer.Typer) -> None:
    @app.command()
    def health(
        deep: Annotated[bool, typer.Option("--deep", help="Also push a tiny canary document end to end, find it, "
                                           "and remove it.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Check every part of the running stack (local or Docker).  Exit 0 healthy, 3 unhealthy."""
        from rich.table import Table

        from ragctl.cli import _root
        from ragctl.commands.docker import fail_operation
        from ragctl.health import collect

        root = _root()
        try:
            if as_json or not console.is_terminal:
                report = collect(root, deep=deep)
            else:
                with console.status("checking the stack …"):
                    report = collect(root, deep=deep)
        except RagctlError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json(report.to_dict())
        else:
            table = Table(box=None, pad_edge=False, title=f"{report.project} ({report.runtime}, {report.api_url})")
            for column in ("check", "", "detail"):
                table.add_column(column)
            for check in report.checks:
                table.add_row(check.name, _MARK[check.status], check.detail)
            console.print(table)
            console.print("[green]healthy[/]" if report.healthy else
                          "[red]unhealthy[/]   Next: ragctl logs SERVICE   (for the failing parts)")
        if not report.healthy:
            raise typer.Exit(EXIT_UNHEALTHY)

    @app.command()
    def backup(
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Archive to write (default: "
                                                 "backups/<project>-<UTC time>.tar.gz in the project).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Back up the deployment: uploads, catalog, vectors, Redis, extracted text and configuration.

        A running stack is paused first (uploads get 503, workers finish their document and wait)."""
        from ragctl.backup import backup as make_backup
        from ragctl.cli import _root
        from ragctl.commands.docker import fail_operation
        from ragctl.deploy import project_name

        root = _root()
        target = out or root / "backups" / f"{project_name(root)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
        try:
            manifest = make_backup(root, target, progress=None if as_json else _say)
        except RagctlError as exc:
            fail_operation(exc, as_json=as_json)
        summary = {"file": str(target), "size_bytes": target.stat().st_size, "files": len(manifest.files),
                   "documents": {c: len(ids) for c, ids in manifest.documents.items()}, "vectors": manifest.vectors,
                   "embed_model": manifest.embed_model, "runtime": manifest.runtime}
        if as_json:
            print_json(summary)
        else:
            console.print(f"[green]Backed up[/] {summary['files']} files to {target} "
                          f"({summary['size_bytes'] / 1e6:.1f} MB): documents {summary['documents']}, "
                          f"vectors {summary['vectors']}.")
            console.print(f"Next, to check it: ragctl restore {target} --verify-only")

    @app.command()
    def restore(
        file: Annotated[Path, typer.Argument(help="An archive made by ragctl backup.")],
        verify_only: Annotated[bool, typer.Option("--verify-only", help="Check checksums and compatibility; "
                                                  "change nothing.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before replacing the data.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Restore a backup into this project (replaces its data; asks first), then verify it."""
        from ragctl.backup import check_compatible, read_archive
        from ragctl.backup import restore as do_restore
        from ragctl.cli import _root
        from ragctl.commands.docker import fail_operation

        root = _root()
        try:
            verification = read_archive(file)
        except RagctlError as exc:
            fail_operation(exc, as_json=as_json)
        problems = verification.problems + check_compatible(root, verification.manifest)
        manifest = verification.manifest
        if verify_only or problems:
            result = {"file": str(file), "valid": not problems, "problems": problems, "files": len(manifest.files),
                      "documents": {c: len(ids) for c, ids in manifest.documents.items()},
                      "vectors": manifest.vectors, "embed_model": manifest.embed_model, "created": manifest.created}
            if as_json:
                print_json(result)
            else:
                for problem in problems:
                    err_console.print(f"[red]problem[/]: {problem}")
                console.print(f"{'[green]valid[/]' if not problems else '[red]not restorable[/]'}: {file} "
                              f"({len(manifest.files)} files, made {manifest.created} by ragctl "
                              f"{manifest.ragctl_version}).")
            if problems:
                raise typer.Exit(1)
            return
        confirm(f"Replace the data of {root} with {file} (made {manifest.created})?", yes=yes, as_json=as_json)
        try:
            result = do_restore(root, file, progress=None if as_json else _say)
        except RagctlError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json({k: v for k, v in result.items() if k != "manifest"} | {"file": str(file)})
        elif result["verified"]:
            console.print(f"[green]Restored and verified[/] {file}: documents, vectors and checksums match.")
        else:
            for problem in result["problems"]:
                err_console.print(f"[red]problem[/]: {problem}")
        if not result["verified"]:
            raise typer.Exit(1)


def _doctor_table(findings):
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("check", "", "evidence", "cause", "fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(finding.check, _MARK[finding.status], finding.evidence, finding.cause or "", finding.fix or "")
    return table


def register_doctor(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        fix: Annotated[bool, typer.Option("--fix", help="Offer the safe fixes (start or restart a service) as a "
                                          "numbered plan, and apply them after confirmation.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply the plan without asking.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Find what is wrong and say why and what to run (the guide's troubleshooting, automated).

        Exit 0 when no check fails, 3 otherwise."""
        from ragctl.cli import _root
        from ragctl.doctor import apply, diagnose, plan

        root = _root()
        findings = diagnose(root)
        steps = plan(findings) if fix else []
        applied: list[str] = []
        if steps:
            if not as_json:
                console.print(_doctor_table(findings))
                console.print("[bold]Plan[/] (safe steps only):")
                for number, step in enumerate(steps, 1):
                    console.print(f"  {number}. {step.fix}   [dim]({step.check}: {step.cause})[/]")
            confirm(f"Apply these {len(steps)} steps?", yes=yes, as_json=as_json)
            for step in steps:
                try:
                    applied.append(apply(root, step))
                except Exception as exc:  # noqa: BLE001 - reported, then the diagnosis is run again
                    applied.append(f"{step.action[0]} {step.action[1]} failed: {exc}")
            findings = diagnose(root)
        failed = [f for f in findings if f.status == "fail"]
        if as_json:
            print_json({"project": str(root), "ok": not failed, "findings": [f.to_dict() for f in findings],
                        "applied": applied})
        else:
            if applied:
                console.print("Applied: " + "; ".join(applied) + ".  After the fixes:")
            if not steps or applied:
                console.print(_doctor_table(findings))
            if failed:
                manual = [f for f in failed if not f.action]
                console.print(f"[red]{len(failed)} checks fail.[/]" + (
                    "  Next: ragctl doctor --fix   (safe steps: start or restart services)"
                    if any(f.action for f in failed) and not fix else
                    f"  Next: {manual[0].fix}" if manual else ""))
            else:
                console.print("[green]No check fails.[/]")
        if failed:
            raise typer.Exit(EXIT_UNHEALTHY)


def register_support(app: typer.Typer) -> None:
    @app.command("support-bundle")
    def support_bundle(
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Tarball to write (default: "
                                                 "ragctl-support-<UTC time>.tar.gz here).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """A tarball for whoever helps you: versions, configuration, ps, health, doctor and recent logs,
        with secrets redacted."""
        from ragctl.cli import _root
        from ragctl.support import make_support_bundle

        root = _root()
        target = out or Path.cwd() / f"ragctl-support-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
        result = make_support_bundle(root, target)
        if as_json:
            print_json(result)
        else:
            console.print(f"Wrote {target} ({len(result['files'])} files, secrets redacted).  Read it before you "
                          "send it: tar -tzf " + str(target))


def register_migrate(app: typer.Typer) -> None:
    @app.command()
    def migrate(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every step (risky ones marked); change "
                                              "nothing.")] = False,
        container: Annotated[list[str] | None, typer.Option("--container", help="The legacy container (repeat "
                                                            "for several); default: those mounting ./data.")] = None,
        finalize: Annotated[bool, typer.Option("--finalize", help="Remove the stopped legacy container(s).")] = False,
        rollback: Annotated[bool, typer.Option("--rollback", help="Back to the old layout: remove the new stack, "
                                               "restore data/, start the legacy container.")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before the risky steps.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Move the guide's single-container layout (data/ and logs/ on the host) to the Compose stack.

        Resumable: run it again after an interruption.  See docs/operations.md."""
        from ragctl import migrate as migration
        from ragctl.cli import _root
        from ragctl.commands.docker import fail_operation

        root = _root()
        try:
            if finalize or rollback:
                confirm("Remove the legacy container(s)?" if finalize else
                        "Remove the new stack (and its volumes) and go back to the old layout?", yes=yes,
                        as_json=as_json)
                ledger = migration.finalize(root) if finalize else migration.rollback(root, say=None if as_json
                                                                                      else _say)
                if as_json:
                    print_json(ledger)
                else:
                    console.print(f"Migration {ledger['state'].replace('_', ' ')}.")
                return
            containers = migration.find_legacy_containers(root, container)
            steps = migration.plan(root, containers)
            if not as_json:
                for number, step in enumerate(steps, 1):
                    mark = "[green]done[/]" if step.done else "[red]RISKY[/]" if step.risky else "     "
                    console.print(f"{number}. {mark} {step.name:<10} {step.description}")
                    if step.risky and not step.done:
                        console.print(f"           [dim]{migration.RISKY[step.name]}[/]")
            if dry_run:
                if as_json:
                    print_json({"project": str(root), "dry_run": True, "legacy": [c.name for c in containers],
                                "steps": [s.to_dict() for s in steps]})
                return
            confirm("Run the migration (risky steps included)?", yes=yes, as_json=as_json)
            ledger = migration.migrate(root, container_names=container, say=None if as_json else _say)
        except RagctlError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json(ledger)
        else:
            console.print(f"[green]Migrated.[/] Vectors before and after: {ledger['steps']['verify']['vectors']}.  "
                          f"The legacy container(s) {', '.join(ledger['legacy']) or '-'} are stopped, not removed.")
            console.print("Next: ragctl migrate --finalize   (or ragctl migrate --rollback)")


def _say(text: str) -> None:
    err_console.print(f"[dim]{text} …[/]")
