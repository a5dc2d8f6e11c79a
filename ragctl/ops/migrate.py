"""``ragctl migrate``: from the guide's single-container layout to the Compose stack, made safe.

The old layout: one container runs the API, the worker and the store in one process, with
``data/`` (Chroma's persistent files under it) and ``logs/`` on the host.  The migration runs in that
project folder:

1. inventory   count the documents and vectors in ``data/`` (the numbers to match at the end)
2. stop        stop the legacy container(s) — detected by their ``data/`` mount, or named — and nothing
               else: the guide's ``docker stop $(docker ps -aq)`` would stop every container on the host
3. backup      ``ragctl backup`` of the old layout, verified (this archive is also the rollback)
4. configure   runtime = "docker" in ragctl.toml, ``[stack]`` kept or defaulted, render
5. image       the stack's pre-flight passes: its image is on the engine (``ragctl build`` or
               ``bundle load``), its names and ports are free
6. restore     the archive into the new stack (vectors into the Chroma volume), stack up, counts and
               checksums verified
7. health      ``ragctl health`` passes
8. verify      the stack's vector count equals the inventory's

A ledger (``run/migrate.json``) records each finished step, so an interrupted migration resumes
where it stopped.

With a question set (``--eval``, :class:`MigrationGate`) the set is asked of the old layout once it
is stopped and backed up, and of the stack once it is verified; when ``answer_has_gold`` or
``source_has_gold`` dropped by more than the limit the migration is rolled back (:func:`rollback`).
The "before" is the old layout's own data read by ragctl's pipeline in this process, not the legacy
container's API: that API is the user's own code (the guide's answers only ``{"answer"}``: no cited
sources, so ``source_has_gold`` could not be measured), it is stopped before the backup so that the
backup is consistent, and what the migration can lose or damage is the data, which this reads.  The legacy container is stopped, not removed, until ``--finalize``;
``--rollback`` removes the new stack, puts ``data/`` back from the archive and starts the legacy
container again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragctl.ops.backup import BackupError

LEDGER = "run/migrate.json"
STEPS = ("inventory", "stop", "backup", "configure", "image", "restore", "health", "verify")
RISKY = {"stop": "stops the legacy container (it is kept, and --rollback starts it again)",
         "restore": "replaces data/ with the archive's copy and creates the stack's volumes"}


class MigrationError(BackupError):
    code = "migration_failed"


@dataclass(frozen=True)
class MigrationGate:
    """The question set that gates a migration: how a run is asked (``ragctl.ops.gate.Measure``), what
    answers before (the old layout read in this process) and after (the stack's client), the drop allowed."""

    measure: Callable[[Any, str], dict]
    open_before: Callable[[], Any]
    open_after: Callable[[], Any]
    max_drop: float


@dataclass
class Step:
    name: str
    description: str
    risky: bool
    done: bool

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.name, "description": self.description, "risky": self.risky, "done": self.done}


def read_ledger(root: Path) -> dict[str, Any]:
    path = root / LEDGER
    return json.loads(path.read_text()) if path.is_file() else {}


def write_ledger(root: Path, ledger: dict[str, Any]) -> None:
    from ragctl.runtime.local import write_json_atomic

    (root / LEDGER).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / LEDGER, ledger)


def find_legacy_containers(root: Path, names: list[str] | None = None) -> list[Any]:
    """The named containers, or every container (of any state) that mounts ROOT/data and is not ours."""
    from docker.errors import NotFound

    from ragctl.deploy import LABEL_KEY
    from ragctl.engine import engine

    client = engine()
    if names:
        found = []
        for name in names:
            try:
                found.append(client.containers.get(name))
            except NotFound as exc:
                raise MigrationError(f"No container named {name!r}.", "docker ps -a   (then --container NAME)") from exc
        ours = [c.name for c in found if LABEL_KEY in c.labels]
        if ours:
            raise MigrationError(f"{', '.join(ours)} belong to a ragctl stack, not the legacy layout.",
                                 "name the legacy container: --container NAME")
        return found
    data = str((root / "data").resolve())
    return [c for c in client.containers.list(all=True, ignore_removed=True)
            if LABEL_KEY not in c.labels
            and any(m.get("Type") == "bind" and str(Path(m.get("Source", "")).resolve()) == data
                    for m in c.attrs.get("Mounts") or [])]


def legacy_chroma(root: Path) -> Path:
    """Where the old layout keeps Chroma's files: data/chroma, or data/ itself."""
    for candidate in (root / "data" / "chroma", root / "data"):
        if (candidate / "chroma.sqlite3").is_file():
            return candidate
    raise MigrationError(f"No Chroma files (chroma.sqlite3) under {root / 'data'}: this is not the old layout.",
                         "run ragctl migrate in the folder that holds the legacy data/ and logs/")


