"""The ragctl command line: one Typer app over the library (sqlite-utils style).

Data commands (``ragctl.cli.data``) are thin layers over ``stack.pipeline.service.Pipeline``
(embedded) or ``ragctl.client.StackClient`` (a running stack: same methods, same result types);
stack commands (``ragctl.cli.stack``) over the project's ``Runtime``; operations
(``ragctl.cli.ops``) over ``ragctl.ops``; images (``ragctl.cli.images``) over ``ragctl.images``.
Every command is a module-level function registered here; any ``RagctlError`` it raises leaves
through ``ragctl.output.fail`` (human text, or one JSON document with ``--json``).

Heavy libraries are imported inside the commands that need them, so ``ragctl --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from ragctl import __version__
from ragctl.cli import audit, collection, data, images, keys, nodes, ops, stack, top
from ragctl.cli import config as config_cli
from ragctl.cli import eval as eval_cli
from ragctl.cli import sync as sync_cli
from ragctl.cli.context import CURRENT, CliState
from ragctl.environment import cli_environment
from ragctl.errors import RagctlError, UsageError
from ragctl.output import console, fail

try:  # typer ≥ 0.25 vendors click; older releases use the click package
    from typer._click.exceptions import ClickException
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException
    from click.exceptions import UsageError as ClickUsageError


def _without_flag_metavars(params: list) -> list:
    """``--yes`` in help, not ``--yes <bool>``: a flag takes no value, so it shows none."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class RagctlCommand(TyperCommand):
    def get_params(self, ctx: typer.Context) -> list:
        return _without_flag_metavars(super().get_params(ctx))


