"""``ragctl keys``: the stack's API keys (create with a role, list, revoke), through its API with the
admin key (RAG_API_KEY), so the same commands serve the local and the Compose runtime."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, YesOption, open_backend, project_root
from ragctl.errors import NotRunning, UsageError
from ragctl.output import confirm, console, emit

ROLES = ("ask", "editor", "admin")


def keys_client(command: str):
    """The running stack's client; embedded mode has no API, hence no keys."""
    from ragctl.client import StackClient

    client = open_backend()
    if not isinstance(client, StackClient):
        raise NotRunning(f"ragctl keys {command}: API keys are for the stack's API, and this project runs "
                         "embedded (no API: the CLI is its only client, so there is nothing to give keys to).",
                         "ragctl up --runtime local   (then: ragctl keys create --role ask --name NAME)")
    return client


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def keys_create(
    name: Annotated[str | None, typer.Option("--name", "-n", help="A unique name for the key (who holds it); "
                                             "required.", show_default=False)] = None,
    role: Annotated[str, typer.Option("--role", "-r", help="ask (search, ask, read documents, /v1), editor "
                                      "(also upload, re-ingest and delete documents) or admin (everything).")] = "ask",
    collections: Annotated[str | None, typer.Option("--collections", help="Comma-separated collections the key "
                                                    "may see (default: all).", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key with a role (and collections); the key is printed this once (only its hash is kept)."""
    project_root()  # not a project: that first, as every command says it
    if not name:
        raise UsageError("A key needs a name (who holds it).", "ragctl keys create --role ask --name NAME")
    if role not in ROLES:
        raise UsageError(f"Unknown role {role!r}: the roles are ask, editor and admin.",
                         "ragctl keys create --role ask --name NAME")
    scope = None
    if collections is not None:
        scope = [part.strip() for part in collections.split(",") if part.strip()]
        if not scope:
            raise UsageError("--collections names no collection.",
                             "ragctl keys create --role editor --collections hr,policies --name hr-team")
        if role == "admin":
            raise UsageError("An admin key sees every collection; it takes no --collections.",
                             f"ragctl keys create --role editor --collections {collections} --name {name}")
    created = keys_client("create").create_key(name, role, scope)

    def human() -> None:
        seen = ", ".join(created["collections"]) if created.get("collections") else "all collections"
        console.print(f"Created the {created['role']} key '{created['name']}' ({seen}). It is shown this once; "
                      "keep it now:", markup=False, highlight=False)
        console.print(created["key"], markup=False, highlight=False, soft_wrap=True)
        console.print("Use it as 'Authorization: Bearer <key>' (or as the API key of an OpenAI client). "
                      f"Revoke it with: ragctl keys revoke {created['name']}", markup=False, highlight=False)

    emit(created, human, as_json=as_json)


def keys_list(as_json: JsonOption = False) -> None:
    """The stack's API keys (revoked ones too), never the keys themselves."""
    from rich.table import Table

    from ragctl.views import cell

    keys = keys_client("list").keys()

    def human() -> None:
        if not keys:
            console.print("No keys besides the admin key (RAG_API_KEY). Next: ragctl keys create --role ask "
                          "--name NAME", markup=False)
            return
        table = Table(box=None, pad_edge=False)
        for column in ("name", "role", "collections", "prefix", "created", "last used", "state"):
            table.add_column(column, overflow="fold")
        for key in keys:
            state = "active" if key["active"] else f"revoked {_when(key['revoked_at'])}"
            seen = ",".join(key["collections"]) if key.get("collections") else "all"
            table.add_row(cell(key["name"]), cell(key["role"]), cell(seen), cell(key["prefix"] + "…"), cell(_when(key["created_at"])),
                          cell(_when(key["last_used_at"])), cell(state, "" if key["active"] else "red"))
        console.print(table)

    emit(keys, human, as_json=as_json)


def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name (ragctl keys list).")],
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key: every API replica refuses it (401) from the next request on."""
    client = keys_client("revoke")
    confirm(f"Revoke the API key '{name}'? Whoever uses it loses access at once.", yes=yes, as_json=as_json)
    revoked = client.revoke_key(name)
    emit(revoked, lambda: console.print(f"Revoked the key '{revoked['name']}'.", markup=False, highlight=False),
         as_json=as_json)
