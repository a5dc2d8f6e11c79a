"""Operations: ``ragctl health``.  Thin layers over ragctl.health."""

from __future__ import annotations

from typing import Annotated

import typer

from ragctl.output import EXIT_NOT_RUNNING, EXIT_UNHEALTHY, console, fail, print_json

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
        from ragctl.commands.docker import fail_docker
        from ragctl.engine import DockerError
        from ragctl.health import NotRunning, collect

        root = _root()
        try:
            if as_json or not console.is_terminal:
                report = collect(root, deep=deep)
            else:
                with console.status("checking the stack …"):
                    report = collect(root, deep=deep)
        except NotRunning as exc:
            fail(exc.message, hint=exc.hint, code="not_running", exit_code=EXIT_NOT_RUNNING, as_json=as_json)
        except DockerError as exc:
            fail_docker(exc, as_json=as_json)
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
