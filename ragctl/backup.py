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
from ragctl.output import RagctlError

MANIFEST = "manifest.json"
FORMAT = 1
HOST_TREES = ("data", "extracted_results")
LOCAL_ONLY = ("chroma", "redis")
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


# -- where a runtime keeps things ------------------------------------------------------------
class Site:
    """One runtime's places: its Chroma and Redis files, and how to quiesce it."""

    def __init__(self, root: Path) -> None:
        from ragctl.project import project_runtime

        self.root = root
        self.runtime = project_runtime(root)
        self.running = False
        if self.runtime == "docker":
            from ragctl.runtime.docker import DockerRuntime

            self.docker = DockerRuntime(root)
            self.running = self.docker.status().running
        elif self.runtime == "local":
            from ragctl.runtime.local import LocalRuntime

            self.local = LocalRuntime(root)
            self.running = self.local.status().running

    def settings(self):
        if self.runtime == "local":
            return self.local.client_settings()
        from stack.settings import load_settings

        return load_settings(self.root)

    def maintenance(self, action: str) -> dict[str, Any]:
        """pause | resume | bgsave, run where the services are."""
        if self.runtime == "docker":
            services = {s.service for s in self.docker.services() if s.running}
            where = "worker" if "worker" in services else "api"
            code, output = self.docker.exec(where, ["python", "-m", "stack.maintenance", action], timeout_s=900)
            try:
                return json.loads(output.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                raise BackupError(f"stack.maintenance {action} failed in {where} (exit {code}): {output[-800:]}",
                                  f"ragctl logs {where}") from None
        from stack import maintenance

        return getattr(maintenance, action)(self.settings())

    def vector_counts(self) -> dict[str, int]:
        if self.runtime == "docker":
            from ragctl.health import RunningStack

            report = RunningStack(self.root).probe()
            chroma = report.get("chroma", {})
            if not chroma.get("ok"):
                raise BackupError(f"Chroma did not answer: {chroma.get('error') or report.get('error')}",
                                  "ragctl health")
            return {name: c["count"] for name, c in chroma["collections"].items()}
        from stack.probe import probe_chroma

        settings = self.settings()
        if not self.running:
            settings = settings.model_copy(update={"chroma_url": None})
        return {name: c["count"] for name, c in probe_chroma(settings)["collections"].items()}

    # -- reading ------------------------------------------------------------------------------
    def store_members(self, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
        """(arcname, reader, size) for the Chroma files and the Redis snapshot."""
        if self.runtime == "docker":
            yield from self._container_files("chroma", "/chroma", "chroma")
            if redis_dump:
                yield from self._container_files("redis", redis_dump, "redis")
            return
        data = self.root / "data"
        for tree in LOCAL_ONLY:
            base = data / tree
            if tree == "redis" and not redis_dump:
                continue
            for path in sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []:
                if tree == "redis" and path.name != "dump.rdb":
                    continue  # the AOF is rebuilt from the snapshot
                with path.open("rb") as handle:
                    yield f"{tree}/{path.relative_to(base).as_posix()}", handle, path.stat().st_size

    def _container_files(self, service: str, path: str, prefix: str) -> Iterator[tuple[str, IO[bytes], int]]:
        from ragctl.engine import engine
        from ragctl.runtime.docker import SERVICE_LABEL

        container = next((c for c in self.docker.containers(engine(timeout_s=600))
                          if c.labels.get(SERVICE_LABEL) == service), None)
        if container is None:
            raise BackupError(f"No {service} container in {self.docker.name}.", "ragctl up")
        stream, _ = container.get_archive(path)
        reader = _ChunkReader(stream)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
                yield f"{prefix}/{relative}", tar.extractfile(member), member.size


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks) -> None:
        self.chunks, self.pending = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


def _catalog_documents(root: Path) -> dict[str, list[str]]:
    path = root / "data" / "catalog.sqlite"
    if not path.is_file():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT collection, id FROM documents ORDER BY collection, id").fetchall()
    documents: dict[str, list[str]] = {}
    for collection, document_id in rows:
        documents.setdefault(collection, []).append(document_id)
    return documents


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
            if tree == "data" and relative.parts[0] in (*LOCAL_ONLY, ".incoming", "celerybeat-schedule"):
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

    def __init__(self, site: Site) -> None:
        super().__init__(name="intake-hold", daemon=True)
        self.site, self.stopping = site, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(30):
            with suppress(Exception):  # the next renewal tries again; the copy goes on
                self.site.maintenance("hold")

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


# -- backup ----------------------------------------------------------------------------------
def backup(root: Path, out: Path, *, progress: Callable[[str], None] | None = None) -> Manifest:
    from ragctl.deploy import project_name

    say = progress or (lambda _text: None)
    site = Site(root)
    if site.runtime in ("docker", "local") and not site.running:
        raise BackupError(f"The {site.runtime} stack of {root} is not running; a backup reads its Redis and Chroma.",
                          f"ragctl -p {root} up", exit_code=5, code="not_running")
    settings = site.settings()
    paused = False
    try:
        if site.running:
            say("pausing intake and workers")
            result = site.maintenance("pause")
            if not result.get("paused"):
                raise BackupError(f"Could not pause the stack: {result.get('error')}",
                                  "wait for the running ingests (ragctl documents list), then retry")
            paused = True
            holder = _Holder(site)
            holder.start()
            say("Redis BGSAVE")
            dump = site.maintenance("bgsave")["path"]
        else:
            dump = None
        manifest = Manifest(format=FORMAT, ragctl_version=__version__,
                            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), project=project_name(root),
                            runtime=site.runtime, embed_model=settings.embed_model,
                            documents=_catalog_documents(root), vectors=site.vector_counts())
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
            for arcname, reader, size in site.store_members(dump):
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
            site.maintenance("resume")


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


