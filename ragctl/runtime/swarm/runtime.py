"""The swarm runtime: the rendered stack file on a Docker Swarm cluster (issue #12, docs/swarm.md).

The control plane talks to one manager's engine (``DOCKER_HOST``, as the docker CLI does); the stack
is ``docker stack deploy``'s, named after the project.  State is read from the swarm (services and
their tasks on every node), never from local files.  Secrets are Swarm secrets created from .env
under names that change with their content; a probe (``stack.probe``, ``stack.maintenance``) runs as
a one-shot job on the stack's network, wherever the swarm places it (jobs.py).  Nothing here acts on
a service, secret, config, network or volume that is not in this project's stack.  It shares the
Docker engine wrapper (ragctl/engine/) and ragctl/runtime/container_stack.py with the Compose
runtime, and inherits from neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ragctl.checks import Check
from ragctl.deploy import DeployConfig, load_deploy_config, write_rendered
from ragctl.engine import docker_cli, docker_stream, engine, exec_in
from ragctl.errors import DockerError, NotRunning, RagctlError, StartTimeout, UsageError
from ragctl.project import ProjectConfig, set_config_value
from ragctl.runtime import container_stack
from ragctl.runtime.base import Runtime, parse_last_json
from ragctl.runtime.capabilities import (
    Announces,
    BacksUp,
    Diagnosable,
    GuardsRedis,
    HasNodes,
    SecurityFacts,
    Upgradable,
)
from ragctl.runtime.container_stack import ContainerStackStatus
from ragctl.runtime.swarm import checks, jobs, nodes, state
from ragctl.runtime.swarm.jobs import APP_SECRETS, NAMESPACE_LABEL, SWARM_SERVICE_LABEL
from ragctl.runtime.swarm.status import NodeInfo, SwarmService, TaskState
from ragctl.runtimes import kind_of
from ragctl.sync_services import sync_services_wanted

if TYPE_CHECKING:
    import ssl

    import docker


class SwarmRuntime(Runtime, Diagnosable, SecurityFacts, GuardsRedis, BacksUp, Upgradable, Announces, HasNodes):
    """The project's stack on the Docker Swarm whose manager ``DOCKER_HOST`` (or the local engine) is."""

    kind = "swarm"
    #: The archive a restore is putting back (restore_stores → start_after_restore).
    _restore_archive: Path | None = None
    #: How stack.db_server finds the password in the postgres container (from the Swarm secret: stack.db_server's default).
    postgres_password_args: tuple[str, ...] = ()
    restore_wait_s = 900

    def __init__(self, project_root: Path, config: ProjectConfig | None = None) -> None:
        super().__init__(project_root, config)
        self.project_root = self.root
        self.config: DeployConfig = load_deploy_config(self.root)
        self.name = self.project_config.name

    @property
    def gpu_wanted(self) -> bool:
        return self.config.gpu

    @property
    def uses_postgres(self) -> bool:
        return True  # stack.yaml always runs PostgreSQL: nodes share no disk

    # -- reading state ------------------------------------------------------------------------
    def stack_filter(self) -> dict[str, Any]:
        return {"label": [f"{NAMESPACE_LABEL}={self.name}"]}

    def containers(self, client: docker.DockerClient | None = None) -> list:
        """This stack's containers on the engine the CLI talks to (the others are on other nodes)."""
        client = client or engine()
        return client.containers.list(all=True, ignore_removed=True, filters=self.stack_filter())

    def container_of(self, service: str, client: docker.DockerClient | None = None):
        for container in self.containers(client):
            if container.labels.get(SWARM_SERVICE_LABEL) == f"{self.name}_{service}" and container.status == "running":
                return container
        return None

    def wanted(self) -> dict[str, int]:
        """Service → replicas; Nginx runs on every node (global), counted from the services' tasks."""
        return {"postgres": 1, "redis": 1, "chroma": 1, "api": self.config.api_replicas,
                "worker": self.config.workers, "beat": 1, "nginx": 1} | sync_services_wanted(self.root)

    def services(self, client: docker.DockerClient | None = None) -> list[SwarmService]:
        client = client or engine()
        try:
            found = client.services.list(filters=self.stack_filter())
        except Exception as exc:
            if "not a swarm manager" in str(exc) or "This node is not a swarm manager" in str(exc):
                raise nodes.not_manager() from exc
            raise
        names = nodes.node_names(client)
        by_name: dict[str, SwarmService] = {}
        for service in found:
            short = service.name.removeprefix(f"{self.name}_")
            mode = service.attrs.get("Spec", {}).get("Mode", {})
            wanted = int((mode.get("Replicated") or {}).get("Replicas") or 0)
            tasks = []
            for task in sorted(service.tasks(), key=lambda t: t.get("UpdatedAt", ""), reverse=True):
                status = task.get("Status") or {}
                tasks.append(TaskState(node=names.get(task.get("NodeID", ""), task.get("NodeID", "")[:12]),
                                       state=status.get("State", "?"), desired=task.get("DesiredState", "?"),
                                       error=status.get("Err") or "", slot=task.get("Slot")))
            if "Global" in mode:  # one a node: as many as the swarm wants running now
                wanted = len({t.node for t in tasks if t.live})
            update = (service.attrs.get("UpdateStatus") or {}).get("State")
            by_name[short] = SwarmService(short, wanted, tasks, update)
        wanted = self.wanted()
        order = list(wanted) + sorted(set(by_name) - set(wanted))
        return [by_name.get(name) or SwarmService(name, wanted.get(name, 0)) for name in order
                if name in by_name or name in wanted]

    def status(self) -> ContainerStackStatus:
        client = engine()
        services = self.services(client)
        running = any(s.running for s in services)
        status = ContainerStackStatus(running=running, project_root=self.root, project=self.name, services=services,
                                      runtime=self.kind, project_key="stack")
        if running:
            status.api_url = self.edge_url(client)
        return status

    def edge_url(self, client: docker.DockerClient | None = None) -> str:
        """Where this machine reaches the API: Nginx on the manager's swarm address (every node runs
        one; the self-signed certificate names every node's address)."""
        info = (client or engine()).info()
        address = (info.get("Swarm") or {}).get("NodeAddr") or "127.0.0.1"
        return f"{'https' if self.config.https else 'http'}://{address}:{self.config.nginx_port}"

    def api_verify(self) -> ssl.SSLContext | bool:
        return container_stack.api_verify(self.root, self.config)

    # -- nodes (nodes.py) -------------------------------------------------------------------------
    def engine_is_manager(self) -> bool:
        return nodes.engine_is_manager()

    def nodes(self) -> list[NodeInfo]:
        return nodes.list_nodes(self)

    def label_node(self, node: str, key: str, value: bool) -> NodeInfo:
        return nodes.label_node(self, node, key, value)

    def join_command(self) -> str:
        return nodes.join_command()

    # -- pre-flight (preflight.py) ------------------------------------------------------------------
    def preflight(self) -> list[Check]:
        """The swarm, the data node, where the workers go, the image."""
        from ragctl.runtime.swarm.preflight import preflight_checks

        return preflight_checks(self, engine().info())

    def worker_placement(self):
        """Where the workers go on this swarm now (a preflight.Placement)."""
        from ragctl.runtime.swarm.preflight import worker_placement

        return worker_placement(self.config, self.nodes())

    # -- lifecycle ----------------------------------------------------------------------------
    def render(self) -> dict[str, Any]:
        """Write the stack file and .env; create the secrets and configs it names (missing ones)."""
        write_rendered(self.root, files=kind_of(self.kind).rendered_files, placement=self.worker_placement().rendered)
        return jobs.create_objects(self)

    def up(self, *, services: list[str] | None = None, workers: int | None = None, flower: bool = False,
           wait_s: float | None = None,
           progress: Callable[[list[SwarmService]], None] | None = None) -> list[SwarmService]:
        """Render, pre-flight, create the secrets, ``docker stack deploy``, then wait until every
        wanted replica runs and the API answers.  Run again after an upgrade: the API rolls start-first."""
        if flower:
            raise UsageError("--flower is for the local runtime.", "ragctl up")
        if services:
            raise UsageError("A swarm stack deploys as a whole.", "ragctl up   (ragctl restart SERVICE restarts one)")
        if workers is not None:
            set_config_value(self.root, "stack", "workers", workers)
            self.config = load_deploy_config(self.root)
        wait_s = 600 if wait_s is None else wait_s
        nodes.add_node_addresses(self)
        if not self.engine_is_manager():
            self.preflight()  # says so, with the command that makes one
        from ragctl.runtime.swarm.preflight import plan

        placement = plan(self)  # a one-node swarm's node labelled, "auto" resolved: both said (note)
        write_rendered(self.root, files=kind_of(self.kind).rendered_files, placement=placement.rendered)
        self.preflight()
        objects = jobs.create_objects(self)
        self.deploy()
        ready = self.wait_ready(wait_s=wait_s, progress=progress)
        jobs.prune_objects(self, set(objects["names"].values()))
        return ready

    def deploy(self) -> None:
        from ragctl.images import registry_of

        # A name without a registry host is on the nodes already (ragctl bundle load, or a build
        # there): asking Docker Hub for its digest would only time out on a closed network.
        resolve = "always" if registry_of(f"{self.config.image}:{self.config.tag}") else "never"
        docker_cli(["stack", "deploy", "--compose-file", str(self.root / "stack.yaml"), "--prune",
                    "--resolve-image", resolve, "--with-registry-auth", self.name], timeout_s=300)

    def wait_ready(self, services: list[str] | None = None, *, wait_s: float = 600,
                   progress: Callable[[list[SwarmService]], None] | None = None) -> list[SwarmService]:
        client = engine()
        deadline = time.monotonic() + wait_s
        while True:
            current = self.services(client)
            if progress:
                progress(current)
            chosen = [s for s in current if not services or s.service in services]
            if all(s.ready for s in chosen) and (services and "api" not in services or self._api_answers()):
                return current
            if time.monotonic() > deadline:
                failing = [s.service for s in chosen if not s.ready] or ["api"]
                reasons = [f"{s.service}: {p}" for s in chosen for p in s.problems[:1]]
                raise StartTimeout(
                    f"Not ready after {wait_s:.0f} s: {', '.join(failing)}"
                    + (f"\n{'; '.join(reasons)}" if reasons else ""),
                    hint=f"ragctl ps   (then ragctl logs {failing[0]}; ragctl nodes)",
                    failing=failing, logs={name: list(self.logs(name, lines=20)) for name in failing})
            time.sleep(2.0)

    def _api_answers(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.edge_url()}/api/health", timeout=5, verify=self.api_verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def down(self, *, volumes: bool = False, timeout_s: float = 300) -> list[str]:
        """``docker stack rm``; with ``volumes`` the data volumes too (on the engine the CLI talks to:
        run it against the data node's engine for those)."""
        client = engine()
        before = [s.name for s in client.services.list(filters=self.stack_filter())]
        if before:
            docker_cli(["stack", "rm", self.name], timeout_s=120)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            left = self.containers(client) + client.networks.list(filters=self.stack_filter())
            if not left and not client.services.list(filters=self.stack_filter()):
                break
            time.sleep(1.0)
        if volumes:
            for volume in client.volumes.list(filters=self.stack_filter()):
                volume.remove(force=True)
            jobs.prune_objects(self, set())
        return before

    def restart(self, service: str, *, wait_s: float = 300) -> list[SwarmService]:
        """Replace a service's tasks one by one (the API start-first: no question dropped)."""
        if service not in self.wanted():
            raise DockerError(f"Unknown service {service!r}.", hint=f"one of: {', '.join(self.wanted())}")
        if not any(s.service == service and s.tasks for s in self.services()):
            raise NotRunning(f"{service} is not deployed in {self.name}.", hint="ragctl up")
        full_name = f"{self.name}_{service}"
        began = _update_started(full_name)
        docker_cli(["service", "update", "--force", "--detach", full_name], timeout_s=120)
        deadline = time.monotonic() + 15  # until the swarm records the new update (else the last one reads done)
        while _update_started(full_name) == began and time.monotonic() < deadline:
            time.sleep(0.5)
        ready = self.wait_ready([service], wait_s=wait_s)  # the update's state says when it is over
        done = next(s for s in ready if s.service == service)
        if done.update and done.update.startswith("rollback"):
            raise DockerError(f"The restart of {service} was rolled back: a new replica did not get healthy.",
                              hint=f"ragctl logs {service}")
        return [done]

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[SwarmService]], None] | None = None) -> list[SwarmService]:
        self.config = container_stack.record_replicas(self.root, self.kind, self.config, replicas, name=self.name,
                                                      running=lambda: any(s.running for s in self.services()))
        docker_cli(["service", "scale", "--detach", *(f"{self.name}_{k}={v}" for k, v in replicas.items())],
                   timeout_s=120)
        return self.wait_ready(list(replicas), wait_s=wait_s, progress=progress)

    def logs(self, service: str | None = None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """A service's log lines from every node (``docker service logs``), or every service's."""
        chosen = [service] if service else list(self.wanted())
        if follow:
            yield from docker_stream(["service", "logs", "--tail", str(lines), "--follow", f"{self.name}_{chosen[0]}"])
            return
        for name in chosen:
            done = docker_cli(["service", "logs", "--tail", str(lines), "--no-trunc", f"{self.name}_{name}"],
                              timeout_s=60, check=False)
            if done.returncode != 0:
                yield f"(no logs of {name}: {done.stderr.strip()[-300:]})"
                continue
            yield from (done.stdout + done.stderr).splitlines()

    # -- the services' own view: one-shot jobs on the stack's network (jobs.py) -------------------
    def job(self, command: list[str], *, timeout_s: float = 180, secrets: tuple[str, ...] = APP_SECRETS,
            constraint: str | None = None) -> tuple[int, str]:
        return jobs.job(self, command, timeout_s=timeout_s, secrets=secrets, constraint=constraint)

    def global_job(self, command: list[str], *, timeout_s: float = 120) -> list[dict[str, Any]]:
        return jobs.global_job(self, command, timeout_s=timeout_s)

    def exec(self, service: str, command: list[str], *, timeout_s: float = 60) -> tuple[int, str]:
        """In a running container of ``service`` on this node when there is one, else as a job."""
        container = self.container_of(service)
        if container is not None:
            result = exec_in(container, command)
            return result.exit_code, result.output
        return self.job(command, timeout_s=max(timeout_s, 120))

    def run_module(self, module: str, args: list[str], *, timeout_s: float = 180) -> dict[str, Any]:
        code, output = self.job(["python", "-m", module, *args], timeout_s=timeout_s)
        return parse_last_json(module, code, output, where="a job on the swarm")

    def probe(self) -> dict[str, Any]:
        try:
            report = self.run_module("stack.probe", ["--no-gpu"] if not self.config.gpu else [])
        except RagctlError as exc:
            return {"error": exc.message}
        report["probed_in"] = "a job on the swarm"
        return report

    # -- doctor across hosts (checks.py) and its security facts ---------------------------------------
    def service_checks(self) -> list[Check]:
        return checks.service_checks(self)

    def environment_checks(self, *, running: bool) -> list[Check]:
        return checks.swarm_checks(self)

    def diagnose_redis(self, probe: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
        return ("Redis is unreachable from the stack's network", ("ragctl restart redis   (then ragctl nodes: is the "
                "data node up?)"), ("restart", "redis"))

    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        """(answer, where) of Redis to ``redis-cli ping`` without the password, from a job on the stack's
        network (``NOAUTH …`` when it is protected); None when the job could not run."""
        try:
            _code, output = self.job(["redis-cli", "-h", "redis", "ping"], secrets=())
        except RagctlError:
            return None
        return output.strip()[-200:], "a job on the stack's network"

    def store_ports(self) -> list[tuple[str, str, int]]:
        return checks.store_ports(self)

    def chroma_guard(self) -> dict[str, Any] | None:
        return None

    def container_users(self) -> dict[str, str] | None:
        from ragctl.engine import container_user

        return {c.name: container_user(c) for c in self.containers() if c.status == "running"}

    def edge(self) -> list[tuple[str, str, int, bool]]:
        return [("nginx", "0.0.0.0", int(self.config.nginx_port or 443), self.config.https)]

    # -- the stack's data, through the data node's engine (state.py) ------------------------------
    def service_container(self, service: str, client: docker.DockerClient | None = None):
        container = self.container_of(service, client)
        if container is None:
            data = [n.hostname for n in self.nodes() if n.data]
            raise NotRunning(f"No running {service} container on the engine ragctl talks to; the data services run "
                             f"on {', '.join(data) or 'the data node'}.",
                             f"run it against the data node's engine: DOCKER_HOST=ssh://USER@{data[0] if data else 'NODE'} "
                             "ragctl …   (or from that node)")
        return container

    def catalog_documents(self) -> dict[str, list[str]]:
        return self.maintenance("documents")

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
        return {"upgraded": False, "database": "postgres", "reason": "the stack keeps its state in PostgreSQL already"}


def _update_started(full_name: str) -> str | None:
    return (engine().services.get(full_name).attrs.get("UpdateStatus") or {}).get("StartedAt")
