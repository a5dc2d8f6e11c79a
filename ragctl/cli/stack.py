"""``ragctl up / down / ps / status / logs / restart / scale``: the project's services, through its
:class:`~ragctl.runtime.base.Runtime` (local processes or a Compose stack), whichever it is.

Exit codes: 0 ok, 1 error, 2 usage, 3 the stack did not become healthy in time, 4 pre-flight failed
(port taken, redis-server missing, no Docker engine), 5 not running, 6 confirmation needed without a TTY.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, YesOption, current_runtime
from ragctl.errors import EXIT_NOT_RUNNING, NotRunning, UsageError
from ragctl.output import confirm, console, emit, err_console, print_json
from ragctl.runtime.base import is_running, require_running
from ragctl.runtime.capabilities import Announces, api_verify, client_settings
from ragctl.runtimes import KINDS, STACK_RUNTIMES, choices, kind_of
from ragctl.views import cell, print_status, services_table

#: --runtime's choices: the registry's runtimes that have services.
StackRuntimeName = choices(STACK_RUNTIMES)


def _with_progress(call, *, as_json: bool):
    """``call(progress)`` with a live service table on a terminal, a line per change otherwise."""
    if as_json:
        return call(None)
    if console.is_terminal:
        from rich.live import Live

        with Live(console=console, refresh_per_second=4) as live:
            return call(lambda services: live.update(services_table(services, show_ready=True)))
    seen: dict[str, str] = {}

    def report(services) -> None:
        for service in services:
            state = "ready" if service.ready else service.state
            if seen.get(service.name) != state:
                seen[service.name] = state
                err_console.print(f"{service.name}: {state}", markup=False, highlight=False)

    return call(report)


def up(
    services: Annotated[list[str] | None, typer.Argument(help="Docker runtime: only these services "
                                                         "(and what they depend on).")] = None,
    runtime: Annotated[StackRuntimeName | None, typer.Option(
        "--runtime", show_default=False,
        help="; ".join(f"{name}: {KINDS[name].help}" for name in STACK_RUNTIMES) + "; default: the project's.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=0, help="Number of Celery workers "
                                                "(default 2; docker: recorded in ragctl.toml).")] = None,
    flower: Annotated[bool, typer.Option("--flower", help="Local runtime: also run Flower (Celery UI, basic "
                                         "auth).  Docker: set flower = true in [stack].")] = False,
    wait: Annotated[float | None, typer.Option("--wait", min=0, help="Seconds to wait for every service "
                                               "(default 60 local, 300 docker).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the stack: redis, chroma, the API, workers, beat (and Flower, Nginx), then wait for health."""
    from ragctl.project import record_runtime

    rt = current_runtime(runtime.value if runtime else None, starting=True)
    if not as_json and isinstance(rt, Announces):
        rt.listen(lambda text: err_console.print(text, markup=False, highlight=False))
    already = is_running(rt)
    _with_progress(lambda progress: rt.up(services=services or None, workers=workers, flower=flower, wait_s=wait,
                                          progress=progress), as_json=as_json)
    # Recorded once the stack answers: a failed pre-flight leaves the project as it was.
    record_runtime(rt.root, rt.kind)
    status = rt.status()

    def human() -> None:
        console.print(cell(f"The {rt.kind} stack of {rt.root} is already running.") if already else
                      cell(f"The {rt.kind} stack of {rt.root} is up.", "green"))
        print_status(status, rt.root)

    notes = rt.notes if isinstance(rt, Announces) else []
    emit({**status.to_dict(), "already_running": already, "notes": notes}, human, as_json=as_json)


