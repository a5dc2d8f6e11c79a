"""``ragctl backup`` and ``ragctl restore``: one archive of everything a deployment knows.

The archive (tar.gz) is the same for every runtime:

    manifest.json           versions, runtime, embedding model, counts, and the SHA-256 of every file
    config/ragctl.toml      and config/.env (the API key: the archive is written 0600)
    data/...                uploads, the catalog and the lexical index (host folder data/)
    extracted_results/...   the parser output
    chroma/...              the Chroma server's (or the embedded client's) files
    redis/dump.rdb          Redis BGSAVE: the queue and the results (stacks only)

Before copying, a stack is paused (``stack.maintenance``): uploads get 503, workers stop taking
tasks, and the copy starts once no document is mid-ingest.  Restore checks every checksum and the
compatibility first, changes nothing on ``--verify-only``, stops the stack, replaces its data,
starts it again and verifies the counts and checksums.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ragctl import __version__
from ragctl.errors import NotRunning, RagctlError
from ragctl.runtime import Runtime, runtime_for
from ragctl.runtime.base import STORE_TREES, is_running, write_file
from ragctl.runtime.capabilities import BacksUp, Diagnosable, client_settings, require
from ragctl.runtimes import kind_of
from stack.contract import write_audit_action

MANIFEST = "manifest.json"
FORMAT = 1
HOST_TREES = ("data", "extracted_results")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")  # under data/ for the local runtime and embedded mode; separate trees here


class BackupError(RagctlError):
    code = "backup_error"


@dataclass
class Manifest:
    format: int
    ragctl_version: str
    created: str
    project: str
    runtime: str
    embed_model: str
    documents: dict[str, list[str]]  # collection → document ids
    vectors: dict[str, int]  # collection → Chroma count
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # arcname → {sha256, size}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        self.digest.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _host_files(root: Path) -> Iterator[tuple[str, Path]]:
    for name in ("ragctl.toml", ".env"):
        if (root / name).is_file():
            yield f"config/{name}", root / name
    for tree in HOST_TREES:
        base = root / tree
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            relative = path.relative_to(base)
            if tree == "data" and relative.parts[0] in (*STORE_TREES, ".incoming", "celerybeat-schedule"):
                continue
            if relative.parts[0] == "uploads" and ".incoming" in relative.parts:
                continue
            if path.name.endswith(SQLITE_SIDE_FILES):
                continue  # the database is copied whole, with its WAL, through SQLite's backup API
            yield f"{tree}/{relative.as_posix()}", path


@contextmanager
def _consistent_copy(path: Path) -> Iterator[Path]:
    """``path`` itself, or for an SQLite database a snapshot made with SQLite's backup API (whole,
    its WAL folded in, readable without side files)."""
    with path.open("rb") as handle:
        is_sqlite = handle.read(16) == b"SQLite format 3\x00"
    if not is_sqlite:
        yield path
        return
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / path.name
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(snapshot)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
        yield snapshot


class _Holder(threading.Thread):
    """Renews the intake pause every 30 s while a backup copies (the flag lives 90 s)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="intake-hold", daemon=True)
        self.runtime, self.stopping = runtime, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(30):
            with suppress(Exception):  # the next renewal tries again; the copy goes on
                self.runtime.maintenance("hold")

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


