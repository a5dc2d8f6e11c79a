"""What the two container runtimes (Compose, ragctl/runtime/docker/, and Swarm, ragctl/runtime/swarm/)
share, as functions over a project's deployment and its containers: how clients check the edge's
certificate, how a scale request is recorded, and how the PostgreSQL state is dumped and loaded
inside its container.  Composition, not a base class: neither runtime inherits from the other."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ragctl.checks import Check, disk_check, memory_check
from ragctl.deploy import IMAGE_UID, DeployConfig, load_deploy_config, write_rendered
from ragctl.engine import container_user, copy_in, copy_out, engine, exec_in
from ragctl.errors import DockerError, RagctlError, UpgradeFailed, UsageError
from ragctl.project import set_config_value
from ragctl.runtimes import kind_of

if TYPE_CHECKING:
    import ssl

    import docker
    from docker.models.containers import Container


#: Where pg_dump writes (and pg_restore reads) inside the postgres container: its volume, not /tmp.
PG_DUMP = "/pgdata/ragctl.dump"
#: The backup archive's member holding that dump.
PG_MEMBER = "postgres/ragctl.dump"
#: The services holding data: never published on the host (doctor's "store ports" check).
STORE_SERVICES = ("redis", "chroma", "postgres", "db")
#: ragctl.toml's [stack] key for each service ``scale`` sets.
SCALE_KEYS = {"worker": "workers", "api": "api_replicas"}


@dataclass
class ContainerStackStatus:
    """``status`` of a container stack: its services, and where clients reach it."""

    running: bool
    project_root: Path
    project: str
    services: list[Any]
    runtime: str
    api_url: str | None = None
    flower_url: str | None = None
    flower_auth: str | None = None
    #: What the engine calls ``project`` in ``--json``: Compose's project, or the swarm's stack.
    project_key: str = "compose_project"

    @property
    def mode(self) -> str:
        return "stack" if self.running else "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "mode": self.mode, "runtime": self.runtime,
                "project": str(self.project_root), self.project_key: self.project, "api_url": self.api_url,
                "flower_url": self.flower_url, "flower_auth": self.flower_auth,
                "services": [s.to_dict() for s in self.services]}


class ContainerStack(Protocol):
    """What these functions need of a container runtime (Compose's or Swarm's)."""

    root: Path
    name: str
    #: How stack.db_server finds the PostgreSQL password in its container.
    postgres_password_args: tuple[str, ...]
    restore_wait_s: float

    @property
    def uses_postgres(self) -> bool: ...

    def service_container(self, service: str, client: docker.DockerClient | None = None) -> Container: ...

    def up(self, *, wait_s: float | None = None) -> list[Any]: ...

    def restart(self, service: str) -> list[Any]: ...

    def run_module(self, module: str, args: list[str], *, timeout_s: float = ...) -> dict[str, Any]: ...


def api_verify(root: Path, config: DeployConfig) -> ssl.SSLContext | bool:
    """How clients check the edge's certificate: a context trusting only the project's own
    certificate file when it is self-signed, else the system's trust store (a provided
    certificate from a public or company CA; ``SSL_CERT_FILE`` names another bundle)."""
    import ssl

    from ragctl.deploy import CERT_FILE

    if config.tls != "self-signed":
        return True
    return ssl.create_default_context(cafile=str(root / CERT_FILE))


def resource_checks(info: dict[str, Any], root: Path) -> list[Check]:
    """Disk under the engine's data root and the project, and memory: before either stack starts."""
    return [disk_check("docker disk", Path(info.get("DockerRootDir") or "/var/lib/docker")),
            disk_check("project disk", root), *memory_check()]


def record_replicas(root: Path, kind: str, config: DeployConfig, replicas: dict[str, int], *, name: str,
                    running: Callable[[], bool]) -> DeployConfig:
    """Check a scale request (known services, allowed counts, a running stack), record it in
    ragctl.toml and re-render; the new deployment configuration."""
    unknown = set(replicas) - set(SCALE_KEYS)
    if unknown:
        raise DockerError(f"Only worker and api scale (not {', '.join(sorted(unknown))}).",
                          hint="ragctl scale worker=3 api=2")
    from pydantic import ValidationError

    try:
        DeployConfig(**(config.model_dump() | {SCALE_KEYS[k]: v for k, v in replicas.items()}))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(f"{error['loc'][0]}: {error['msg']} (asked {error.get('input')!r}).",
                         "ragctl scale worker=N api=M   (workers 0–64, API replicas 1–16)") from exc
    if not running():
        from ragctl.errors import NotRunning

        raise NotRunning(f"The stack {name} is not running.", hint="ragctl up")
    for service, count in replicas.items():
        set_config_value(root, "stack", SCALE_KEYS[service], count)
    config = load_deploy_config(root)
    write_rendered(root, files=kind_of(kind).rendered_files)
    return config


