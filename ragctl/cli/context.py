"""What every command needs: the project it acts on, its runtime, and where data commands run.

The project comes from the root command's options: the root callback keeps them in Typer's context
object and in ``CURRENT`` (a context variable), so commands are plain module-level functions with no
import of the app that registers them, and no context parameter to thread through.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ragctl.output import err_console
from ragctl.runtime.capabilities import api_verify

if TYPE_CHECKING:
    from ragctl.backends import Backend
    from ragctl.backends.embedded import EmbeddedBackend
    from ragctl.runtime import Runtime

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
CollectionOption = Annotated[
    str | None, typer.Option("--collection", "-c", help="Collection to use (default: the configured one).")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@dataclass
class CliState:
    """The root command's options."""

    project: Path | None = None


CURRENT: ContextVar[CliState | None] = ContextVar("ragctl_cli_state", default=None)


def project_root(*, required: bool = True) -> Path:
    """The project the command acts on.  Only ``init`` creates projects: any other command on a
    folder without ragctl.toml is refused (a typo in ``-p`` must not make a new project); the few
    that work on any folder (``restore``, ``migrate``) pass ``required=False``."""
    from ragctl.errors import UsageError
    from ragctl.project import find_project_root, is_project

    state = CURRENT.get()
    root = find_project_root(state.project if state else None)
    if required and not is_project(root):
        raise UsageError(f"{root} is not a ragctl project (it has no ragctl.toml).",
                         f"ragctl init {root}   (or name an existing project with -p PROJECT)",
                         code="not_a_project")
    return root


def current_runtime(kind: str | None = None, *, starting: bool = False) -> Runtime:
    from ragctl.runtime import runtime_for

    return runtime_for(project_root(), kind, starting=starting)


def open_embedded() -> EmbeddedBackend:
    """This project's own pipeline in this process, for what only it can do (extract, reindex, the
    --eval gate), whatever runs: the same settings, the same data folder."""
    from ragctl.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.open(project_root())


def open_pipeline():
    """The embedded backend's pipeline (``stack.pipeline.service.Pipeline``): ``extract``."""
    return open_embedded().pipeline


def open_backend(*, warm: bool = False) -> Backend:
    """The running stack's client when this project's stack runs (or RAGCTL_API_URL names one), else
    the embedded backend.  A project set up for a stack that is down is an error (NotRunning, exit 5).

    ``warm``: an embedded command that analyses one question (search, ask) uses the warm analyser
    process, or starts one for the next command (stack/pipeline/warm.py)."""
    from ragctl.environment import cli_environment

    named = cli_environment().api_url
    runtime = None if named else current_runtime()
    api_url = named or runtime.api_url()
    if api_url:
        from ragctl.client import StackClient
        from stack.settings import load_settings

        settings = load_settings(project_root())
        key = settings.api_key
        return StackClient(api_url, key.get_secret_value() if key else None,
                           verify=api_verify(runtime) if runtime else True)
    from ragctl.backends.embedded import EmbeddedBackend

    return EmbeddedBackend.open(project_root(), warm=warm)


def print_model_notice(backend: Backend, collection: str | None, as_json: bool) -> None:
    """On stderr: the collection still runs on an earlier default embedding model (embedded mode;
    the stack's doctor reports the same)."""
    notice = None if as_json else backend.model_notice(collection)
    if notice:
        from rich.text import Text

        err_console.print(Text(notice, style="yellow"))
