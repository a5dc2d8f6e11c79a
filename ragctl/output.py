"""Human and machine output: rich for people, one JSON document for scripts, documented exit codes."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNHEALTHY = 3
EXIT_PREFLIGHT = 4
EXIT_NOT_RUNNING = 5
EXIT_NEEDS_CONFIRMATION = 6

console = Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False)
err_console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


class RagctlError(Exception):
    """An operation failed: what happened (``message``), the next command (``hint``), a stable
    ``code`` for scripts and the exit code.  ``command`` and ``stderr`` are set when a CLI ran."""

    code = "error"
    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None,
                 exit_code: int | None = None, command: list[str] | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.message, self.hint, self.command, self.stderr = message, hint, command, stderr
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code

    def detail(self) -> str:
        """The message, with the command and the tail of its stderr when there was one."""
        text = self.message
        if self.command:
            text += "\n$ " + " ".join(self.command)
        if self.stderr:
            text += "\n" + "\n".join(self.stderr.strip().splitlines()[-15:])
        return text


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, *, hint: str | None = None, code: str = "error", exit_code: int = EXIT_ERROR,
         as_json: bool = False) -> NoReturn:
    """Say what happened and why, and the next command to run; then exit."""
    if as_json:
        print_json({"error": {"code": code, "message": message, "hint": hint}})
    else:
        err_console.print(f"[bold red]Error:[/] {message}")
        if hint:
            err_console.print(f"[dim]Next:[/] {hint}")
    raise typer.Exit(exit_code)


def fail_error(exc: RagctlError, *, as_json: bool = False, extra: dict[str, Any] | None = None) -> NoReturn:
    """``fail`` for a RagctlError: its code and exit code; the command and stderr when a CLI ran."""
    if as_json:
        ran = {"command": exc.command, "stderr": exc.stderr[-4000:]} if exc.command else {}
        print_json({"error": {"code": exc.code, "message": exc.message, "hint": exc.hint, **ran, **(extra or {})}})
        raise typer.Exit(exc.exit_code)
    fail(exc.detail(), hint=exc.hint, code=exc.code, exit_code=exc.exit_code)


def fail_with(exc: Exception, *, as_json: bool = False) -> NoReturn:
    from stack.pipeline.errors import PipelineError

    if isinstance(exc, PipelineError):
        fail(exc.message, hint=exc.hint, code=exc.code, exit_code=getattr(exc, "exit_code", EXIT_ERROR),
             as_json=as_json)
    fail(str(exc), as_json=as_json)


def confirm(question: str, *, yes: bool, as_json: bool = False) -> None:
    """Ask before destroying anything; without a TTY, demand --yes (exit 6)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(
            f"{question} needs confirmation, and there is no terminal to ask on.",
            hint="add --yes to confirm",
            code="confirmation_needed",
            exit_code=EXIT_NEEDS_CONFIRMATION,
            as_json=as_json,
        )
    if not typer.confirm(question, default=False):
        raise typer.Exit(EXIT_ERROR)
