"""``ragctl build``, ``wheelhouse`` and ``bundle save|load``: thin layers over ragctl.images."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from ragctl.cli.context import JsonOption, project_root
from ragctl.output import console, err_console, fail, print_json


def build(
    base_image: Annotated[str | None, typer.Option("--base-image", help="Base image (python3.11+ with venv, "
                                                   "redis-server, nginx); default [stack] base_image.")] = None,
    wheelhouse: Annotated[Path | None, typer.Option("--wheelhouse", help="Folder of wheels (ragctl "
                                                    "wheelhouse): the build contacts no package index.")] = None,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="CA file for pip behind a TLS-"
                                                   "intercepting proxy.")] = None,
    torch: Annotated[str | None, typer.Option("--torch", help="torch build: cpu or cuda.")] = None,
    push: Annotated[bool, typer.Option("--push", help="Then push the image to its registry (image = "
                                       "\"REGISTRY/ragctl\" under [stack]): how a swarm's nodes get it.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Build the stack's image from the rendered Dockerfile (renders first)."""
    from ragctl.deploy import write_rendered
    from ragctl.images import BuildOptions, ImageError, build_image, check_pushable, push_image
    from ragctl.runtime import render_placement, rendered_files

    root = project_root()
    write_rendered(root, files=rendered_files(root), placement=render_placement(root))
    options = BuildOptions.for_project(root, base_image=base_image, torch_variant=torch,
                                       wheelhouse=wheelhouse, ca_bundle=ca_bundle)
    try:
        if push:  # refused before the build (minutes), not after it
            check_pushable(options.image)
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
        pushed = push_image(built.image) if push else None
    except ImageError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json(built.to_dict() | ({"pushed": pushed} if push else {}))
    else:
        console.print(f"[green]Built {built.image}[/] ({built.id[:19]}, build {built.build[:12] or '?'}, "
                      f"{built.size_bytes / 1e9:.2f} GB, "
                      f"{built.seconds:.0f} s, python {built.python}, torch {built.torch_variant}"
                      f"{', wheelhouse ' + built.wheelhouse if built.wheelhouse else ''}).")
        if pushed:
            console.print(f"Pushed {pushed['image']} ({pushed['digest']}): every node pulls it from there.", markup=False)
        console.print(f"Next: ragctl -p {root} up   (or ragctl bundle save FILE for a closed network)")

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
        fail(exc, as_json=as_json)
    if as_json:
        print_json({"directory": str(directory), "wheels": wheels})
    else:
        console.print(f"{len(wheels)} wheels in {directory}.  Next: ragctl build --wheelhouse {directory}")

def bundle_save(
    file: Annotated[Path, typer.Argument(help="Bundle to write (a tar; docker load reads it too).")],
    as_json: JsonOption = False,
) -> None:
    """Save the stack's images, with a manifest of names and image ids, to one file."""
    from ragctl.images import ImageError, save_bundle

    try:
        with _bytes_progress("saving", as_json) as report:
            manifest = save_bundle(project_root(), file, progress=report)
    except ImageError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        print_json({"file": str(file), "size_bytes": file.stat().st_size, **manifest.to_dict()})
    else:
        console.print(f"Saved {', '.join(i['name'] for i in manifest.images)} to {file} "
                      f"({file.stat().st_size / 1e9:.2f} GB).  Next, on the other machine: ragctl bundle load {file.name}")

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
        fail(exc, as_json=as_json)
    if as_json:
        print_json({"file": str(file), "verified": True, **manifest.to_dict()})
    else:
        console.print(f"Loaded and verified {', '.join(i['name'] for i in manifest.images)}.  "
                      "Next: ragctl up")




class _bytes_progress:
    """A byte counter bar on a terminal; a line on stderr every ``every_s`` seconds when piped;
    nothing with --json.  Yields the callback to report bytes."""

    def __init__(self, verb: str, as_json: bool, total: int | None = None, every_s: float = 10.0) -> None:
        self.verb, self.total, self.every_s = verb, total, every_s
        self.enabled = console.is_terminal and not as_json
        self.lines = not console.is_terminal and not as_json
        self.bar, self.last_line = None, 0.0

    def _line(self, done: int) -> None:
        import time

        now = time.monotonic()
        if now - self.last_line < self.every_s and done != self.total:
            return
        self.last_line = now
        of = f" of {self.total / 1e9:.2f} GB" if self.total else " GB"
        err_console.print(f"{self.verb}: {done / 1e9:.2f}{of}", markup=False, highlight=False)

    def __enter__(self):
        if self.lines:
            return self._line
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