# -- PostgreSQL state, dumped and loaded inside its own container (python -m stack.db_server) ---------
def db_server(container: Container, password_args: tuple[str, ...], action: str, path: str) -> None:
    result = exec_in(container, ["python", "-m", "stack.db_server", *password_args, action, path])
    if result.exit_code != 0:
        tool = "pg_dump" if action == "--dump" else "pg_restore"
        raise RagctlError(f"{tool} failed in {container.name}: {result.output[-800:]}", "ragctl logs postgres",
                          code="backup_error" if action == "--dump" else "restore_mismatch")


def postgres_members(container: Container, password_args: tuple[str, ...]) -> Iterator[tuple[str, IO[bytes], int]]:
    """The catalog, postings, extracted text, uploads and keys: one ``pg_dump -Fc``, as a backup member."""
    db_server(container, password_args, "--dump", PG_DUMP)
    try:
        for _, reader, size in copy_out(container, PG_DUMP, "postgres"):
            yield PG_MEMBER, reader, size
    finally:
        exec_in(container, ["rm", "-f", PG_DUMP])


def archive_dump(archive: Path) -> bytes | None:
    """The PostgreSQL dump a backup archive holds, or None."""
    with tarfile.open(archive, mode="r:gz") as tar:
        if PG_MEMBER not in tar.getnames():
            return None
        return tar.extractfile(PG_MEMBER).read()


def archive_has_sqlite_state(archive: Path) -> bool:
    """A backup of a stack from before PostgreSQL: its state is SQLite files under data/."""
    with tarfile.open(archive, mode="r:gz") as tar:
        return any(name.startswith(("data/catalog.sqlite", "data/keys.sqlite", "data/lexical/"))
                   for name in tar.getnames())


def load_postgres_dump(container: Container, dump: bytes, password_args: tuple[str, ...]) -> None:
    """Load a dump into the fresh server of ``container`` (pg_restore), owned by its user."""
    folder, name = PG_DUMP.rsplit("/", 1)
    copy_in(container, folder, {name: dump}, owner=container_user(container) or f"{IMAGE_UID}:{IMAGE_UID}")
    try:
        db_server(container, password_args, "--load", PG_DUMP)
    finally:
        exec_in(container, ["rm", "-f", PG_DUMP])


def move_sqlite_state(runtime: ContainerStack, *, replace: bool) -> dict:
    """The project folder's SQLite state moved into the stack's PostgreSQL (stack.maintenance
    move-state, where the services run); UpgradeFailed with the move's reason when it did not."""
    result = runtime.run_module("stack.maintenance", ["move-state-replace" if replace else "move-state"],
                                timeout_s=3600)
    if not result.get("moved"):
        raise UpgradeFailed(result)
    return result


def store_members(runtime: ContainerStack, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
    """What a backup copies: with PostgreSQL, the catalog, postings, extracted text, uploads and keys
    as one pg_dump -Fc made inside its container; Chroma's files; Redis's snapshot."""
    if runtime.uses_postgres:
        yield from postgres_members(runtime.service_container("postgres"), runtime.postgres_password_args)
    client = engine(timeout_s=600)
    yield from copy_out(runtime.service_container("chroma", client), "/chroma", "chroma")
    if redis_dump:
        yield from copy_out(runtime.service_container("redis", client), redis_dump, "redis")


def start_after_restore(runtime: ContainerStack, archive: Path | None) -> bool:
    """Start the stack on its recreated volumes, then fill PostgreSQL: the archive's dump, or for an
    archive of a stack from before PostgreSQL, its SQLite state moved in (checked, as ``ragctl
    upgrade`` does); the services that cache the catalog restart."""
    runtime.up(wait_s=runtime.restore_wait_s)
    if archive is not None and runtime.uses_postgres and _restore_database(runtime, archive):
        for service in ("api", "worker", "beat"):
            runtime.restart(service)
    return True


def _restore_database(runtime: ContainerStack, archive: Path) -> bool:
    """Load the archive's database into the fresh server; False when the archive has none."""
    dump = archive_dump(archive)
    if dump is not None:
        load_postgres_dump(runtime.service_container("postgres"), dump, runtime.postgres_password_args)
        return True
    if archive_has_sqlite_state(archive):
        move_sqlite_state(runtime, replace=False)  # restore wrote those files into data/
        return True
    return False
