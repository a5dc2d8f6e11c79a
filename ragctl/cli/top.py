"""``ragctl top``: the running stack, live (a thin layer over ``ragctl.ops.top``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ragctl.cli.context import current_runtime
from ragctl.output import console, emit
from ragctl.runtime.capabilities import api_verify, client_settings
from ragctl.runtimes import kind_of


def top(
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one snapshot as JSON for scripts "
                                          "(implies --once).")] = False,
) -> None:
    """Watch the running stack, refreshed every second: queue, documents by stage, workers, recent
    failures, API latency.  The figures are the API's /metrics.  q or Ctrl-C quits."""
    from ragctl.environment import cli_environment
    from ragctl.errors import NotRunning
    from ragctl.ops.top import Source, StackDown, render, snapshot, watch

    runtime = current_runtime()
    env_url = cli_environment().api_url
    if not env_url and not kind_of(runtime.kind).has_services:
        raise NotRunning("ragctl top watches a running stack; this project runs embedded (no stack, no queue "
                         "or workers to watch).", "ragctl up --runtime local   (then ragctl top)")
    key = client_settings(runtime).api_key
    start = kind_of(runtime.kind).start_command
    source = Source(lambda: env_url or runtime.status().api_url, key.get_secret_value() if key else None,
                    verify=True if env_url else api_verify(runtime))
    if once or as_json or not console.is_terminal:
        try:
            snap = snapshot(source.fetch())
        except StackDown as exc:
            raise NotRunning(f"No figures from the stack: {exc}.", f"{start}   (then ragctl top)") from exc
        emit(snap.to_dict(), lambda: console.print(render(snap, source=source.url or "")), as_json=as_json)
        return
    watch(source, console, hint=start)