def restore(root: Path, path: Path, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replace the deployment's data with the archive's, then verify.  The caller has confirmed."""
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
                _write(root / name, tar.extractfile(f"config/{name}"))
                config_restored.append(name)
    site = Site(root)
    was_running = site.running
    local_workers = site.local.state().workers if site.runtime == "local" and site.running else 2
    if site.runtime == "docker":
        from ragctl.deploy import write_rendered

        write_rendered(root)
        site.docker.preflight()  # image, names, ports, limits: refused before anything is removed
        say("removing the stack and its volumes")
        site.docker.down(volumes=True)
    elif site.runtime == "local" and site.running:
        say("stopping the local stack")
        site.local.down()
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
                _write(root / top / rest, tar.extractfile(member))
            elif site.runtime == "docker":
                continue  # into the volumes, below
            elif top == "redis":
                for relative, content in redis_restore_files(tar.extractfile(member).read()).items():
                    _write(root / "data" / "redis" / relative, io.BytesIO(content))
            else:
                _write(root / "data" / top / rest, tar.extractfile(member))
    if site.runtime == "docker":
        say("filling the volumes")
        _restore_volumes(site, path)
    say("verifying the files")
    problems = verify_files(root, manifest)
    if problems:
        raise BackupError("The restored files do not match the backup: " + "; ".join(problems),
                          "check the disk, then ragctl restore FILE again", code="restore_mismatch")
    started = False
    if site.runtime == "docker" or (site.runtime == "local" and was_running):
        say("starting the stack")
        if site.runtime == "docker":
            site.docker.up(wait_s=600)
        else:
            site.local.up(workers=local_workers, wait_s=120)
        started = True
    site = Site(root)
    if started:
        site.maintenance("resume")  # the snapshot was taken with intake paused and consumers cancelled
    say("verifying documents and vectors")
    problems = verify_contents(root, site, manifest)
    return {"manifest": manifest.to_dict(), "config_restored": config_restored, "started": started,
            "verified": not problems, "problems": problems}


# Redis 7 with appendonly on ignores dump.rdb when no AOF exists (it starts empty): the snapshot goes
# in as the base of a multi-part AOF, with its manifest.  The names are Redis's defaults, which the
# rendered redis.conf and the local runtime keep.
AOF_DIR, AOF_BASE = "appendonlydir", "appendonly.aof.1.base.rdb"
AOF_MANIFEST = "appendonly.aof.manifest"


def redis_restore_files(dump: bytes) -> dict[str, bytes]:
    """Relative path under Redis's dir → content, for a snapshot Redis loads with AOF on."""
    return {"dump.rdb": dump, f"{AOF_DIR}/{AOF_BASE}": dump,
            f"{AOF_DIR}/{AOF_MANIFEST}": f"file {AOF_BASE} seq 1 type b\n".encode()}


def _write(target: Path, reader: IO[bytes] | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(reader, out, 1 << 20)


def _restore_volumes(site: Site, path: Path) -> None:
    """Create (not start) redis and chroma with their fresh volumes, and copy the files in."""
    from ragctl.engine import compose, engine
    from ragctl.runtime.docker import SERVICE_LABEL

    compose(site.root, ["up", "--no-start", "redis", "chroma"], profiles=site.docker.profiles, timeout_s=300)
    targets = {"chroma": "/chroma", "redis": "/data"}
    containers = {c.labels.get(SERVICE_LABEL): c for c in site.docker.containers(engine(timeout_s=600))}
    for tree, mount in targets.items():
        buffer, folders = io.BytesIO(), set()
        with tarfile.open(path, mode="r:gz") as source, tarfile.open(fileobj=buffer, mode="w") as out:
            for member in source:
                if not (member.isfile() and member.name.startswith(tree + "/")):
                    continue
                relative = member.name.split("/", 1)[1]
                contents = {relative: source.extractfile(member).read()}
                if tree == "redis" and relative == "dump.rdb":
                    contents = redis_restore_files(contents[relative])
                for name, content in contents.items():
                    for parent in reversed(Path(name).parents[:-1]):  # tar extractors differ on missing parents
                        if parent.as_posix() not in folders:
                            folders.add(parent.as_posix())
                            folder = tarfile.TarInfo(parent.as_posix())
                            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
                            out.addfile(folder)
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(content), 0o644, member.mtime
                    out.addfile(info, io.BytesIO(content))
        if buffer.tell():
            containers[tree].put_archive(mount, buffer.getvalue())


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


def verify_contents(root: Path, site: Site, manifest: Manifest) -> list[str]:
    """What the running deployment holds, against the manifest: document ids and vector counts."""
    problems = []
    if _catalog_documents(root) != manifest.documents:
        problems.append("the catalog's documents differ from the backup's")
    try:
        counts = site.vector_counts()
    except Exception as exc:  # noqa: BLE001 - reported as a problem
        problems.append(f"could not count vectors: {exc}")
    else:
        if counts != manifest.vectors:
            problems.append(f"vector counts {counts} differ from the backup's {manifest.vectors}")
    return problems
