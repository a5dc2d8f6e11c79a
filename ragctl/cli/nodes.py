"""``ragctl nodes``: the engines of the project's Docker Swarm (list, label, the join command), over
the swarm runtime's methods (ragctl/runtime/swarm/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ragctl.cli.context import JsonOption, current_runtime
from ragctl.errors import UsageError
from ragctl.output import console, emit
from ragctl.views import cell

if TYPE_CHECKING:
    from ragctl.runtime.capabilities import HasNodes


def swarm_runtime() -> HasNodes:
    """The project's runtime, when it is a cluster of engines (a swarm)."""
    from ragctl.runtime.capabilities import HasNodes

    runtime = current_runtime()
    if not isinstance(runtime, HasNodes):
        raise UsageError(f"ragctl nodes is for a swarm project; {runtime.root} runs {runtime.kind}.",
                         "ragctl init DIR --runtime swarm   (docs/swarm.md)")
    return runtime


def nodes_list(as_json: JsonOption = False) -> None:
    """List the swarm's nodes: role, state, address, ragctl labels, GPUs and this stack's replicas on each."""
    from ragctl.runtime.swarm import node_table_rows

    found = swarm_runtime().nodes()

    def human() -> None:
        rows = node_table_rows(found)
        table = Table(box=None, pad_edge=False)
        for column in (rows[0] if rows else {"node": ""}):
            table.add_column(column)
        for node, row in zip(found, rows, strict=True):
            style = {"ready": "green", "down": "red"}.get(node.state, "yellow")
            table.add_row(*(cell(value, style if column == "state" else "") for column, value in row.items()))
        console.print(table)
        if not any(n.data for n in found):
            console.print("No node holds the data services yet: ragctl nodes label NODE data=true", markup=False)

    emit([n.to_dict() for n in found], human, as_json=as_json)


def nodes_label(
    node: Annotated[str, typer.Argument(help="The node's host name or id (ragctl nodes).")],
    label: Annotated[str, typer.Argument(help="data=true (holds Postgres, Redis, Chroma), gpu=true (GPU workers), "
                                         "or =false to remove.")],
    as_json: JsonOption = False,
) -> None:
    """Label a node for the stack: data=true pins the data services to it, gpu=true takes the GPU workers."""
    from ragctl.runtime.swarm import parse_label

    runtime = swarm_runtime()  # not a project, or not a swarm one: that first
    key, value = parse_label(label)
    updated = runtime.label_node(node, key, value)
    emit(updated.to_dict(), lambda: console.print(
        f"{updated.hostname}: ragctl.{key} {'set' if value else 'removed'} (labels: "
        f"{', '.join(f'{k}={v}' for k, v in sorted(updated.labels.items())) or 'none'})", markup=False),
        as_json=as_json)


def nodes_join_command(as_json: JsonOption = False) -> None:
    """Print the command a new node runs to join the swarm as a worker (it holds the swarm's join token)."""
    command = swarm_runtime().join_command()
    emit({"command": command}, lambda: console.print(
        f"On the new node (with the image: ragctl bundle load FILE, or a registry):\n  {command}\n"
        "Then: ragctl nodes   (and ragctl nodes label NODE gpu=true for a GPU node)", markup=False),
        as_json=as_json)