class RagctlGroup(TyperGroup):
    """Turns an error raised anywhere in a command into ragctl's one error output."""

    def get_params(self, ctx: typer.Context) -> list:
        return _without_flag_metavars(super().get_params(ctx))

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("ragctl.argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context):
        from stack.contract import RagError

        as_json = "--json" in ctx.meta.get("ragctl.argv", [])
        try:
            return super().invoke(ctx)
        except RagError as exc:
            fail(exc, as_json=as_json)
        except ClickUsageError as exc:
            if not as_json:
                raise  # click prints the usage line and the error (exit 2)
            command = " ".join(exc.ctx.command_path.split()[1:]) if exc.ctx else ""
            fail(UsageError(exc.format_message(), f"ragctl {command} --help".replace("  ", " ")), as_json=True)
        except Exception as exc:
            if isinstance(exc, (typer.Exit, typer.Abort, ClickException)) or cli_environment().debug:
                raise  # our own exits, Click's errors; RAGCTL_DEBUG=1 shows the traceback
            # Whatever was not foreseen still leaves as one clear error, never as a traceback.
            fail(RagctlError(f"Unexpected {type(exc).__name__}: {exc}",
                             "this is a bug in ragctl: run it again with RAGCTL_DEBUG=1 for the traceback, and "
                             "ragctl support-bundle for a report", code="internal_error"), as_json=as_json)


class EvalGroup(RagctlGroup):
    """``ragctl eval FILE`` is ``ragctl eval run FILE``: a first word that names no sub-command is a file."""

    default = "run"
    bare = False  # bare ``ragctl eval`` shows the help

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        words = [a for a in args if not a.startswith("-")]
        if (words and words[0] not in self.commands) or (self.bare and not words and not {"-h", "--help"} & set(args)):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


class ConfigGroup(EvalGroup):
    """Bare ``ragctl config`` (and ``ragctl config --json``) is ``ragctl config check``."""

    default = "check"
    bare = True


def _typer(cls: type = RagctlGroup, **kwargs) -> typer.Typer:
    return typer.Typer(cls=cls, no_args_is_help=True, add_completion=False, rich_markup_mode=None,  # help text is shown as written: "[stack]" stays
                       context_settings={"help_option_names": ["-h", "--help"]}, **kwargs)


app = _typer(name="ragctl", help="Question answering over your own documents (HWP/HWPX, PDF, DOCX, text), "
             "from one CLI.")
documents_app = _typer(help="List, show and delete ingested documents.")
tasks_app = _typer(help="Follow and cancel ingest tasks of a running stack.")
bundle_app = _typer(help="Move the stack's images to a machine with no registry.")
keys_app = _typer(help="The stack's API keys: create (with a role and collections), list, revoke.")
collections_app = _typer(help="Collections (one knowledge base each): create, list, show, delete.")
nodes_app = _typer(help="The Docker Swarm's nodes (swarm runtime): list, label, the join command.")
eval_app = _typer(EvalGroup, help="Is it still answering right? Run your question set (ragctl eval FILE), list, "
                  "show and compare stored runs, generate a first set.")


def _version(value: bool) -> None:
    if value:
        console.print(f"ragctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option("--project", "-p", help="Project folder (default: $RAGCTL_PROJECT, or the nearest "
                     "folder upwards with ragctl.toml, or the current folder).", show_default=False),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    ctx.obj = CliState(project=project)
    CURRENT.set(ctx.obj)


for command in (data.init, data.render, data.extract, data.ingest, data.search, data.ask, data.reindex):
    app.command(cls=RagctlCommand)(command)
config_app = _typer(ConfigGroup, help="Check the rendered stack (bare `ragctl config`), "
                    "or change a setting, gated on your questions: ragctl config set KEY VALUE --eval FILE.")
app.add_typer(config_app, name="config", no_args_is_help=False)
config_app.command("check", cls=RagctlCommand)(data.config_check)
config_app.command("set", cls=RagctlCommand)(config_cli.config_set)
app.add_typer(documents_app, name="documents")
documents_app.command("list", cls=RagctlCommand)(data.documents_list)
documents_app.command("show", cls=RagctlCommand)(data.documents_show)
documents_app.command("delete", cls=RagctlCommand)(data.documents_delete)
documents_app.command("retry", cls=RagctlCommand)(data.documents_retry)
app.add_typer(tasks_app, name="tasks", no_args_is_help=False, invoke_without_command=True)
tasks_app.command("list", cls=RagctlCommand)(data.tasks_list)
tasks_app.command("show", cls=RagctlCommand)(data.tasks_show)
tasks_app.command("cancel", cls=RagctlCommand)(data.tasks_cancel)


@tasks_app.callback()
def _tasks(ctx: typer.Context) -> None:
    """Follow and cancel ingest tasks of a running stack; bare `ragctl tasks` lists the recent ones."""
    if ctx.invoked_subcommand is None:
        data.tasks_list()


@nodes_app.callback()
def _nodes(ctx: typer.Context) -> None:
    """The swarm's nodes (swarm runtime); bare `ragctl nodes` lists them."""
    if ctx.invoked_subcommand is None:
        nodes.nodes_list()


for command in (stack.up, stack.down, stack.ps, stack.status, stack.logs, stack.restart, stack.scale):
    app.command(cls=RagctlCommand)(command)
for command in (ops.health, ops.doctor, ops.backup, ops.restore, ops.migrate, ops.upgrade):
    app.command(cls=RagctlCommand)(command)
app.command("support-bundle", cls=RagctlCommand)(ops.support_bundle)
app.command(cls=RagctlCommand)(top.top)
app.command(cls=RagctlCommand)(images.build)
app.command(cls=RagctlCommand)(images.wheelhouse)
app.add_typer(bundle_app, name="bundle")
bundle_app.command("save", cls=RagctlCommand)(images.bundle_save)
bundle_app.command("load", cls=RagctlCommand)(images.bundle_load)
app.command("sync", cls=RagctlCommand)(sync_cli.sync)
app.add_typer(collections_app, name="collections")
collections_app.command("list", cls=RagctlCommand)(collection.collections_list)
collections_app.command("show", cls=RagctlCommand)(collection.collections_show)
collections_app.command("create", cls=RagctlCommand)(collection.collections_create)
collections_app.command("delete", cls=RagctlCommand)(collection.collections_delete)
app.add_typer(keys_app, name="keys")
keys_app.command("create", cls=RagctlCommand)(keys.keys_create)
keys_app.command("list", cls=RagctlCommand)(keys.keys_list)
keys_app.command("revoke", cls=RagctlCommand)(keys.keys_revoke)
app.command("audit", cls=RagctlCommand)(audit.audit)
app.add_typer(eval_app, name="eval")
eval_app.command("run", cls=RagctlCommand)(eval_cli.eval_run)
eval_app.command("list", cls=RagctlCommand)(eval_cli.eval_list)
eval_app.command("show", cls=RagctlCommand)(eval_cli.eval_show)
eval_app.command("compare", cls=RagctlCommand)(eval_cli.eval_compare)
eval_app.command("generate", cls=RagctlCommand)(eval_cli.eval_generate)
app.add_typer(nodes_app, name="nodes", no_args_is_help=False, invoke_without_command=True)
nodes_app.command("list", cls=RagctlCommand)(nodes.nodes_list)
nodes_app.command("label", cls=RagctlCommand)(nodes.nodes_label)
nodes_app.command("join-command", cls=RagctlCommand)(nodes.nodes_join_command)


def main() -> None:
    app()
