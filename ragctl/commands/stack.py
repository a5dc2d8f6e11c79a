"""``ragctl up / down / ps / status / logs / restart``: drive the stack's services.

A thin layer over :class:`ragctl.runtime.local.LocalRuntime`, or, for a project whose runtime is
docker, over ragctl.commands.docker.  Register with ``register(app)``.
Exit codes: 0 ok, 1 error, 2 usage, 3 the stack did not become healthy in time, 4 pre-flight failed
(port taken, redis-server missing, no Docker engine), 5 not running, 6 confirmation needed without a TTY.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ragctl.output import (
    EXIT_NOT_RUNNING,
    EXIT_USAGE,
    confirm,
    console,
    err_console,
    fail,
    print_json,
)

if TYPE_CHECKING:
    from rich.table import Table

    from ragctl.runtime.local import LocalRuntime, LocalRuntimeError, RuntimeStatus, ServiceState

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
RUNTIMES = ("local", "docker")

_STATE_STYLE = {"running": "green", "starting": "yellow", "restarting": "yellow", "stopping": "yellow",
                "exited": "red"}


def _project_root() -> Path:
    from ragctl.cli import _root  # lazily: ragctl.cli imports this module

    return _root()


def _on_docker(explicit: str | None = None) -> bool:
    """Whether a command acts on the docker runtime: --runtime, else the project's recorded runtime."""
    from ragctl.project import project_runtime

    return (explicit or project_runtime(_project_root())) == "docker"


def _runtime() -> LocalRuntime:
    from ragctl.runtime.local import LocalRuntime

    return LocalRuntime(_project_root())


def _fail_runtime(exc: LocalRuntimeError, *, as_json: bool) -> NoReturn:
    from ragctl.runtime.local import StartTimeoutError

    if isinstance(exc, StartTimeoutError):
        if as_json:
            print_json({"error": {"code": exc.code, "message": exc.message, "hint": exc.hint,
                                  "failing": exc.failing, "logs": exc.logs}})
            raise typer.Exit(exc.exit_code)
        for name, lines in exc.logs.items():
            err_console.print(f"[bold]── last lines of logs/{name}.log ──[/]")
            for line in lines:
                err_console.print(line, markup=False, highlight=False)
    fail(exc.message, hint=exc.hint, code=exc.code, exit_code=exc.exit_code, as_json=as_json)


def _not_running(root: Path, *, as_json: bool) -> NoReturn:
    fail(f"The local stack of {root} is not running.", hint="ragctl up --runtime local",
         code="not_running", exit_code=EXIT_NOT_RUNNING, as_json=as_json)


def _services_table(services: list[ServiceState], *, show_ready: bool = False) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("service", "state", "pid", "port", "restarts", *(["ready"] if show_ready else [])):
        table.add_column(column, justify="right" if column in ("pid", "port", "restarts") else "left")
    for service in services:
        style = _STATE_STYLE.get(service.state, "")
        row = [service.name, f"[{style}]{service.state}[/]" if style else service.state,
               str(service.pid or "-"), str(service.port or "-"), str(service.restarts)]
        if show_ready:
            row.append("[green]yes[/]" if service.ready else "[yellow]waiting[/]")
        table.add_row(*row)
    return table


def _ps_rows(services: list[ServiceState]) -> list[dict]:
    return [{"service": s.name, "state": s.state, "pid": s.pid, "port": s.port, "restarts": s.restarts}
            for s in services]


def _print_status(status: RuntimeStatus) -> None:
    console.print(_services_table(status.services))
    console.print(f"API      {status.api_url}   (key: RAG_API_KEY in {status.project_root / '.env'})")
    console.print(f"Redis    {status.redis_url}")
    console.print(f"Chroma   {status.chroma_url}")
    if status.flower_url:
        console.print(f"Flower   {status.flower_url}   (login {status.flower_auth or 'see FLOWER_BASIC_AUTH in .env'})")
    console.print(f"Logs     {status.project_root / 'logs'}/   (ragctl logs SERVICE -f)")