def inventory(root: Path) -> dict[str, Any]:
    from ragctl.backends.embedded import probe_vectors, sqlite_catalog_documents
    from stack.settings import load_settings

    chroma = legacy_chroma(root)
    settings = load_settings(root, {"chroma_url": None})
    if chroma != settings.data_path / "chroma":
        raise MigrationError(f"Chroma's files are in {chroma}; ragctl expects {settings.data_path / 'chroma'}.",
                             f"move them there (mkdir -p data/chroma && mv {chroma}/chroma.sqlite3 {chroma}/*-* "
                             "data/chroma/), then ragctl migrate")
    counts = {name: info["count"] for name, info in probe_vectors(settings)["collections"].items()}
    documents = sqlite_catalog_documents(root)
    return {"vectors": counts, "documents": {c: len(ids) for c, ids in documents.items()}}


def plan(root: Path, containers: list[Any]) -> list[Step]:
    ledger = read_ledger(root)
    done = ledger.get("done", [])
    names = ", ".join(c.name for c in containers) or "none found (nothing to stop)"
    descriptions = {
        "inventory": "count documents and vectors in data/",
        "stop": f"stop the legacy container(s): {names}",
        "backup": "back up data/, extracted_results/ and the configuration to backups/, and verify the archive",
        "configure": "set runtime = \"docker\" in ragctl.toml and render compose.yaml, Dockerfile, nginx.conf, .env",
        "image": "pre-flight: the stack's image is on the engine (else ragctl build, then ragctl migrate again), "
                 "its container names and ports are free",
        "restore": "restore the archive into the stack: vectors into the Chroma volume; start it; verify",
        "health": "ragctl health must pass",
        "verify": "the stack's vector count must equal the inventory's",
    }
    return [Step(name, descriptions[name], name in RISKY, name in done) for name in STEPS]


def migrate(root: Path, *, container_names: list[str] | None = None, wait_s: float = 600,
            say: Callable[[str], None] | None = None, gate: MigrationGate | None = None) -> dict[str, Any]:
    """Run (or resume) the migration.  The caller has shown the plan and confirmed.

    With ``gate``: the ledger keeps the "before" run (``eval_before``) so that a resumed migration is
    compared with it; the verdict is ``gate``; refused, the migration is rolled back (state
    ``rolled_back``).  A gate given only after the old layout was moved has no "before": ``gate_skipped``."""
    from ragctl.deploy import write_rendered
    from ragctl.ops.backup import backup, read_archive, restore
    from ragctl.project import ProjectConfig, set_config_value

    say = say or (lambda _text: None)
    ledger = read_ledger(root)
    if ledger.get("state") == "finalized":
        raise MigrationError("This project's migration was finalized.", "ragctl status")
    if ledger.get("state") in (None, "rolled_back"):
        ledger = {"state": "in_progress", "started": time.time(), "done": [],
                  "previous_runtime": ProjectConfig.load(root).runtime}
    done: list[str] = ledger["done"]
    if "legacy" not in ledger:
        ledger["legacy"] = [c.name for c in find_legacy_containers(root, container_names)]

    def finish(step: str, **data: Any) -> None:
        done.append(step)
        ledger.setdefault("steps", {})[step] = {"at": time.time(), **data}
        write_ledger(root, ledger)

    if "inventory" not in done:
        say("inventory")
        before = inventory(root)
        ledger["before"] = before
        finish("inventory", **before)
    if "stop" not in done:
        from ragctl.engine import engine

        for name in ledger["legacy"]:
            say(f"stopping {name}")
            engine().containers.get(name).stop(timeout=30)
        finish("stop", stopped=ledger["legacy"])
    if "backup" not in done:
        say("backup")
        archive = root / "backups" / f"pre-migration-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"
        set_config_value(root, "project", "runtime", "embedded")  # the old layout, read in-process
        backup(root, archive)
        verification = read_archive(archive)
        if not verification.ok:
            raise MigrationError("The pre-migration backup does not verify: " + "; ".join(verification.problems))
        ledger["backup"] = str(archive)
        finish("backup", file=str(archive))
    if gate is not None and "eval_before" not in ledger:
        if "configure" in done:  # data/ and ragctl.toml are the stack's now: the old layout is not there to ask
            ledger["gate_skipped"] = "the old layout was moved by an earlier run given no question set"
        else:
            say("asking the question set of the old layout")
            ledger["eval_before"] = gate.measure(gate.open_before(), ", before (the old layout)")
            write_ledger(root, ledger)
    if "configure" not in done:
        say("configure")
        set_config_value(root, "project", "runtime", "docker")
        # The stack keeps its state in its PostgreSQL: the restore below moves the old layout's SQLite
        # catalog, postings, text and uploads into it (checked), as ragctl upgrade does.
        set_config_value(root, "stack", "database", "postgres")
        write_rendered(root)
        finish("configure")
    if "image" not in done:
        from ragctl.errors import PreflightFailed
        from ragctl.runtime import runtime_for

        try:
            # The migration's target is the Compose stack, whatever ragctl.toml said before it.
            runtime_for(root, "docker").preflight()
        except PreflightFailed as exc:
            failed = [c for c in exc.checks if c.status == "fail"]
            raise MigrationError("The stack cannot start yet; the migration stops here (resumable): "
                                 + "; ".join(f"{c.name}: {c.detail}" for c in failed),
                                 f"{failed[0].hint}, then ragctl migrate --yes") from exc
        finish("image")
    if "restore" not in done:
        say("restore into the stack")
        result = restore(root, Path(ledger["backup"]), progress=say)
        if not result["verified"]:
            raise MigrationError("The restored stack does not match the backup: " + "; ".join(result["problems"]),
                                 "ragctl migrate --rollback")
        finish("restore")
    if "health" not in done:
        from ragctl.ops.health import collect

        say("health")
        report = collect(root)
        if not report.healthy:
            failing = [f"{c.name}: {c.detail}" for c in report.checks if c.status == "fail"]
            raise MigrationError("The new stack is not healthy: " + "; ".join(failing),
                                 "ragctl doctor   (then ragctl migrate --yes to resume, or --rollback)")
        finish("health")
    if "verify" not in done:
        from ragctl.runtime import runtime_for
        from ragctl.runtime.capabilities import Diagnosable, require

        after = require(runtime_for(root), Diagnosable, "count its vectors").vector_counts()
        before = ledger["before"]["vectors"]
        if after != before:
            raise MigrationError(f"Vector counts differ: before {before}, after {after}.", "ragctl migrate --rollback")
        finish("verify", vectors=after)
    if gate is not None and ledger.get("eval_before"):
        from ragctl.ops.eval import gate as verdict_of

        say("asking the question set of the stack")
        after = gate.measure(gate.open_after(), ", after (the stack)")
        ledger["eval_after"] = after
        ledger["gate"] = verdict_of(ledger["eval_before"], after, gate.max_drop)
        write_ledger(root, ledger)
        if not ledger["gate"]["passed"]:
            say("the answers got worse: rolling the migration back")
            return rollback(root, say=say)
    ledger["state"] = "migrated"
    write_ledger(root, ledger)
    return ledger


