"""What every runtime offers the control plane.

A runtime runs the project's services somewhere (``embedded``: nowhere, the CLI does the work;
``local``: supervised processes on loopback; ``docker``: the rendered Compose stack) and answers
for them: their state, their lifecycle, their logs, where clients reach them, a probe run where the
services are, and the data a backup copies.  ``health``, ``doctor``, ``backup``, ``restore``,
``migrate`` and ``support`` speak only to this interface, and ``ragctl.runtime.runtime_for`` is
the one place that picks an implementation.  A new runtime is one module that subclasses
:class:`Runtime`; ``tests/fakes.py`` has one that runs nothing.
"""

from __future__ import annotations

import io
import json
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Protocol

from ragctl.checks import Check
from ragctl.errors import NotRunning, RagctlError, UsageError
from ragctl.project import ProjectConfig

if TYPE_CHECKING:
    import ssl

    from stack.settings import Settings

#: Archive members (backup) → where they live: the vector store's files and the Redis snapshot.
STORE_TREES = ("chroma", "redis")
PROBE_TIMEOUT_S = 120


class ServiceView(Protocol):
    """One service as ``ps`` shows it, whatever the runtime."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def ready(self) -> bool | None: ...

    def summary(self) -> str:
        """One line for a check's evidence: state, and pid or replicas."""

    def label(self) -> str:
        """What a restart names: the process and its pid, or the containers."""

    def columns(self) -> dict[str, str]:
        """``ps``'s table row (column → text; the columns differ by runtime)."""

    def ps_row(self) -> dict[str, Any]:
        """``ps --json``'s row."""


class StackStatus(Protocol):
    running: bool
    runtime: str
    api_url: str | None
    flower_url: str | None
    flower_auth: str | None

    @property
    def services(self) -> Sequence[ServiceView]: ...

    def to_dict(self) -> dict[str, Any]: ...