# -- backup ----------------------------------------------------------------------------------
def backup(root: Path, out: Path, *, progress: Callable[[str], None] | None = None,
           runtime: Runtime | None = None) -> Manifest:
    say = progress or (lambda _text: None)
    runtime = runtime or runtime_for(root)
    require(runtime, BacksUp, "back up its data")
    require(runtime, Diagnosable, "pause its intake and workers for a backup")
    running = is_running(runtime)
    if kind_of(runtime.kind).has_services and not running:
        raise NotRunning(f"The {runtime.kind} stack of {root} is not running; a backup reads its Redis and Chroma.",
                         f"ragctl -p {root} up")
    settings = client_settings(runtime)
    paused = False
    try:
        if running:
            say("pausing intake and workers")
            result = runtime.maintenance("pause")
            if not result.get("paused"):
                raise BackupError(f"Could not pause the stack: {result.get('error')}",
                                  "wait for the running ingests (ragctl documents list), then retry")
            paused = True
            holder = _Holder(runtime)
            holder.start()
            say("Redis BGSAVE")
            dump = runtime.maintenance("bgsave")["path"]
        else:
            dump = None
        manifest = Manifest(format=FORMAT, ragctl_version=__version__,
                            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), project=runtime.project_config.name,
                            runtime=runtime.kind, embed_model=settings.embed_model,
                            documents=runtime.catalog_documents(), vectors=runtime.vector_counts())
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the archive holds .env
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            def add(arcname: str, reader: IO[bytes], size: int) -> None:
                hashing = _Hashing(reader)
                info = tarfile.TarInfo(arcname)
                info.size, info.mode, info.mtime = size, 0o600, int(time.time())
                tar.addfile(info, io.BufferedReader(hashing))
                manifest.files[arcname] = {"sha256": hashing.digest.hexdigest(), "size": size}

            say("copying the host folders")
            for arcname, path in _host_files(root):
                with _consistent_copy(path) as copy, copy.open("rb") as handle:
                    add(arcname, handle, copy.stat().st_size)
            say("copying Chroma and Redis")
            for arcname, reader, size in runtime.store_members(dump):
                add(arcname, reader, size)
            body = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(body))
        partial.replace(out)
        return manifest
    finally:
        if paused:
            holder.stop()
            runtime.maintenance("resume")


