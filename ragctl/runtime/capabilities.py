"""What only some runtimes can do, one capability each (issue #24).

A runtime class inherits the capabilities it has (each with the defaults that suit a stack on this
host), and callers ask ``isinstance(runtime, BacksUp)`` before they use one, never ``hasattr``:
a new runtime that implements only :class:`~ragctl.runtime.base.Runtime`'s lifecycle still works
with every command, which says plainly what that runtime cannot do (:func:`require`).

- :class:`Reachable`: how a client on this machine reaches the stack's API and stores.
- :class:`Diagnosable`: the probe run where the services are, maintenance, checks, recent logs.
- :class:`SecurityFacts`: the facts doctor's security checks read (ports, guards, users, entry points).
- :class:`GuardsRedis`: a Redis of its own, behind a password.
- :class:`BacksUp`: what a backup copies and a restore puts back.
- :class:`Upgradable`: state that can move into the stack's PostgreSQL.
- :class:`Announces`: what ``up`` decided on its own, said as it happens.
- :class:`HasNodes`: a cluster of engines (the swarm).
"""

from __future__ import annotations

import io
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ragctl.backends.embedded import release_local_stores, sqlite_catalog_documents
from ragctl.checks import Check
from ragctl.errors import RagctlError, UsageError
from ragctl.runtime.base import (
    PROBE_TIMEOUT_S,
    STORE_TREES,
    Runtime,
    parse_last_json,
    redis_restore_files,
    write_file,
)

if TYPE_CHECKING:
    import ssl

    from stack.settings import Settings

Capability = TypeVar("Capability")


def require(runtime: Runtime, capability: type[Capability], what: str) -> Capability:
    """``runtime`` as ``capability``, or a UsageError saying that this runtime cannot do ``what``."""
    if not isinstance(runtime, capability):
        raise UsageError(f"The {runtime.kind} runtime cannot {what}.",
                         "ragctl status   (to see which runtime this project uses)")
    return runtime


def service_checks(runtime: Runtime) -> list[Check]:
    """One check per service of any runtime, from its status: does it run (and answer its healthcheck)."""
    checks = []
    for service in runtime.status().services:
        if service.ready or service.state in ("running", "healthy"):
            checks.append(Check(f"service {service.name}", "ok", service.summary()))
        else:
            checks.append(Check(f"service {service.name}", "fail", service.summary(),
                                "the process is down or restarting", f"ragctl restart {service.name}   "
                                f"(then ragctl logs {service.name})", ("restart", service.name)))
    return checks


def client_settings(runtime: Runtime) -> Settings:
    """The project's settings as a client of its stores: the runtime's, when it knows better
    (:class:`Reachable`), else the project's own."""
    if isinstance(runtime, Reachable):
        return runtime.client_settings()
    from stack.settings import load_settings

    return load_settings(runtime.root)


def api_verify(runtime: Runtime) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for the runtime's API (:meth:`Reachable.api_verify`; else the system's trust)."""
    return runtime.api_verify() if isinstance(runtime, Reachable) else True


class Reachable:
    """How a client on this machine reaches the stack: the API's TLS trust and the stores' settings."""

    root: Path

    def api_verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for the API: an SSL context trusting a stack's self-signed
        certificate, or True (the system's trust store).  Never False."""
        return True

    def client_settings(self) -> Settings:
        """The project's settings as a client of its stores (Redis, Chroma) from this machine."""
        from stack.settings import load_settings

        return load_settings(self.root)


class Diagnosable(Reachable):
    """A probe run where the services are (``stack.probe``), maintenance, checks and recent logs."""

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

    @property
    def gpu_wanted(self) -> bool:
        return False

    def service_checks(self) -> list[Check]:
        """One check per service: does it run (and answer its healthcheck)."""
        return service_checks(self)

    def environment_checks(self, *, running: bool) -> list[Check]:
        """What this runtime needs from the host (engine, Compose, ports, GPU, limits).  By default
        the pipeline runs here (embedded, local processes): OCR needs tesseract on this host; a
        runtime of containers overrides this (its image has OCR built in)."""
        from ragctl.checks import ocr_check

        settings = self.client_settings()
        return [ocr_check(settings.ocr, settings.ocr_languages)]

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


class SecurityFacts:
    """The facts doctor's security checks read (ragctl/ops/security.py)."""

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


class GuardsRedis(ABC):
    """A stack that starts its own Redis, protected by a password (doctor's security check)."""

    @abstractmethod
    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        """(answer, where) of the running Redis to a client without the password: ``-NOAUTH …``
        when it is protected.  None when no Redis runs."""


class BacksUp:
    """What ``backup`` copies and ``restore`` puts back (defaults: SQLite and store files under data/)."""

    root: Path

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

    def stop_for_restore(self) -> bool:
        """Stop what must not run while the data is replaced; True when it ran before."""
        return False

    def restore_stores(self, archive: Path) -> None:
        """Put the archive's store members where this runtime keeps them (data/ by default)."""
        release_local_stores()  # a client opened before (a gate's question) must not write the new files
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
        release_local_stores()  # nor answer or count from what it had loaded of the old ones

    def start_after_restore(self, was_running: bool) -> bool:
        """Start the stack again when restore stopped it; True when it was started."""
        return False


class Upgradable:
    """State kept in files on this host that can move into the stack's PostgreSQL (``ragctl upgrade``)."""

    kind: str

    @property
    def uses_postgres(self) -> bool:
        """The state lives in the stack's PostgreSQL service (else in SQLite files under data/)."""
        return False

    def upgrade_state(self, *, replace: bool = False, wait_s: float | None = None,
                      progress: Callable[[str], None] | None = None,
                      check: Callable[[], None] | None = None) -> dict[str, Any]:
        """Move the state; ``check`` (the quality gate, ragctl.ops.gate.gated_upgrade) is called once the
        upgraded stack runs, and an exception from it undoes the upgrade as any failure does."""
        return {"upgraded": False, "database": "sqlite",
                "reason": f"the {self.kind} runtime keeps its state in SQLite files on this host by design "
                          "(one host, no database server)"}


class Announces:
    """What ``up`` decided on its own for the user (a node labelled, a placement chosen): listed in
    ``up``'s output, and handed to ``on_note`` as it happens (the CLI prints it)."""

    @property
    def notes(self) -> list[str]:
        return self.__dict__.setdefault("_notes", [])

    def listen(self, on_note: Callable[[str], None] | None) -> None:
        self.__dict__["_on_note"] = on_note

    def note(self, text: str) -> None:
        self.notes.append(text)
        on_note = self.__dict__.get("_on_note")
        if on_note is not None:
            on_note(text)


class HasNodes(ABC):
    """A cluster of engines: nodes to list, label and join (``ragctl nodes``)."""

    @abstractmethod
    def nodes(self) -> list[Any]:
        """The cluster's nodes (role, state, address, labels, GPUs, this stack's replicas)."""

    @abstractmethod
    def label_node(self, node: str, key: str, value: bool) -> Any:
        """Set or clear one of ragctl's placement labels on a node; the node as it is now."""

    @abstractmethod
    def join_command(self) -> str:
        """The command another host runs to join the cluster as a worker."""
