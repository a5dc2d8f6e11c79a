"""The docker runtime's side of ``up / down / ps / status / logs / restart / scale``, and
``build``, ``wheelhouse`` and ``bundle save|load``: thin layers over ragctl.runtime.docker and
ragctl.images.  ``ragctl.commands.stack`` dispatches here when the project's runtime is docker.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ragctl.output import EXIT_USAGE, RagctlError, confirm, console, err_console, fail, fail_error, print_json

if TYPE_CHECKING:
    from rich.table import Table

    from ragctl.runtime.docker import Check, DockerRuntime, DockerStatus, ServiceStatus

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]

_STYLE = {"healthy": "green", "running": "green", "starting": "yellow", "restarting": "yellow",
          "unhealthy": "red", "exited": "red", "missing": "red", "stopped": "dim"}


def _project_root() -> Path:
    from ragctl.cli import _root  # lazily: ragctl.cli imports the command modules

    return _root()


def fail_operation(exc: RagctlError, *, as_json: bool) -> NoReturn:
    """Exit with ``exc``; a failed pre-flight shows its checks, a start timeout the failing logs."""
    from ragctl.runtime.docker import PreflightFailed, StartTimeout

    extra: dict = {}
    if isinstance(exc, PreflightFailed):
        extra["checks"] = [c.to_dict() for c in exc.checks]
        if not as_json:
            console.print(checks_table(exc.checks))
    if isinstance(exc, StartTimeout):
        extra |= {"failing": exc.failing, "logs": exc.logs}
        if not as_json:
            for name, lines in exc.logs.items():
                err_console.print(f"[bold]── last lines of {name} ──[/]")
                for line in lines:
                    err_console.print(line, markup=False, highlight=False)
    fail_error(exc, as_json=as_json, extra=extra)


def runtime() -> DockerRuntime:
    from ragctl.runtime.docker import DockerRuntime

    return DockerRuntime(_project_root())


def checks_table(checks: list[Check]) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("check", "", "detail", "next"):
        table.add_column(column)
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for check in checks:
        table.add_row(check.name, marks[check.status], check.detail, check.hint or "")
    return table


def services_table(services: list[ServiceStatus]) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("service", "state", "replicas", "containers", "ports"):
        table.add_column(column)
    for service in services:
        style = _STYLE.get(service.state, "")
        ports = sorted({p for c in service.containers for p in c.ports})
        table.add_row(service.service, f"[{style}]{service.state}[/]" if style else service.state,
                      f"{service.running}/{service.wanted}", ", ".join(c.name for c in service.containers) or "-",
                      ", ".join(ports) or "-")
    return table


def print_status(status: DockerStatus) -> None:
    console.print(services_table(status.services))
    if status.api_url:
        console.print(f"API      {status.api_url}   (key: RAG_API_KEY in {status.project_root / '.env'})")
    if status.flower_url:
        console.print(f"Flower   {status.flower_url}   (login {status.flower_auth or 'see .env'})")
    console.print(f"Logs     ragctl logs [SERVICE] -f   (compose project {status.project})")


def _live(rt_call, *, as_json: bool):
    """Run ``rt_call(progress)`` with a live service table on a terminal, a line per change otherwise."""
    if as_json:
        return rt_call(None)
    if console.is_terminal:
        from rich.live import Live

        with Live(console=console, refresh_per_second=4) as live:
            return rt_call(lambda services: live.update(services_table(services)))
    seen: dict[str, str] = {}

    def report(services: list[ServiceStatus]) -> None:
        for service in services:
            if seen.get(service.service) != service.state:
                seen[service.service] = service.state
                err_console.print(f"{service.service}: {service.state} ({service.running}/{service.wanted})")

    return rt_call(report)


def up(services: list[str], *, workers: int | None, wait: float, as_json: bool) -> None:
    from ragctl.engine import DockerError
    from ragctl.project import set_config_value
    from ragctl.runtime.local import record_runtime

    root = _project_root()
    if workers is not None:
        set_config_value(root, "stack", "workers", workers)
    rt = runtime()
    try:
        _live(lambda progress: rt.up(services or None, wait_s=wait, progress=progress), as_json=as_json)
        status = rt.status()
    except DockerError as exc:
        fail_operation(exc, as_json=as_json)
    record_runtime(root, "docker")
    if as_json:
        print_json(status.to_dict())
        return
    console.print(f"[green]The stack {status.project} is up.[/]")
    print_status(status)


def down(*, volumes: bool, yes: bool, as_json: bool) -> None:
    from ragctl.engine import DockerError

    rt = runtime()
    if volumes:
        confirm(f"Delete the volumes of {rt.name} (vectors in chroma_data, the queue in redis_data)?",
                yes=yes, as_json=as_json)
    try:
        removed = rt.down(volumes=volumes)
    except DockerError as exc:
        fail_operation(exc, as_json=as_json)
    if as_json:
        print_json({"project": str(rt.project_root), "removed": removed, "volumes_deleted": volumes})
        return
    console.print(f"Removed {len(removed)} containers of {rt.name}." if removed else
                  f"Nothing was running for {rt.name}.")
    console.print("Deleted its volumes." if volumes else "Volumes and host folders are kept.")


def ps(*, as_json: bool) -> None:
    from ragctl.engine import DockerError

    try:
        services = runtime().services()
    except DockerError as exc:
        fail_operation(exc, as_json=as_json)
    if as_json:
        print_json([s.to_dict() for s in services])
    else:
        console.print(services_table(services))


def status(*, as_json: bool) -> None:
    from ragctl.engine import DockerError

    rt = runtime()
    try:
        current = rt.status()
    except DockerError as exc:
        fail_operation(exc, as_json=as_json)
    if as_json:
        print_json(current.to_dict())
    elif not current.running:
        console.print(f"The stack {rt.name} is not running.  Start it with: ragctl -p {rt.project_root} up")
    else:
        console.print(f"The stack {rt.name} runs on Docker; commands go through {current.api_url}.")
        print_status(current)


def logs(service: str | None, *, follow: bool, lines: int) -> None:
    from ragctl.engine import DockerError

    try:
        for line in runtime().logs(service, follow=follow, lines=lines):
            sys.stdout.write(line + "\n")
            if follow:
                sys.stdout.flush()
    except DockerError as exc:
        fail_operation(exc, as_json=False)
    except (KeyboardInterrupt, BrokenPipeError):
        pass


def restart(service: str, *, as_json: bool) -> None:
    from ragctl.engine import DockerError

    try:
        services = runtime().restart(service)
    except DockerError as exc:
        fail_operation(exc, as_json=as_json)
    if as_json:
        print_json([s.to_dict() for s in services])
    else:
        console.print("Restarted " + ", ".join(c.name for s in services for c in s.containers) + ".")


def parse_replicas(pairs: list[str]) -> dict[str, int]:
    replicas = {}
    for pair in pairs:
        service, _, count = pair.partition("=")
        if not count.isdigit():
            fail(f"Not SERVICE=N: {pair!r}.", hint="ragctl scale worker=3 api=2", code="usage", exit_code=EXIT_USAGE)
        replicas[service.strip()] = int(count)
    return replicas


def register(app: typer.Typer) -> None:
    """Add scale, build, wheelhouse and bundle save|load to ``app``."""

    @app.command()
    def scale(
        pairs: Annotated[list[str], typer.Argument(help="SERVICE=N for worker and api, e.g. worker=3 api=2.")],
        wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for the new replicas.")] = 300,
        as_json: JsonOption = False,
    ) -> None:
        """Change worker and API replicas live (docker runtime); recorded in ragctl.toml."""
        from ragctl.engine import DockerError
        from ragctl.project import project_runtime

        replicas = parse_replicas(pairs)
        root = _project_root()
        if project_runtime(root) != "docker":
            fail("scale drives the docker runtime; this project does not run on Docker.",
                 hint="ragctl up --runtime local --workers N   (the local runtime takes its worker count at start)",
                 code="usage", exit_code=EXIT_USAGE, as_json=as_json)
        rt = runtime()
        try:
            services = _live(lambda progress: rt.scale(replicas, wait_s=wait, progress=progress), as_json=as_json)
        except DockerError as exc:
            fail_operation(exc, as_json=as_json)
        chosen = [s for s in services if s.service in replicas]
        if as_json:
            print_json([s.to_dict() for s in chosen])
        else:
            console.print("Scaled " + ", ".join(f"{s.service} to {s.running}" for s in chosen) + ".")

    @app.command()
    def build(
        base_image: Annotated[str | None, typer.Option("--base-image", help="Base image (python3.11+ with venv, "
                                                       "redis-server, nginx); default [stack] base_image.")] = None,
        wheelhouse: Annotated[Path | None, typer.Option("--wheelhouse", help="Folder of wheels (ragctl "
                                                        "wheelhouse): the build contacts no package index.")] = None,
        ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="CA file for pip behind a TLS-"
                                                       "intercepting proxy.")] = None,
        torch: Annotated[str | None, typer.Option("--torch", help="torch build: cpu or cuda.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Build the stack's image from the rendered Dockerfile (renders first)."""
        from ragctl.deploy import write_rendered
        from ragctl.images import BuildOptions, ImageError, build_image

        root = _project_root()
        write_rendered(root)
        options = BuildOptions.for_project(root, base_image=base_image, torch_variant=torch,
                                           wheelhouse=wheelhouse, ca_bundle=ca_bundle)
        try:
            if as_json or not console.is_terminal:
                def report(step: int, steps: int, what: str) -> None:
                    if not as_json:
                        err_console.print(f"step {step}/{steps}: {what}", markup=False, highlight=False)

                built = build_image(root, options, progress=report)
            else:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=console) as bar:
                    task = bar.add_task(f"building {options.image}", total=None)
                    built = build_image(root, options, progress=lambda step, steps, what: bar.update(
                        task, completed=step, total=steps, description=f"{options.image}: {what[:50]}"))
        except ImageError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json(built.to_dict())
        else:
            console.print(f"[green]Built {built.image}[/] ({built.id[:19]}, {built.size_bytes / 1e9:.2f} GB, "
                          f"{built.seconds:.0f} s, python {built.python}, torch {built.torch_variant}"
                          f"{', wheelhouse ' + built.wheelhouse if built.wheelhouse else ''}).")
            console.print(f"Next: ragctl -p {root} up   (or ragctl bundle save FILE for a closed network)")

    @app.command()
    def wheelhouse(
        directory: Annotated[Path, typer.Argument(help="Folder to fill with wheels.")],
        torch_index: Annotated[str, typer.Option("--torch-index", help="Extra index for torch; 'pip' uses only "
                                                 "pip's own configuration.")] = "https://download.pytorch.org/whl/cpu",
        python_version: Annotated[str, typer.Option("--python-version", help="The base image's Python, for "
                                                    "version-dependent requirements.")] = "3.11.2",
        as_json: JsonOption = False,
    ) -> None:
        """Download every wheel the image needs (on a machine with PyPI), for ragctl build --wheelhouse."""
        from ragctl.images import ImageError, make_wheelhouse

        try:
            with console.status("pip wheel …") if console.is_terminal and not as_json else nullcontext():
                wheels = make_wheelhouse(directory, torch_index=None if torch_index == "pip" else torch_index,
                                         python_version=python_version)
        except ImageError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json({"directory": str(directory), "wheels": wheels})
        else:
            console.print(f"{len(wheels)} wheels in {directory}.  Next: ragctl build --wheelhouse {directory}")

    bundle_app = typer.Typer(help="Move the stack's images to a machine with no registry.", no_args_is_help=True)
    app.add_typer(bundle_app, name="bundle")

    @bundle_app.command("save")
    def bundle_save(
        file: Annotated[Path, typer.Argument(help="Bundle to write (a tar; docker load reads it too).")],
        as_json: JsonOption = False,
    ) -> None:
        """Save the stack's images, with a manifest of names and image ids, to one file."""
        from ragctl.images import ImageError, save_bundle

        try:
            with _bytes_progress("saving", as_json) as report:
                manifest = save_bundle(_project_root(), file, progress=report)
        except ImageError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json({"file": str(file), "size_bytes": file.stat().st_size, **manifest.to_dict()})
        else:
            console.print(f"Saved {', '.join(i['name'] for i in manifest.images)} to {file} "
                          f"({file.stat().st_size / 1e9:.2f} GB).  Next, on the other machine: ragctl bundle load {file.name}")

    @bundle_app.command("load")
    def bundle_load(
        file: Annotated[Path, typer.Argument(help="A bundle made by ragctl bundle save.")],
        as_json: JsonOption = False,
    ) -> None:
        """Load a bundle into this engine and check every image id against its manifest."""
        from ragctl.images import ImageError, load_bundle

        try:
            with _bytes_progress("loading", as_json, total=file.stat().st_size if file.is_file() else None) as report:
                manifest = load_bundle(file, progress=report)
        except ImageError as exc:
            fail_operation(exc, as_json=as_json)
        if as_json:
            print_json({"file": str(file), "verified": True, **manifest.to_dict()})
        else:
            console.print(f"Loaded and verified {', '.join(i['name'] for i in manifest.images)}.  "
                          "Next: ragctl up")


class _bytes_progress:
    """A byte counter bar on a terminal; nothing otherwise.  Yields the callback to report bytes."""

    def __init__(self, verb: str, as_json: bool, total: int | None = None) -> None:
        self.verb, self.total = verb, total
        self.enabled = console.is_terminal and not as_json
        self.bar = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.bar = Progress(TextColumn(self.verb), DownloadColumn(), TransferSpeedColumn(), console=console)
        self.bar.start()
        task = self.bar.add_task(self.verb, total=self.total)
        return lambda done: self.bar.update(task, completed=done)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