# -- restore ---------------------------------------------------------------------------------
@dataclass
class Verification:
    manifest: Manifest
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_archive(path: Path) -> Verification:
    """Every member's checksum against the manifest, and the manifest's compatibility."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist.", "ragctl backup --out FILE", code="not_found")
    hashes: dict[str, tuple[str, int]] = {}
    manifest_data = None
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                reader = tar.extractfile(member)
                if member.name == MANIFEST:
                    manifest_data = json.loads(reader.read())
                    continue
                digest = hashlib.sha256()
                while block := reader.read(1 << 20):
                    digest.update(block)
                hashes[member.name] = (digest.hexdigest(), member.size)
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a readable ragctl backup ({exc}).", "check the file; make one with "
                          "ragctl backup", code="bad_backup") from exc
    if not isinstance(manifest_data, dict) or manifest_data.get("format") != FORMAT:
        raise BackupError(f"{path} has no ragctl backup manifest (format {FORMAT}).", "ragctl backup",
                          code="bad_backup")
    manifest = Manifest(**manifest_data)
    problems = []
    for arcname, expected in manifest.files.items():
        got = hashes.get(arcname)
        if got is None:
            problems.append(f"{arcname}: missing from the archive")
        elif got[0] != expected["sha256"]:
            problems.append(f"{arcname}: checksum differs (the archive was changed or damaged)")
    problems += [f"{name}: in the archive but not in the manifest" for name in sorted(set(hashes) - set(manifest.files))]
    if manifest.ragctl_version.split(".")[:2] != __version__.split(".")[:2]:
        problems.append(f"made by ragctl {manifest.ragctl_version}; this is {__version__} (restore with the same "
                        "minor version)")
    return Verification(manifest, problems)


def check_compatible(root: Path, manifest: Manifest) -> list[str]:
    from stack.settings import load_settings

    if not (root / "ragctl.toml").is_file():
        return []  # the backup's configuration comes with it
    configured = load_settings(root).embed_model
    if configured != manifest.embed_model:
        return [(f"the backup's vectors are from {manifest.embed_model}, this project is configured for {configured}: "
                f"set embed_model = \"{manifest.embed_model}\" in ragctl.toml (then ragctl reindex to change model)")]
    return []


def restore(root: Path, path: Path, *, progress: Callable[[str], None] | None = None,
            runtime: Runtime | None = None) -> dict[str, Any]:
    """Replace the deployment's data with the archive's, then verify.  The caller has confirmed.

    The order: check the archive, stop what runs (the runtime refuses first if it could not start
    again), replace the host folders, put the stores back, verify the files, start again, resume
    intake, verify documents and vectors."""
    say = progress or (lambda _text: None)
    verification = read_archive(path)
    problems = verification.problems + check_compatible(root, verification.manifest)
    if problems:
        raise BackupError("The backup cannot be restored: " + "; ".join(problems), "ragctl restore FILE --verify-only",
                          code="incompatible")
    manifest = verification.manifest
    root.mkdir(parents=True, exist_ok=True)
    config_restored = []
    with tarfile.open(path, mode="r:gz") as tar:
        for name in ("ragctl.toml", ".env"):
            if not (root / name).is_file() and f"config/{name}" in manifest.files:
                write_file(root / name, tar.extractfile(f"config/{name}"))
                config_restored.append(name)
    runtime = runtime or runtime_for(root)
    require(runtime, BacksUp, "restore its data")
    require(runtime, Diagnosable, "resume its workers after a restore")
    say(f"stopping the {runtime.kind} stack")
    was_running = runtime.stop_for_restore()
    say("writing the host folders")
    for tree in HOST_TREES:
        shutil.rmtree(root / tree, ignore_errors=True)
        (root / tree).mkdir(parents=True)
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or member.name == MANIFEST or member.name.startswith("config/"):
                continue
            top, _, rest = member.name.partition("/")
            if ".." in Path(rest).parts or Path(rest).is_absolute():
                raise BackupError(f"Refusing the unsafe member name {member.name!r}.", code="bad_backup")
            if top in HOST_TREES:
                write_file(root / top / rest, tar.extractfile(member))
    say("putting back the vector store and the queue")
    runtime.restore_stores(path)
    say("verifying the files")
    problems = verify_files(root, manifest)
    if problems:
        raise BackupError("The restored files do not match the backup: " + "; ".join(problems),
                          "check the disk, then ragctl restore FILE again", code="restore_mismatch")
    say("starting the stack")
    started = runtime.start_after_restore(was_running)
    if started:
        runtime.maintenance("resume")  # the snapshot was taken with intake paused and consumers cancelled
    say("verifying documents and vectors")
    problems = verify_contents(root, runtime, manifest)
    write_audit_action(client_settings(runtime).logs_path / "audit", "restore", archive=str(path),
                       created=manifest.created, verified=not problems, problems=problems[:5])
    return {"manifest": manifest.to_dict(), "config_restored": config_restored, "started": started,
            "verified": not problems, "problems": problems}


def verify_files(root: Path, manifest: Manifest) -> list[str]:
    """The host files as written, against the manifest (before anything opens them)."""
    problems = []
    for arcname, info in manifest.files.items():
        if arcname.split("/", 1)[0] not in HOST_TREES:
            continue
        path = root / arcname
        if not path.is_file():
            problems.append(f"{arcname}: not restored")
        elif _sha256(path) != info["sha256"]:
            problems.append(f"{arcname}: checksum differs after restore")
    return problems


def verify_contents(root: Path, runtime: Runtime, manifest: Manifest) -> list[str]:
    """What the running deployment holds, against the manifest: document ids and vector counts."""
    problems = []
    if runtime.catalog_documents() != manifest.documents:
        problems.append("the catalog's documents differ from the backup's")
    try:
        counts = runtime.vector_counts()
    except Exception as exc:  # noqa: BLE001 - reported as a problem
        problems.append(f"could not count vectors: {exc}")
    else:
        if counts != manifest.vectors:
            problems.append(f"vector counts {counts} differ from the backup's {manifest.vectors}")
    return problems
