"""``ragctl collections``: create, list, show and delete collections (issue #26).

Thin over the backend's collection methods: the embedded Pipeline's (stack/pipeline/collection_admin.py)
or the running stack's API (/api/collections, through ragctl/client.py): the same names, the same
records (stack.contract.CollectionInfo)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, YesOption, open_backend
from ragctl.output import confirm, console, emit


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


NameArgument = Annotated[str, typer.Argument(help="The collection's name (ragctl collections list).")]


def collections_list(as_json: JsonOption = False) -> None:
    """The collections (those your key may see): documents, chunks, embedding model, size, last change."""
    from rich.table import Table

    from ragctl.views import cell

    backend = open_backend()
    found = backend.collections()

    def human() -> None:
        table = Table(box=None, pad_edge=False)
        for column in ("name", "documents", "chunks", "model", "size", "last change", "state", "description"):
            table.add_column(column, overflow="fold")
        for info in found:
            name = info.name + (" (default)" if info.default else "")
            table.add_row(cell(name), cell(info.documents), cell(info.chunks), cell(info.embed_model or "-"),
                          cell(_size(info.size)), cell(_when(info.updated_at)),
                          cell(info.state, "" if info.state == "ready" else "yellow"), cell(info.description or ""))
        console.print(table)

    emit([info.to_dict() for info in found], human, as_json=as_json)


def collections_show(name: NameArgument, as_json: JsonOption = False) -> None:
    """One collection: its documents, chunks, embedding model, size and last change."""
    from ragctl.views import line

    backend = open_backend()
    info = backend.collection_info(name)

    def human() -> None:
        for label, value in (("name", info.name), ("description", info.description or "-"),
                             ("documents", info.documents), ("chunks", info.chunks),
                             ("embedding model", info.embed_model or "- (nothing embedded yet)"),
                             ("size", f"{_size(info.size)} of stored uploads"),
                             ("created", _when(info.created_at)), ("last change", _when(info.updated_at)),
                             ("state", info.state), ("default", "yes" if info.default else "no")):
            console.print(line((f"{label:16}", "bold"), value))
        if info.state == "deleting":
            console.print(line(("A deletion of this collection was interrupted; finish it with: ", "yellow"),
                               f"ragctl collections delete {info.name} --yes"))

    emit(info.to_dict(), human, as_json=as_json)


def collections_create(
    name: NameArgument,
    description: Annotated[str | None, typer.Option("--description", "-d", help="What it holds (shown in lists).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """Create an empty collection (ingesting into a new name creates it too)."""
    backend = open_backend()
    info = backend.create_collection(name, description)
    emit(info.to_dict(), lambda: console.print(f"Created the collection '{info.name}'. Next: ragctl ingest FILE "
                                               f"--collection {info.name}", markup=False, highlight=False),
         as_json=as_json)


def collections_delete(name: NameArgument, yes: YesOption = False, as_json: JsonOption = False) -> None:
    """Delete a collection and everything in it: vectors, lexical index, stored uploads, catalog rows."""
    backend = open_backend()
    info = backend.collection_info(name)
    confirm(f"Delete the collection '{info.name}' with its {info.documents} documents and {info.chunks} chunks?",
            yes=yes, as_json=as_json)
    gone = backend.delete_collection(info.name)
    emit(gone.to_dict(), lambda: console.print(f"Deleted the collection '{gone.name}' ({gone.documents} documents, "
                                               f"{gone.chunks} chunks).", markup=False, highlight=False),
         as_json=as_json)