def register(app: typer.Typer) -> None:
    """Add up, down, ps, status, logs and restart to ``app``."""

    @app.command()
    def up(
        services: Annotated[list[str] | None, typer.Argument(help="Docker runtime: only these services "
                                                             "(and what they depend on).")] = None,
        runtime: Annotated[str | None, typer.Option("--runtime", help="local (processes on 127.0.0.1) or docker "
                                                    "(the rendered Compose stack); default: the project's.",
                                                    show_default=False)] = None,
        workers: Annotated[int | None, typer.Option("--workers", "-w", min=0, help="Number of Celery workers "
                                                    "(default 2; docker: recorded in ragctl.toml).")] = None,
        flower: Annotated[bool, typer.Option("--flower", help="Local runtime: also run Flower (Celery UI, basic "
                                             "auth).  Docker: set flower = true in [stack].")] = False,
        wait: Annotated[float | None, typer.Option("--wait", min=0, help="Seconds to wait for every service "
                                                   "(default 60 local, 300 docker).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Start the stack: redis, chroma, the API, workers, beat (and Flower, Nginx), then wait for health."""
        from ragctl.runtime.local import LocalRuntime, LocalRuntimeError, record_runtime

        if runtime is not None and runtime not in RUNTIMES:
            fail(f"Unknown runtime {runtime!r}.", hint="ragctl up --runtime local|docker", code="usage",
                 exit_code=EXIT_USAGE, as_json=as_json)
        if _on_docker(runtime):
            from ragctl.commands import docker as docker_commands

            docker_commands.up(services or [], workers=workers, wait=300 if wait is None else wait, as_json=as_json)
            return
        if services:
            fail("Naming services is for the docker runtime; the local runtime starts them all.",
                 hint="ragctl up", code="usage", exit_code=EXIT_USAGE, as_json=as_json)
        workers = 2 if workers is None else workers
        wait = 60 if wait is None else wait
        root = _project_root()
        rt = LocalRuntime(root)
        already = rt.state() is not None
        try:
            services = _up_with_progress(rt, workers=workers, flower=flower, wait=wait, as_json=as_json)
        except LocalRuntimeError as exc:
            _fail_runtime(exc, as_json=as_json)
        # Recorded once the stack answers: a failed pre-flight leaves an embedded project embedded.
        record_runtime(root, "local")
        status = rt.status()
        if as_json:
            print_json({**status.to_dict(), "already_running": already,
                        "services": [s.to_dict() for s in services]})
            return
        if already:
            console.print(f"The local stack of {root} is already running.")
        else:
            console.print(f"[green]The local stack of {root} is up.[/]")
        _print_status(status)

    @app.command()
    def down(
        volumes: Annotated[bool, typer.Option("--volumes", "-v", help="Also delete everything under data/ "
                                              "(documents, vectors, queue).")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting data.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Stop the stack (data is kept unless --volumes)."""
        from ragctl.runtime.local import LocalRuntimeError

        if _on_docker():
            from ragctl.commands import docker as docker_commands

            docker_commands.down(volumes=volumes, yes=yes, as_json=as_json)
            return
        rt = _runtime()
        if volumes:
            confirm(f"Delete everything under {rt.data_dir} (documents, vectors, queued tasks)?",
                    yes=yes, as_json=as_json)
        try:
            stopped = rt.down(volumes=volumes)
        except LocalRuntimeError as exc:
            _fail_runtime(exc, as_json=as_json)
        if as_json:
            print_json({"project": str(rt.project_root), "stopped": [s.name for s in stopped],
                        "volumes_deleted": volumes})
            return
        if stopped:
            console.print(f"Stopped {', '.join(s.name for s in stopped)}.")
        else:
            console.print(f"Nothing was running for {rt.project_root}.")
        if volumes:
            console.print(f"Deleted the contents of {rt.data_dir}.")

    @app.command()
    def ps(as_json: JsonOption = False) -> None:
        """List the stack's services with their state (health, replicas on Docker; pid and port locally)."""
        if _on_docker():
            from ragctl.commands import docker as docker_commands

            docker_commands.ps(as_json=as_json)
            return
        rt = _runtime()
        state = rt.state()
        if state is None:
            if as_json:
                print_json([])
                raise typer.Exit(EXIT_NOT_RUNNING)
            _not_running(rt.project_root, as_json=False)
        if as_json:
            print_json(_ps_rows(state.services))
        else:
            console.print(_services_table(state.services))

    @app.command()
    def status(as_json: JsonOption = False) -> None:
        """Say whether the stack runs, and where: API, Redis, Chroma and Flower URLs."""
        if _on_docker():
            from ragctl.commands import docker as docker_commands

            docker_commands.status(as_json=as_json)
            return
        rt = _runtime()
        current = rt.status()
        if as_json:
            print_json(current.to_dict())
            return
        if not current.running:
            console.print(f"The local stack of {rt.project_root} is not running: commands run embedded "
                          "in the CLI.  Start it with: ragctl up --runtime local")
            return
        console.print(f"The local stack of {rt.project_root} is running (supervisor pid "
                      f"{current.supervisor_pid}); commands go through the API.")
        _print_status(current)

    @app.command()
    def logs(
        service: Annotated[str | None, typer.Argument(help="api, worker (all workers), worker-1, beat, redis, "
                                                      "chroma, flower, nginx or supervisor; docker: all when "
                                                      "left out.")] = None,
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
        lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show first.")] = 100,
    ) -> None:
        """Print a service's log (local: logs/SERVICE.log; docker: the containers' logs)."""
        from ragctl.runtime.local import LocalRuntimeError

        if _on_docker():
            from ragctl.commands import docker as docker_commands

            docker_commands.logs(service, follow=follow, lines=lines)
            return
        if service is None:
            fail("Name a service: api, worker, beat, redis, chroma, flower or supervisor.", hint="ragctl logs api",
                 code="usage", exit_code=EXIT_USAGE)
        rt = _runtime()
        try:
            for line in rt.logs(service, follow=follow, lines=lines):
                sys.stdout.write(line + "\n")
                if follow:
                    sys.stdout.flush()
        except LocalRuntimeError as exc:
            _fail_runtime(exc, as_json=False)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:  # ragctl logs api | head
            pass

    @app.command()
    def restart(
        service: Annotated[str, typer.Argument(help="A service (api, redis, chroma, beat, flower, worker-N), "
                                               "or worker for every worker.")],
        as_json: JsonOption = False,
    ) -> None:
        """Restart one service; the others keep running."""
        from ragctl.runtime.local import LocalRuntimeError

        if _on_docker():
            from ragctl.commands import docker as docker_commands

            docker_commands.restart(service, as_json=as_json)
            return
        rt = _runtime()
        if rt.state() is None:
            _not_running(rt.project_root, as_json=as_json)
        try:
            services = rt.restart(service)
        except LocalRuntimeError as exc:
            _fail_runtime(exc, as_json=as_json)
        if as_json:
            print_json(_ps_rows(services))
        else:
            console.print("Restarted " + ", ".join(f"{s.name} (pid {s.pid})" for s in services) + ".")


def _up_with_progress(rt: LocalRuntime, *, workers: int, flower: bool, wait: float,
                      as_json: bool) -> list[ServiceState]:
    """``rt.up`` with a live per-service table on a terminal, one line per ready service otherwise."""
    if as_json:
        return rt.up(workers=workers, flower=flower, wait_s=wait)
    if console.is_terminal:
        from rich.live import Live

        with Live(console=console, transient=False, refresh_per_second=4) as live:
            return rt.up(workers=workers, flower=flower, wait_s=wait,
                         progress=lambda services: live.update(_services_table(services, show_ready=True)))
    announced: set[str] = set()

    def report(services: list[ServiceState]) -> None:
        for service in services:
            if service.ready and service.name not in announced:
                announced.add(service.name)
                err_console.print(f"{service.name} ready")

    return rt.up(workers=workers, flower=flower, wait_s=wait, progress=report)