def finalize(root: Path) -> dict[str, Any]:
    """Remove the stopped legacy container(s); the pre-migration backup stays."""
    from docker.errors import NotFound

    from ragctl.engine import engine

    ledger = read_ledger(root)
    if ledger.get("state") != "migrated":
        raise MigrationError(f"Nothing to finalize: the migration is {ledger.get('state') or 'not started'}.",
                             "ragctl migrate --yes")
    removed = []
    for name in ledger.get("legacy", []):
        try:
            container = engine().containers.get(name)
        except NotFound:
            continue
        if container.status == "running":
            raise MigrationError(f"The legacy container {name} is running again; it is not removed.",
                                 f"docker stop {name}, then ragctl migrate --finalize")
        container.remove()
        removed.append(name)
    ledger["state"], ledger["finalized"], ledger["removed"] = "finalized", time.time(), removed
    write_ledger(root, ledger)
    return ledger


def rollback(root: Path, *, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Back to the old layout: the stack and its volumes removed, data/ restored, legacy started."""
    from ragctl.engine import engine
    from ragctl.ops.backup import restore
    from ragctl.project import set_config_value

    say = say or (lambda _text: None)
    ledger = read_ledger(root)
    if ledger.get("state") not in ("in_progress", "migrated"):
        raise MigrationError(f"Nothing to roll back: the migration is {ledger.get('state') or 'not started'}.")
    if "configure" in ledger["done"]:
        from ragctl.runtime import runtime_for

        say("removing the new stack and its volumes")
        runtime_for(root, "docker").down(volumes=True)
    if ledger.get("backup"):
        set_config_value(root, "project", "runtime", "embedded")
        say("restoring data/ from the pre-migration backup")
        result = restore(root, Path(ledger["backup"]), progress=say)
        if not result["verified"]:
            raise MigrationError("data/ does not match the pre-migration backup: " + "; ".join(result["problems"]))
    set_config_value(root, "project", "runtime", ledger.get("previous_runtime") or "embedded")
    for name in ledger.get("legacy", []):
        say(f"starting {name}")
        engine().containers.get(name).start()
    ledger["state"], ledger["rolled_back"] = "rolled_back", time.time()
    write_ledger(root, ledger)
    return ledger