def down(
    volumes: Annotated[bool, typer.Option("--volumes", "-v", help="Also delete the stack's data (documents, "
                                          "vectors, queue).")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the stack (data is kept unless --volumes)."""
    rt = current_runtime()
    if volumes:
        confirm(f"Delete the data of the {rt.kind} stack of {rt.root} (documents, vectors, queued tasks)?",
                yes=yes, as_json=as_json)
    stopped = rt.down(volumes=volumes)

    def human() -> None:
        console.print(f"Stopped {', '.join(stopped)}." if stopped else f"Nothing was running for {rt.root}.",
                      markup=False)
        console.print("Deleted its data." if volumes else "Data is kept.")

    emit({"project": str(rt.root), "stopped": stopped, "volumes_deleted": volumes}, human, as_json=as_json)


def ps(as_json: JsonOption = False) -> None:
    """List the stack's services with their state (health, replicas on Docker; pid and port locally)."""
    rt = current_runtime()
    status = rt.status()
    if not status.running and kind_of(rt.kind).has_services and not status.services:
        if as_json:
            print_json([])
            raise typer.Exit(EXIT_NOT_RUNNING)
        raise NotRunning(f"The {rt.kind} stack of {rt.root} is not running.", kind_of(rt.kind).start_command)
    if not kind_of(rt.kind).has_services:
        emit([], lambda: console.print(f"{rt.root} runs embedded: there are no services.", markup=False),
             as_json=as_json)
        return
    emit([s.ps_row() for s in status.services], lambda: console.print(services_table(status.services)),
         as_json=as_json)


def status(as_json: JsonOption = False) -> None:
    """Say whether the stack runs, and where: API, Redis, Chroma and Flower URLs, and where each worker encodes."""
    rt = current_runtime()
    current = rt.status()
    workers, unknown = (worker_embedding(rt, current.api_url) if kind_of(rt.kind).has_services and current.api_url
                        else (None, None))

    def human() -> None:
        if not kind_of(rt.kind).has_services:
            console.print(f"{rt.root} runs embedded: commands run in the CLI process; there are no services.  "
                          "To run them: ragctl up --runtime local   (or docker)", markup=False)
        elif not current.running:
            console.print(f"The {rt.kind} stack of {rt.root} is not running; data commands need it.  "
                          f"Start it with: {kind_of(rt.kind).start_command}", markup=False)
        else:
            console.print(f"The {rt.kind} stack of {rt.root} is running; commands go through {current.api_url}.",
                          markup=False)
            print_status(current, rt.root)
            print_workers(workers, unknown)

    extra = {"workers": workers} if workers is not None else {"workers_error": unknown} if unknown else {}
    emit(current.to_dict() | extra, human, as_json=as_json)


def worker_embedding(rt, api_url: str | None) -> tuple[dict | None, str | None]:
    """(worker name → where it encodes, None), from the API's readiness (the workers' heartbeats),
    or (None, why not) when the API cannot say: status still answers."""
    from ragctl.client import StackClient, StackError

    key = client_settings(rt).api_key
    try:
        ready = StackClient(api_url, key.get_secret_value() if key else None, timeout_s=10,
                            verify=api_verify(rt)).readiness()
    except StackError as exc:
        return None, exc.message
    return dict(ready.get("embedding") or {}), None


def print_workers(workers: dict | None, unknown: str | None) -> None:
    from stack.contract import embedding_summary

    if workers is None and unknown:
        console.print(cell(f"Workers  unknown: {unknown}"))
    elif not workers:
        console.print(cell("Workers  none live   (ragctl logs worker)"))
    for name, where in sorted((workers or {}).items()):
        console.print(cell(f"Worker   {name}: {embedding_summary(where)}"))


def logs(
    service: Annotated[str | None, typer.Argument(help="api, worker (all workers), worker-1, beat, redis, "
                                                  "chroma, flower, nginx or supervisor; docker: all when "
                                                  "left out.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show first.")] = 100,
) -> None:
    """Print a service's log (local: logs/SERVICE.log; docker: the containers' logs)."""
    rt = current_runtime()
    try:
        for line in rt.logs(service, follow=follow, lines=lines):
            sys.stdout.write(line + "\n")
            if follow:
                sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C, or ragctl logs api | head
        pass


def restart(
    service: Annotated[str, typer.Argument(help="A service (api, redis, chroma, beat, flower, worker-N), "
                                           "or worker for every worker.")],
    as_json: JsonOption = False,
) -> None:
    """Restart one service; the others keep running."""
    rt = current_runtime()
    require_running(rt)
    services = rt.restart(service)
    emit([s.ps_row() for s in services],
         lambda: console.print("Restarted " + ", ".join(s.label() for s in services) + ".", markup=False),
         as_json=as_json)


def parse_replicas(pairs: list[str]) -> dict[str, int]:
    replicas = {}
    for pair in pairs:
        service, _, count = pair.partition("=")
        if not count.isdigit():
            raise UsageError(f"Not SERVICE=N: {pair!r}.", "ragctl scale worker=3 api=2")
        replicas[service.strip()] = int(count)
    return replicas


def scale(
    pairs: Annotated[list[str], typer.Argument(help="SERVICE=N for worker and api, e.g. worker=3 api=2.")],
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for the new replicas.")] = 300,
    as_json: JsonOption = False,
) -> None:
    """Change worker and API replicas live (docker runtime); recorded in ragctl.toml."""
    replicas = parse_replicas(pairs)
    rt = current_runtime()
    services = _with_progress(lambda progress: rt.scale(replicas, wait_s=wait, progress=progress), as_json=as_json)
    chosen = [s for s in services if s.name in replicas]
    emit([s.ps_row() for s in chosen],
         lambda: console.print("Scaled " + ", ".join(f"{s.name} to {s.running}" for s in chosen) + ".", markup=False),
         as_json=as_json)
