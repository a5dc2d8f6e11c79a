"""A Compose stack's data: what a backup copies out of its containers, how a restore puts it back
into fresh volumes, and ``ragctl upgrade`` (a stack from before PostgreSQL moves its SQLite state
into its own PostgreSQL service, checked, and rolled back on any failure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.deploy import LABEL_KEY, load_deploy_config, write_rendered
from ragctl.engine import compose, engine
from ragctl.errors import RagctlError, UpgradeFailed
from ragctl.project import set_config_value
from ragctl.runtime.base import is_running, parse_last_json, store_tree_tar
from ragctl.runtimes import kind_of

if TYPE_CHECKING:
    from ragctl.runtime.docker.runtime import DockerRuntime



def stop_for_restore(runtime: DockerRuntime) -> bool:
    was_running = is_running(runtime)
    write_rendered(runtime.root, files=kind_of(runtime.kind).rendered_files)
    runtime.preflight()  # image, names, ports, limits: refused before anything is removed
    runtime.down(volumes=True)
    return was_running


def restore_stores(runtime: DockerRuntime, archive: Path) -> None:
    """Create (not start) redis and chroma with their fresh volumes, and copy the files in."""
    compose(runtime.root, ["up", "--no-start", "redis", "chroma"], profiles=runtime.profiles, timeout_s=300)
    client = engine(timeout_s=600)
    for tree, mount in {"chroma": "/chroma", "redis": "/data"}.items():
        content = store_tree_tar(archive, tree)
        if content:
            runtime.service_container(tree, client).put_archive(mount, content)


def upgrade_state(runtime: DockerRuntime, *, replace: bool = False, wait_s: float | None = None,
                  progress: Callable[[str], None] | None = None,
                  check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Move a Compose stack's SQLite state into its own PostgreSQL service, in place.

    The stack stops; ragctl.toml switches to ``database = "postgres"``; PostgreSQL starts alone;
    a one-off container of the stopped stack moves the catalog, postings, text, uploads and keys
    (one transaction, verified, rolled back on a difference); the stack starts on PostgreSQL and
    its document ids are checked against the SQLite catalog's, then ``check`` runs (the quality gate: it
    raises when the answers got worse).  On any failure the switch is
    undone (the SQLite files were only read), a PostgreSQL volume this run created is removed, and
    the stack starts again as it was."""
    from ragctl.backends.embedded import sqlite_catalog_documents

    say = progress or (lambda _text: None)
    if runtime.uses_postgres:
        return {"upgraded": False, "database": "postgres", "reason": "the stack keeps its state in PostgreSQL already"}
    started = time.monotonic()
    before = sqlite_catalog_documents(runtime.root)
    was_running = is_running(runtime)
    volume = f"{runtime.name}_postgres_data"
    had_volume = bool(engine().volumes.list(filters={"name": volume, "label": f"{LABEL_KEY}={runtime.name}"}))
    if was_running:
        say("stopping the stack")
        runtime.down()
    try:
        _switch_database(runtime, "postgres")
        runtime.preflight()
        say("starting PostgreSQL")
        compose(runtime.root, ["up", "-d", "postgres"], profiles=runtime.profiles, timeout_s=300)
        runtime.wait_ready(["postgres"], wait_s=300)
        say("moving the catalog, postings, extracted text, uploads and keys (checked, one transaction)")
        done = compose(runtime.root, ["run", "--rm", "--no-deps", "-T", "api", "python", "-m", "stack.maintenance",
                                      "move-state-replace" if replace else "move-state"],
                       profiles=runtime.profiles, timeout_s=3600)
        moved = parse_last_json("stack.maintenance", 0, done.stdout, where="a one-off api container")
        if not moved.get("moved"):
            raise UpgradeFailed(moved)
        say("starting the stack on PostgreSQL")
        runtime.up(wait_s=wait_s)
        after = runtime.catalog_documents()
        if after != before:
            raise UpgradeFailed({"code": "documents_differ", "error": (
                f"the stack on PostgreSQL lists {sum(map(len, after.values()))} documents, the SQLite catalog "
                f"{sum(map(len, before.values()))}")})
        if check is not None:
            check()
    except BaseException as exc:
        say("rolling back: the stack goes back to its SQLite files")
        _undo_upgrade(runtime, volume if not had_volume else None, restart=was_running)
        if isinstance(exc, RagctlError):
            exc.message = f"Upgrade rolled back, the stack is on its SQLite files again (nothing lost): {exc.message}"
            exc.args = (exc.message,)
        raise
    if not was_running:
        runtime.down()
    return {"upgraded": True, "database": "postgres", "documents": sum(map(len, before.values())),
            "collections": sorted(before), "move": moved, "running": was_running,
            "seconds": round(time.monotonic() - started, 1)}


def _switch_database(runtime: DockerRuntime, database: str) -> None:
    set_config_value(runtime.root, "stack", "database", database)
    runtime.config = load_deploy_config(runtime.root)
    write_rendered(runtime.root, files=kind_of(runtime.kind).rendered_files)


def _undo_upgrade(runtime: DockerRuntime, created_volume: str | None, *, restart: bool) -> None:
    _switch_database(runtime, "sqlite")
    runtime.down()  # --remove-orphans: the postgres container, no longer in compose.yaml, goes too
    if created_volume:
        from docker.errors import NotFound

        try:
            found = engine().volumes.get(created_volume)
            if (found.attrs.get("Labels") or {}).get(LABEL_KEY) == runtime.name:
                found.remove()
        except NotFound:
            pass
    if restart:
        runtime.up()
