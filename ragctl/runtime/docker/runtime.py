"""The docker runtime: the rendered Compose stack on a Docker engine.

State is read from Docker (containers carrying this project's label), never from local files.  The
lifecycle runs the Compose v2 CLI (``ragctl.engine.compose``, with timeouts); probes (state,
health, published ports, exec) go through docker-py.  Nothing here acts on a container, volume or
network without this project's label.  Pre-flight, doctor's checks, security facts and the stack's
data (backup, restore, upgrade) are the package's other modules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ragctl.checks import Check
from ragctl.deploy import (
    LABEL_KEY,
    NGINX_HTTP_PORT,
    NGINX_HTTPS_PORT,
    SERVICE_LABEL,
    DeployConfig,
    load_deploy_config,
    profiles_for,
    write_rendered,
)
from ragctl.engine import compose, compose_argv, engine, exec_in, published_url, stream_lines
from ragctl.errors import DockerError, NotRunning, RagctlError, StartTimeout, UsageError
from ragctl.project import ProjectConfig, read_dotenv, set_config_value
from ragctl.runtime import container_stack
from ragctl.runtime.base import Runtime, parse_last_json
from ragctl.runtime.capabilities import (
    Announces,
    BacksUp,
    Diagnosable,
    GuardsRedis,
    SecurityFacts,
    Upgradable,
)
from ragctl.runtime.container_stack import ContainerStackStatus
from ragctl.runtime.docker import checks, facts, state
from ragctl.runtime.docker.preflight import port_checks, preflight
from ragctl.runtime.docker.status import ServiceStatus, service_statuses
from ragctl.runtimes import kind_of
from ragctl.sync_services import sync_services_wanted

if TYPE_CHECKING:
    import ssl

    import docker
    from docker.models.containers import Container


class DockerRuntime(Runtime, Diagnosable, SecurityFacts, GuardsRedis, BacksUp, Upgradable, Announces):
    """The rendered Compose stack of one project on the local Docker engine."""

    kind = "docker"
    #: (engine client, None) or (None, why not), asked once per command (checks.engine_answer).
    engine_answer: tuple | None = None
    #: The archive a restore is putting back (restore_stores → start_after_restore).
    _restore_archive: Path | None = None
    #: How stack.db_server finds the password in the postgres container (compose.yaml: from .env).
    postgres_password_args: tuple[str, ...] = ("--password-env", "POSTGRES_PASSWORD")
    restore_wait_s = 600

    def __init__(self, project_root: Path, config: ProjectConfig | None = None) -> None:
        super().__init__(project_root, config)
        self.project_root = self.root
        self.config: DeployConfig = load_deploy_config(self.root)
        self.name = self.project_config.name
        self.profiles = profiles_for(self.config)

    @property
    def gpu_wanted(self) -> bool:
        return self.config.gpu

    @property
    def uses_postgres(self) -> bool:
        """The stack keeps its state in its PostgreSQL service (else in SQLite files under data/)."""
        return self.config.database == "postgres"

    # -- reading state ------------------------------------------------------------------------
    def containers(self, client: docker.DockerClient | None = None) -> list[Container]:
        client = client or engine()
        # ignore_removed: Compose recreates containers while we look (up, scale); one gone between
        # the listing and its details is simply not there any more.
        labels = [f"{LABEL_KEY}={self.name}", f"com.docker.compose.project={self.name}"]
        return client.containers.list(all=True, ignore_removed=True, filters={"label": labels})

    def wanted(self) -> dict[str, int]:
        """Compose service → replicas this configuration asks for."""
        wanted = {"redis": 1, "chroma": 1, **({"postgres": 1} if self.uses_postgres else {}),
                  "api": self.config.api_replicas, "worker": self.config.workers, "beat": 1}
        if self.config.flower:
            wanted["flower"] = 1
        if self.config.nginx:
            wanted["nginx"] = 1
        return wanted | sync_services_wanted(self.root)

    def services(self, client: docker.DockerClient | None = None) -> list[ServiceStatus]:
        return service_statuses(self.containers(client), self.wanted())

    def status(self) -> ContainerStackStatus:
        containers = self.containers(engine())
        running = any(c.status == "running" for c in containers)
        status = ContainerStackStatus(running=running, project_root=self.root, project=self.name,
                                      services=service_statuses(containers, self.wanted()), runtime=self.kind)
        if running:
            scheme = "https" if self.config.https else "http"
            edge = f"{NGINX_HTTPS_PORT if self.config.https else NGINX_HTTP_PORT}/tcp"
            status.api_url = published_url(containers, SERVICE_LABEL, "nginx", edge, scheme) or \
                published_url(containers, SERVICE_LABEL, "api", "8000/tcp", scheme)
            status.flower_url = published_url(containers, SERVICE_LABEL, "flower", "5555/tcp")
            if status.flower_url:
                status.flower_auth = read_dotenv(self.root / ".env").get("FLOWER_BASIC_AUTH")
        return status

    def api_verify(self) -> ssl.SSLContext | bool:
        return container_stack.api_verify(self.root, self.config)

    def preflight(self) -> list[Check]:
        """Everything ``up`` needs, checked before anything starts (preflight.py).  Raises PreflightFailed."""
        return preflight(self)

    def port_checks(self, client: docker.DockerClient) -> list[Check]:
        return port_checks(self, client)

    # -- lifecycle ----------------------------------------------------------------------------
    def up(self, *, services: list[str] | None = None, workers: int | None = None, flower: bool = False,
           wait_s: float | None = None,
           progress: Callable[[list[ServiceStatus]], None] | None = None) -> list[ServiceStatus]:
        """Render, pre-flight, ``compose up -d``, then wait until every wanted service is ready.

        On timeout the containers are kept for inspection (StartTimeout carries their last log lines)."""
        if flower:
            raise UsageError("--flower is for the local runtime; a Compose stack runs Flower when [stack] says so.",
                             "set flower = true under [stack] in ragctl.toml, then ragctl up")
        if workers is not None:
            set_config_value(self.root, "stack", "workers", workers)
            self.config = load_deploy_config(self.root)
        wait_s = 300 if wait_s is None else wait_s
        self._pin_database()
        write_rendered(self.root, files=kind_of(self.kind).rendered_files)
        self.preflight()
        args = ["up", "-d", "--remove-orphans", *(services or [])]
        return self._run_and_wait(args, services, wait_s=wait_s, progress=progress)

    def _pin_database(self) -> None:
        """Write down where the state lives when ragctl.toml leaves it to the data folder's contents
        (load_deploy_config): a stack that started on one never finds itself on the other."""
        if "database" not in ProjectConfig.load(self.root).table("stack"):
            set_config_value(self.root, "stack", "database", self.config.database)

    def _run_and_wait(self, args: list[str], services: list[str] | None, *, wait_s: float,
                      progress: Callable[[list[ServiceStatus]], None] | None) -> list[ServiceStatus]:
        outcome: dict[str, BaseException | None] = {}

        def run() -> None:
            try:
                compose(self.root, args, profiles=self.profiles, timeout_s=wait_s + 120)
                outcome["error"] = None
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="compose-up", daemon=True)
        thread.start()
        return self.wait_ready(services, wait_s=wait_s, progress=progress, compose_done=lambda: (
            not thread.is_alive(), outcome.get("error")))

    def wait_ready(self, services: list[str] | None = None, *, wait_s: float = 300,
                   progress: Callable[[list[ServiceStatus]], None] | None = None,
                   compose_done: Callable[[], tuple[bool, BaseException | None]] | None = None) -> list[ServiceStatus]:
        client = engine()
        deadline = time.monotonic() + wait_s
        while True:
            current = self.services(client)
            if progress:
                progress(current)
            chosen = [s for s in current if not services or s.service in services]
            done, error = compose_done() if compose_done else (True, None)
            if done and all(s.ready for s in chosen):
                if error is not None:
                    raise error
                return current
            if done and error is not None or time.monotonic() > deadline:
                failing = [s.service for s in chosen if not s.ready]
                logs = {name: list(self.logs(name, lines=20)) for name in failing}
                if error is not None and not failing:
                    raise error
                reason = error.detail() if isinstance(error, DockerError) else (str(error) if error else "")
                raise StartTimeout(
                    f"Not ready after {wait_s:.0f} s: {', '.join(failing)}" + (f"\n{reason}" if reason else ""),
                    hint=f"the containers are kept: ragctl logs {failing[0] if failing else 'SERVICE'}   "
                         "(then ragctl down when done)",
                    failing=failing, logs=logs)
            time.sleep(1.0)

    def down(self, *, volumes: bool = False, timeout_s: float = 300) -> list[str]:
        """Stop and remove this project's containers and network; volumes only with ``volumes``."""
        before = sorted(c.name for c in self.containers())
        args = ["down", "--remove-orphans", "--timeout", "20"] + (["--volumes"] if volumes else [])
        # Every profile, so Flower or Nginx started under an older configuration stop too.
        compose(self.root, args, profiles=["flower", "nginx"], timeout_s=timeout_s)
        return before

    def restart(self, service: str, *, wait_s: float = 180) -> list[ServiceStatus]:
        """Restart one service's containers (starting stopped ones); the others keep running."""
        known = self.wanted()
        if service not in known:
            raise DockerError(f"Unknown service {service!r}.", hint=f"one of: {', '.join(known)}")
        if not any(s.service == service and s.containers for s in self.services()):
            raise NotRunning(f"{service} has no container in {self.name}.", hint="ragctl up")
        compose(self.root, ["restart", "--timeout", "20", service], profiles=self.profiles, timeout_s=wait_s + 60)
        ready = self.wait_ready([service], wait_s=wait_s)
        if service == "api":
            self.reload_nginx()
        return [s for s in ready if s.service == service]

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[ServiceStatus]], None] | None = None) -> list[ServiceStatus]:
        """Set worker and/or API replicas live: recorded in ragctl.toml, re-rendered, applied without
        recreating running containers; Nginx re-reads the API replicas."""
        self.config = container_stack.record_replicas(self.root, self.kind, self.config, replicas, name=self.name,
                                                      running=lambda: any(s.running for s in self.services()))
        args = ["up", "-d", "--no-deps", "--no-recreate", *replicas]
        ready = self._run_and_wait(args, list(replicas), wait_s=wait_s, progress=progress)
        if "api" in replicas:
            self.reload_nginx()
        return ready

    def reload_nginx(self) -> bool:
        """Make Nginx resolve the API service again (after scale or restart); False when it is off."""
        for container in self.containers():
            if container.labels.get(SERVICE_LABEL) == "nginx" and container.status == "running":
                result = exec_in(container, ["nginx", "-e", "stderr", "-c", "/app/nginx.conf", "-s", "reload"])
                if result.exit_code != 0:
                    raise DockerError("Nginx did not reload.", stderr=result.output, hint="ragctl logs nginx")
                return True
        return False

    def logs(self, service: str | None = None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """A service's log lines, or every service's (each line prefixed by its container)."""
        args = ["logs", "--no-color", "--tail", str(lines), *(["--follow"] if follow else []),
                *([service] if service else [])]
        if follow:
            yield from stream_lines(compose_argv(self.root, args, profiles=self.profiles))
            return
        try:
            yield from compose(self.root, args, profiles=self.profiles, timeout_s=60).stdout.splitlines()
        except DockerError as exc:
            yield f"(no logs: {exc.message})"

    def exec(self, service: str, command: list[str], *, timeout_s: float = 60) -> tuple[int, str]:
        """Run a command in the first running container of ``service``."""
        for container in self.containers(engine(timeout_s=timeout_s)):
            if container.labels.get(SERVICE_LABEL) == service and container.status == "running":
                result = exec_in(container, command)
                return result.exit_code, result.output
        raise NotRunning(f"No running {service} container in {self.name}.", hint="ragctl ps")

    def service_container(self, service: str, client: docker.DockerClient | None = None) -> Container:
        """A container of ``service`` on this engine (what backup and restore copy files through)."""
        container = next((c for c in self.containers(client) if c.labels.get(SERVICE_LABEL) == service), None)
        if container is None:
            raise NotRunning(f"No {service} container in {self.name}.", "ragctl up")
        return container

    def celery_workers(self) -> list[str]:
        """Worker node names that answer a Celery ping (asked from inside a worker container)."""
        import json

        code, output = self.exec("worker", ["python", "-m", "celery", "-A", "stack.worker.app", "inspect", "ping",
                                            "--timeout", "5", "--json"], timeout_s=60)
        if code != 0:
            return []
        try:
            payload = json.loads(output.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return []
        return sorted(payload) if isinstance(payload, dict) else sorted(name for item in payload for name in item)

    # -- the services' own view ----------------------------------------------------------------
    def _probe_service(self) -> str:
        """Where probes run: a worker (it has the GPU, the queue and the stores), else the API."""
        running = {s.service for s in self.services() if s.running}
        return "worker" if "worker" in running else "api"

    def run_module(self, module: str, args: list[str], *, timeout_s: float = 120) -> dict[str, Any]:
        where = self._probe_service()
        code, output = self.exec(where, ["python", "-m", module, *args], timeout_s=timeout_s)
        return parse_last_json(module, code, output, where=where)

    def probe(self) -> dict[str, Any]:
        try:
            where = self._probe_service()
            report = self.run_module("stack.probe", [] if where == "worker" else ["--no-gpu"])
        except RagctlError as exc:
            return {"error": exc.message}
        report["probed_in"] = where
        return report

    # -- doctor (checks.py) and its security facts (facts.py) ----------------------------------------
    def service_checks(self) -> list[Check]:
        return checks.service_checks(self)

    def environment_checks(self, *, running: bool) -> list[Check]:
        return checks.environment_checks(self, running=running)

    def diagnose_redis(self, probe: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
        return checks.diagnose_redis(self, probe)

    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        return checks.anonymous_redis_ping(self)

    def store_ports(self) -> list[tuple[str, str, int]]:
        return facts.store_ports(self)

    def chroma_guard(self) -> dict[str, Any] | None:
        return facts.chroma_guard(self)

    def container_users(self) -> dict[str, str] | None:
        return facts.container_users(self)

    def edge(self) -> list[tuple[str, str, int, bool]]:
        return facts.edge(self)

    # -- the stack's data (state.py) -------------------------------------------------------------
    def catalog_documents(self) -> dict[str, list[str]]:
        return self.maintenance("documents") if self.uses_postgres else super().catalog_documents()

    def store_members(self, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
        return container_stack.store_members(self, redis_dump)

    def stop_for_restore(self) -> bool:
        return state.stop_for_restore(self)

    def restore_stores(self, archive: Path) -> None:
        state.restore_stores(self, archive)
        self._restore_archive = archive

    def start_after_restore(self, was_running: bool) -> bool:
        return container_stack.start_after_restore(self, self._restore_archive)

    def upgrade_state(self, *, replace: bool = False, wait_s: float | None = None,
                      progress: Callable[[str], None] | None = None,
                      check: Callable[[], None] | None = None) -> dict[str, Any]:
        return state.upgrade_state(self, replace=replace, wait_s=wait_s, progress=progress, check=check)
