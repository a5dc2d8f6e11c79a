"""Human and machine output: rich for people, one JSON document for scripts, documented exit codes.

Every command leaves through here: ``emit`` for a result, ``fail`` for an error (any
:class:`ragctl.errors.RagctlError`, a pipeline error, or a message).  Text that comes from users,
files, documents or configuration is printed as data, never as Rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.markup import escape
from rich.text import Text

from ragctl.console import console, err_console
from ragctl.errors import (  # noqa: F401 - the exit codes are part of this module's interface
    EXIT_ERROR,
    EXIT_NEEDS_CONFIRMATION,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_PREFLIGHT,
    EXIT_UNHEALTHY,
    EXIT_USAGE,
    NeedsConfirmation,
    RagctlError,
)
from stack.contract import RagError


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit(data: Any, human: Callable[[], None], *, as_json: bool) -> None:
    """A command's result: ``data`` as one JSON document, or ``human()`` for people."""
    if as_json:
        print_json(data)
    else:
        human()


def _as_error(error: BaseException | str, hint: str | None, code: str | None, exit_code: int | None) -> RagctlError:
    if isinstance(error, RagctlError):
        return error
    if isinstance(error, RagError):  # the pipeline's, the client's, the stack's: one root, the same fields
        return RagctlError(error.message, error.hint or hint, code=error.code, exit_code=error.exit_code)
    return RagctlError(str(error), hint, code=code, exit_code=exit_code)


def fail(error: BaseException | str, *, hint: str | None = None, code: str | None = None,
         exit_code: int | None = None, as_json: bool = False) -> NoReturn:
    """Say what happened and why, and the next command to run; then exit with the error's code."""
    exc = _as_error(error, hint, code, exit_code)
    if as_json:
        print_json({"error": exc.to_dict()})
        raise typer.Exit(exc.exit_code)
    checks = getattr(exc, "checks", None)
    if checks:
        from ragctl.views import checks_table

        console.print(checks_table(checks))
    for name, lines in (getattr(exc, "logs", None) or {}).items():
        err_console.print(Text(f"── last lines of {name} ──", style="bold"))
        for line in lines:
            err_console.print(line, markup=False, highlight=False)
    err_console.print(f"[bold red]Error:[/] {escape(exc.detail())}")
    if exc.hint:
        err_console.print(f"[dim]Next:[/] {escape(exc.hint)}")
    raise typer.Exit(exc.exit_code)


def confirm(question: str, *, yes: bool, as_json: bool = False) -> None:
    """Ask before destroying anything; without a TTY, demand --yes (exit 6)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(NeedsConfirmation(f"{question} needs confirmation, and there is no terminal to ask on.",
                               "add --yes to confirm"), as_json=as_json)
    if not typer.confirm(question, default=False):
        raise typer.Exit(EXIT_ERROR)