class Runtime(ABC):
    """The services of one project, wherever they run."""

    kind: ClassVar[str]
    #: The command that starts this runtime's stack (hints say it).
    start_command: ClassVar[str] = "ragctl up"
    #: The command that gets more (or fresh) workers taking tasks.
    more_workers_command: ClassVar[str] = "ragctl restart worker"
    #: False for a runtime that runs no services (embedded): no service checks, no probe over the wire.
    has_services: ClassVar[bool] = True
    #: What ``ragctl init`` asks for this runtime ([stack] keys), and the command it suggests next.
    init_questions: ClassVar[tuple[str, ...]] = ()
    first_step: ClassVar[str] = "up"
    #: What ``ragctl render`` writes (file → template); None: the Compose stack's files.
    rendered_files: ClassVar[dict[str, str] | None] = None

    def __init__(self, root: Path, config: ProjectConfig | None = None) -> None:
        self.root = Path(root)
        self.project_config = config or ProjectConfig.load(self.root)
        #: What ``up`` decided on its own for the user (a node labelled, a placement chosen): listed in
        #: ``up``'s output, and handed to ``on_note`` as it happens (the CLI prints it).
        self.notes: list[str] = []
        self.on_note: Callable[[str], None] | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)
        if self.on_note is not None:
            self.on_note(text)

    # -- state and lifecycle -------------------------------------------------------------------
    @abstractmethod
    def status(self) -> StackStatus: ...

    @abstractmethod
    def up(self, *, services: list[str] | None = None, workers: int | None = None, flower: bool = False,
           wait_s: float | None = None, progress: Callable[[list[Any]], None] | None = None) -> list[Any]: ...

    @abstractmethod
    def down(self, *, volumes: bool = False) -> list[str]:
        """Stop the stack (and delete its data with ``volumes``); the names of what stopped."""

    @abstractmethod
    def restart(self, service: str) -> list[Any]: ...

    @abstractmethod
    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100) -> Iterator[str]: ...

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[Any]], None] | None = None) -> list[Any]:
        raise UsageError(f"scale drives a Compose stack; this project runs {self.kind}.",
                         "ragctl up --runtime local --workers N   (the local runtime takes its worker count at start)")

    @property
    def running(self) -> bool:
        return self.status().running

    def require_running(self) -> StackStatus:
        status = self.status()
        if not status.running:
            raise NotRunning(f"The {self.kind} stack of {self.root} is not running.",
                             f"ragctl -p {self.root} up")
        return status

    def api_url(self) -> str | None:
        """Where the CLI's data commands reach the stack; None when they run in-process."""
        return self.require_running().api_url

    def api_verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for :meth:`api_url`: an SSL context trusting a stack's self-signed
        certificate, or True (the system's trust store).  Never False."""
        return True

    # -- facts for doctor's security checks (ragctl/ops/security.py) ------------------------------
    #: The command that re-renders the stack's configuration (secrets from .env, ports) and restarts it.
    reapply_command: ClassVar[str] = "ragctl down && ragctl up"

    def store_ports(self) -> list[tuple[str, str, int]]:
        """(service, host address, port) where the stack's data stores (Redis, Chroma, Postgres)
        listen on this host; what is unpublished (an internal network) is not listed."""
        return []

    def chroma_guard(self) -> dict[str, Any] | None:
        """How the Chroma server is guarded (``isolated``: its own port reachable by the token gate
        only); None where this runtime runs no Chroma server."""
        return None

    def container_users(self) -> dict[str, str] | None:
        """Container name → the user it runs as (``Config.User``); None where services are not containers."""
        return None

    def edge(self) -> list[tuple[str, str, int, bool]]:
        """(what, bind address, port, TLS on) of the stack's published entry points (API, Nginx)."""
        return []

    @property
    def gpu_wanted(self) -> bool:
        return False

    # -- services' own view --------------------------------------------------------------------
    def client_settings(self) -> Settings:
        """The project's settings as a client of its stores (Redis, Chroma) from this machine."""
        from stack.settings import load_settings

        return load_settings(self.root)

    def run_module(self, module: str, args: list[str], *, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
        """``python -m MODULE ARGS`` where the services are; its last output line, parsed as JSON."""
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                              timeout=timeout_s, check=False, cwd=self.root,
                              env=self._module_env())
        return parse_last_json(module, done.returncode, done.stdout + done.stderr, where="ragctl")

    def _module_env(self) -> dict[str, str]:
        import os

        settings = self.client_settings()
        env = {**os.environ, "RAG_PROJECT_ROOT": str(self.root), "REDIS_URL": settings.redis_url}
        if settings.chroma_url:
            env["CHROMA_URL"] = settings.chroma_url
        else:
            env.pop("CHROMA_URL", None)
        return env

    def probe(self) -> dict[str, Any]:
        """Redis, Celery, the queue, Chroma and the GPU as the services see them (``stack.probe``)."""
        try:
            return self.run_module("stack.probe", [])
        except RagctlError as exc:
            return {"error": exc.message}

    def maintenance(self, action: str) -> dict[str, Any]:
        """pause | hold | resume | bgsave (``stack.maintenance``), run where the services are."""
        return self.run_module("stack.maintenance", [action], timeout_s=900)

    def vector_counts(self) -> dict[str, int]:
        """Collection → vectors, as the vector store counts them."""
        report = self.probe()
        chroma = report.get("chroma") or {}
        if not chroma.get("ok"):
            raise RagctlError(f"Chroma did not answer: {chroma.get('error') or report.get('error')}", "ragctl health",
                              code="store_unavailable")
        return {name: c["count"] for name, c in chroma["collections"].items()}

    # -- checks -------------------------------------------------------------------------------
    def service_checks(self) -> list[Check]:
        """One check per service: does it run (and answer its healthcheck)."""
        checks = []
        for service in self.status().services:
            if service.ready or service.state in ("running", "healthy"):
                checks.append(Check(f"service {service.name}", "ok", service.summary()))
            else:
                checks.append(Check(f"service {service.name}", "fail", service.summary(),
                                    "the process is down or restarting", f"ragctl restart {service.name}   "
                                    f"(then ragctl logs {service.name})", ("restart", service.name)))
        return checks

    def environment_checks(self, *, running: bool) -> list[Check]:
        """What this runtime needs from the host (engine, Compose, ports, GPU, limits)."""
        return []

    def diagnose_redis(self, probe: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
        """(cause, fix, action) for a Redis the services cannot reach."""
        return "Redis is unreachable", "ragctl restart redis", ("restart", "redis")

    def recent_errors(self, service: str, lines: int = 200) -> list[str]:
        try:
            found = [line for line in self.logs(service, lines=lines) if "Traceback" in line or "ERROR" in line]
        except RagctlError:
            return []
        return found[-5:]

    def recent_logs(self, lines: int) -> dict[str, str]:
        """Service → its last log lines (a support bundle carries them)."""
        logs = {}
        for service in self.status().services:
            try:
                logs[service.name] = "\n".join(self.logs(service.name, lines=lines))
            except RagctlError as exc:
                logs[service.name] = f"(no logs: {exc.message})"
        return logs

    # -- backup and restore -------------------------------------------------------------------
    def catalog_documents(self) -> dict[str, list[str]]:
        """Collection → document ids, as the catalog holds them (backup's manifest, restore's check)."""
        return sqlite_catalog_documents(self.root)

    def store_members(self, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
        """(arcname, reader, size) for the vector store's files and the Redis snapshot."""
        data = self.root / "data"
        for tree in STORE_TREES:
            base = data / tree
            if tree == "redis" and not redis_dump:
                continue
            for path in sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []:
                if tree == "redis" and path.name != "dump.rdb":
                    continue  # the AOF is rebuilt from the snapshot
                with path.open("rb") as handle:
                    yield f"{tree}/{path.relative_to(base).as_posix()}", handle, path.stat().st_size

    @property
    def uses_postgres(self) -> bool:
        """The state lives in the stack's PostgreSQL service (else in SQLite files under data/)."""
        return False

    def upgrade_state(self, *, replace: bool = False, wait_s: float | None = None,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Move state kept in files on this host into the stack's PostgreSQL (``ragctl upgrade``)."""
        return {"upgraded": False, "database": "sqlite",
                "reason": f"the {self.kind} runtime keeps its state in SQLite files on this host by design "
                          "(one host, no database server)"}

    def stop_for_restore(self) -> bool:
        """Stop what must not run while the data is replaced; True when it ran before."""
        return False

    def restore_stores(self, archive: Path) -> None:
        """Put the archive's store members where this runtime keeps them (data/ by default)."""
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                top, _, rest = member.name.partition("/")
                if not member.isfile() or top not in STORE_TREES:
                    continue
                if top == "redis":
                    if rest == "dump.rdb":
                        for relative, content in redis_restore_files(tar.extractfile(member).read()).items():
                            write_file(self.root / "data" / "redis" / relative, io.BytesIO(content))
                    continue
                write_file(self.root / "data" / top / rest, tar.extractfile(member))

    def start_after_restore(self, was_running: bool) -> bool:
        """Start the stack again when restore stopped it; True when it was started."""
        return False


def store_tree_tar(archive: Path, tree: str, *, owner: int | None = None) -> bytes:
    """A tar (for ``put_archive``) of one store tree of a backup archive (``chroma`` or ``redis``), its
    members relative to the tree, Redis's snapshot laid out for AOF (:func:`redis_restore_files`), and
    every parent folder listed (tar extractors differ on missing parents).  With ``owner``, files and
    folders belong to that uid:gid and are private to it; else root's, readable by all.  b"" when the
    archive holds nothing of the tree."""
    buffer, folders, added = io.BytesIO(), set(), False
    file_mode, folder_mode = (0o600, 0o700) if owner is not None else (0o644, 0o755)
    with tarfile.open(archive, mode="r:gz") as source, tarfile.open(fileobj=buffer, mode="w") as out:
        def add(info: tarfile.TarInfo, content: bytes | None = None) -> None:
            nonlocal added
            added = True
            if owner is not None:
                info.uid = info.gid = owner
            out.addfile(info, io.BytesIO(content) if content is not None else None)

        for member in source:
            if not (member.isfile() and member.name.startswith(tree + "/")):
                continue
            relative = member.name.split("/", 1)[1]
            contents = {relative: source.extractfile(member).read()}
            if tree == "redis" and relative == "dump.rdb":
                contents = redis_restore_files(contents[relative])
            for name, content in contents.items():
                for parent in reversed(Path(name).parents[:-1]):
                    if parent.as_posix() not in folders:
                        folders.add(parent.as_posix())
                        folder = tarfile.TarInfo(parent.as_posix())
                        folder.type, folder.mode = tarfile.DIRTYPE, folder_mode
                        add(folder)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), file_mode, member.mtime
                add(info, content)
    return buffer.getvalue() if added else b""


def sqlite_catalog_documents(root: Path) -> dict[str, list[str]]:
    """Collection → document ids, read from the project's SQLite catalog (read-only; none: no documents)."""
    path = root / "data" / "catalog.sqlite"
    if not path.is_file():
        return {}
    from stack.pipeline.catalog import Catalog

    documents: dict[str, list[str]] = {}
    for record in sorted(Catalog(path).list(), key=lambda r: (r.collection, r.id)):
        documents.setdefault(record.collection, []).append(record.id)
    return documents


def write_file(target: Path, reader: IO[bytes] | None) -> None:
    """Copy a stream into a file, creating its folders."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(reader, out, 1 << 20)


def parse_last_json(module: str, code: int, output: str, *, where: str) -> dict[str, Any]:
    """The JSON document a ``python -m stack.X`` command prints last (its logs come before it)."""
    try:
        return json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RagctlError(f"{module} failed in {where} (exit {code}): {output[-800:]}", f"ragctl logs {where}",
                          code="probe_failed") from None


# Redis 7 with appendonly on ignores dump.rdb when no AOF exists (it starts empty): the snapshot goes
# in as the base of a multi-part AOF, with its manifest.  The names are Redis's defaults, which the
# rendered redis.conf and the local runtime keep.
AOF_DIR, AOF_BASE = "appendonlydir", "appendonly.aof.1.base.rdb"
AOF_MANIFEST = "appendonly.aof.manifest"


def redis_restore_files(dump: bytes) -> dict[str, bytes]:
    """Relative path under Redis's dir → content, for a snapshot Redis loads with AOF on."""
    return {"dump.rdb": dump, f"{AOF_DIR}/{AOF_BASE}": dump,
            f"{AOF_DIR}/{AOF_MANIFEST}": f"file {AOF_BASE} seq 1 type b\n".encode()}
