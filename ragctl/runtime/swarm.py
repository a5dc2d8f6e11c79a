"""The swarm runtime: the rendered stack file on a Docker Swarm cluster (issue #12, docs/swarm.md).

The control plane talks to one manager's engine (``DOCKER_HOST``, as the docker CLI does); the stack
is ``docker stack deploy``'s, named after the project.  State is read from the swarm (services and
their tasks on every node), never from local files.  Secrets are Swarm secrets created from .env
under names that change with their content; a probe (``stack.probe``, ``stack.maintenance``) runs as
a one-shot job on the stack's network, wherever the swarm places it.  Nothing here acts on a
service, secret, config, network or volume that is not in this project's stack.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.checks import Check
from ragctl.deploy import (
    IMAGE_UID,
    LABEL_KEY,
    load_deploy_config,
    stack_swarm_objects,
    write_rendered,
)
from ragctl.engine import engine
from ragctl.errors import DockerError, NotRunning, RagctlError, StartTimeout, UsageError
from ragctl.project import ProjectConfig, set_config_value
from ragctl.runtime.base import is_running, parse_last_json
from ragctl.runtime.capabilities import HasNodes
from ragctl.runtime.docker import DockerRuntime, DockerStatus
from ragctl.runtime.swarm_preflight import DATA_LABEL, GPU_LABEL
from ragctl.runtimes import kind_of
from ragctl.sync_services import sync_services_wanted

if TYPE_CHECKING:
    import docker

NAMESPACE_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
#: The node labels ``ragctl nodes label`` sets (NODE data=true → ragctl.data=true).
NODE_LABELS = {"data": DATA_LABEL, "gpu": GPU_LABEL}
DATA_SERVICES = ("postgres", "redis", "chroma")
#: Task states that will not become running by waiting (the swarm gave up on the task).
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
#: How a one-shot task runs (``job``, ``global_job``): a plain service whose tasks are never restarted,
#: not a Swarm job (replicated-job, global-job), whose ended task containers stay on the nodes after
#: the service is removed (moby/moby#42789); a plain service's go with it.
ONE_SHOT_MODES = {"replicated": ("--mode", "replicated", "--replicas", "1", "--restart-condition", "none"),
                  "global": ("--mode", "global", "--restart-condition", "none")}
#: A service's rolling update still going (its old and new replicas both run meanwhile).
UPDATING = ("updating", "rollback_started")
#: The secrets a probe job mounts (the app services' own).
APP_SECRETS = ("REDIS_URL", "RAG_DATABASE_URL", "CHROMA_TOKEN")


def docker_cli(args: list[str], *, timeout_s: float = 120, check: bool = True,
               input_text: str | None = None) -> subprocess.CompletedProcess:
    """The docker CLI (``DOCKER_HOST`` from the environment, like docker-py); DockerError on failure."""
    command = ["docker", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,
                              input=input_text)
    except FileNotFoundError as exc:
        raise DockerError("The docker CLI is not installed.", command=command,
                          hint="apt-get install docker.io (the CLI drives docker stack deploy)") from exc
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {args[0]} did not finish within {timeout_s:.0f} s.", command=command,
                          hint="docker info   (is the manager's engine answering?)") from exc
    if check and done.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])} failed (exit {done.returncode}).", command=command,
                          stderr=done.stderr.strip()[-2000:], hint="ragctl doctor")
    return done


@dataclass
class TaskState:
    node: str
    state: str  # new | pending | assigned | preparing | starting | running | complete | failed | rejected …
    desired: str
    error: str
    slot: int | None = None

    @property
    def live(self) -> bool:
        return self.desired == "running"


@dataclass
class SwarmService:
    """One service of the stack and its tasks on every node (``ragctl ps``'s row)."""

    service: str
    wanted: int
    tasks: list[TaskState] = field(default_factory=list)
    #: The swarm's rolling update of the service: updating, completed, paused, rollback_started,
    #: rollback_completed… (None: never updated).
    update: str | None = None

    @property
    def name(self) -> str:
        return self.service

    @property
    def running(self) -> int:
        return sum(t.state == "running" and t.live for t in self.tasks)

    @property
    def ready(self) -> bool:
        return (self.running >= self.wanted and (self.wanted > 0 or self.running == 0)
                and self.update not in UPDATING)

    @property
    def problems(self) -> list[str]:
        """Why wanted replicas are not running (the swarm's own words), newest first, one per reason."""
        seen, found = set(), []
        for task in self.tasks:
            if task.error and task.live and task.state != "running" or task.state in ("failed", "rejected") and task.error:
                text = f"{task.node or 'no node'}: {task.error}"
                if text not in seen:
                    seen.add(text)
                    found.append(text)
        return found[:3]

    @property
    def state(self) -> str:
        """running, starting, pending (no node fits), failing, missing or stopped."""
        if not self.tasks:
            return "missing" if self.wanted else "stopped"
        if self.update in UPDATING:
            return "updating"
        if self.ready:
            return "running"
        live = [t for t in self.tasks if t.live and t.state != "running"]
        if any(t.state == "pending" for t in live):
            return "pending"
        if any(t.state in ("failed", "rejected") for t in self.tasks[:3]):
            return "failing"
        return "starting"

    @property
    def nodes(self) -> list[str]:
        return sorted({t.node for t in self.tasks if t.state == "running" and t.live and t.node})

    def label(self) -> str:
        return f"{self.service} on {', '.join(self.nodes) or 'no node'}"

    def columns(self) -> dict[str, str]:
        return {"service": self.service, "state": self.state, "replicas": f"{self.running}/{self.wanted}",
                "nodes": ", ".join(self.nodes) or "-", "problem": (self.problems or ["-"])[0]}

    def ps_row(self) -> dict[str, Any]:
        return self.to_dict()

    def summary(self) -> str:
        problems = self.problems
        return f"{self.state}, {self.running}/{self.wanted} running" + (f"; {problems[0]}" if problems else "")

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "state": self.state, "replicas": self.running, "wanted": self.wanted,
                "ready": self.ready, "nodes": self.nodes, "problems": self.problems, "update": self.update,
                "tasks": [asdict(t) for t in self.tasks if t.live]}


@dataclass
class SwarmStatus(DockerStatus):
    """``status``: the Compose stack's shape, named as a swarm stack."""

    runtime: str = "swarm"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["stack"] = data.pop("compose_project")
        return data


@dataclass
class NodeInfo:
    """One engine of the swarm, as ``ragctl nodes`` shows it."""

    id: str
    hostname: str
    role: str  # manager | worker
    leader: bool
    availability: str  # active | pause | drain
    state: str  # ready | down | unknown | disconnected
    address: str
    labels: dict[str, str]
    gpus: int
    engine: str
    replicas: dict[str, int] = field(default_factory=dict)

    @property
    def data(self) -> bool:
        return self.labels.get(DATA_LABEL) == "true"

    @property
    def gpu(self) -> bool:
        return self.labels.get(GPU_LABEL) == "true" or self.gpus > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"data": self.data, "gpu": self.gpu}


def _gpus(description: dict[str, Any]) -> int:
    total = 0
    for resource in (description.get("Resources") or {}).get("GenericResources") or []:
        spec = resource.get("DiscreteResourceSpec") or {}
        if "GPU" in str(spec.get("Kind", "")).upper():
            total += int(spec.get("Value") or 0)
        named = resource.get("NamedResourceSpec") or {}
        if "GPU" in str(named.get("Kind", "")).upper():
            total += 1
    return total


class SwarmRuntime(DockerRuntime, HasNodes):
    """The project's stack on the Docker Swarm whose manager ``DOCKER_HOST`` (or the local engine) is."""

    kind = "swarm"

    def __init__(self, project_root: Path, config: ProjectConfig | None = None) -> None:
        super().__init__(project_root, config)
        self.profiles = []

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
                "worker": self.config.workers, "beat": 1, "nginx": 1} | sync_services_wanted(self.project_root)

    def node_names(self, client: docker.DockerClient) -> dict[str, str]:
        try:
            return {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12]) for n in client.nodes.list()}
        except Exception:  # noqa: BLE001 - a worker node's engine cannot list nodes
            return {}

    def services(self, client: docker.DockerClient | None = None) -> list[SwarmService]:
        client = client or engine()
        try:
            found = client.services.list(filters=self.stack_filter())
        except Exception as exc:
            if "not a swarm manager" in str(exc) or "This node is not a swarm manager" in str(exc):
                raise self._not_manager() from exc
            raise
        names = self.node_names(client)
        by_name: dict[str, SwarmService] = {}
        for service in found:
            short = service.name.removeprefix(f"{self.name}_")
            mode = service.attrs.get("Spec", {}).get("Mode", {})
            wanted = int((mode.get("Replicated") or {}).get("Replicas") or 0)
            tasks = []
            global_mode = "Global" in mode
            for task in sorted(service.tasks(), key=lambda t: t.get("UpdatedAt", ""), reverse=True):
                status = task.get("Status") or {}
                tasks.append(TaskState(node=names.get(task.get("NodeID", ""), task.get("NodeID", "")[:12]),
                                       state=status.get("State", "?"), desired=task.get("DesiredState", "?"),
                                       error=status.get("Err") or "", slot=task.get("Slot")))
            if global_mode:  # one a node: as many as the swarm wants running now
                wanted = len({t.node for t in tasks if t.live})
            update = (service.attrs.get("UpdateStatus") or {}).get("State")
            by_name[short] = SwarmService(short, wanted, tasks, update)
        wanted = self.wanted()
        order = list(wanted) + sorted(set(by_name) - set(wanted))
        return [by_name.get(name) or SwarmService(name, wanted.get(name, 0)) for name in order
                if name in by_name or name in wanted]

    def status(self) -> SwarmStatus:
        client = engine()
        services = self.services(client)
        running = any(s.running for s in services)
        status = SwarmStatus(running=running, project_root=self.project_root, project=self.name, services=services)
        if running:
            status.api_url = self.edge_url(client)
        return status

    def edge_url(self, client: docker.DockerClient | None = None) -> str:
        """Where this machine reaches the API: Nginx on the manager's swarm address (every node runs
        one; the self-signed certificate names every node's address)."""
        info = (client or engine()).info()
        address = (info.get("Swarm") or {}).get("NodeAddr") or "127.0.0.1"
        return f"{'https' if self.config.https else 'http'}://{address}:{self.config.nginx_port}"

    def edge(self) -> list[tuple[str, str, int, bool]]:
        return [("nginx", "0.0.0.0", int(self.config.nginx_port or 443), self.config.https)]

    def engine_is_manager(self) -> bool:
        swarm = engine().info().get("Swarm") or {}
        return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))

    def _not_manager(self) -> RagctlError:
        return DockerError("This engine is not a manager of a Docker Swarm.",
                           hint="docker swarm init   (or point DOCKER_HOST at a manager of your swarm)",
                           code="not_swarm_manager")

    # -- nodes --------------------------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        client = engine()
        try:
            listed = client.nodes.list()
        except Exception as exc:
            raise self._not_manager() from exc
        replicas: dict[str, dict[str, int]] = {}
        names = {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12]) for n in listed}
        for service in client.services.list(filters=self.stack_filter()):
            short = service.name.removeprefix(f"{self.name}_")
            for task in service.tasks(filters={"desired-state": "running"}):
                if (task.get("Status") or {}).get("State") == "running":
                    node = names.get(task.get("NodeID", ""), "?")
                    replicas.setdefault(node, {})
                    replicas[node][short] = replicas[node].get(short, 0) + 1
        found = []
        for node in listed:
            attrs = node.attrs
            spec, status, description = attrs.get("Spec", {}), attrs.get("Status", {}), attrs.get("Description", {})
            manager = attrs.get("ManagerStatus") or {}
            hostname = description.get("Hostname", node.id[:12])
            found.append(NodeInfo(
                id=node.id[:12], hostname=hostname, role=spec.get("Role", "?"), leader=bool(manager.get("Leader")),
                availability=spec.get("Availability", "?"), state=status.get("State", "?"),
                address=status.get("Addr") or manager.get("Addr", "").split(":")[0],
                labels=dict(spec.get("Labels") or {}), gpus=_gpus(description),
                engine=(description.get("Engine") or {}).get("EngineVersion", "?"),
                replicas=replicas.get(hostname, {})))
        return sorted(found, key=lambda n: (n.role != "manager", n.hostname))

    def label_node(self, node: str, key: str, value: bool) -> NodeInfo:
        """Set (or with ``value`` False remove) ragctl.data / ragctl.gpu on a node."""
        if key not in NODE_LABELS:
            raise UsageError(f"Unknown node label {key!r}.", "ragctl nodes label NODE data=true   (or gpu=true)")
        client = engine()
        try:
            target = client.nodes.get(node)
        except Exception as exc:
            known = ", ".join(n.hostname for n in self.nodes())
            raise UsageError(f"No node {node!r} in this swarm.", f"one of: {known}   (ragctl nodes)") from exc
        spec = dict(target.attrs["Spec"])
        labels = dict(spec.get("Labels") or {})
        if value:
            labels[NODE_LABELS[key]] = "true"
        else:
            labels.pop(NODE_LABELS[key], None)
        spec["Labels"] = labels
        target.update(spec)
        return next(n for n in self.nodes() if n.id == target.id[:12])

    def join_command(self) -> str:
        """The command a new node runs to join the swarm as a worker."""
        client = engine()
        try:
            swarm = client.swarm.attrs
        except Exception as exc:
            raise self._not_manager() from exc
        token = (swarm.get("JoinTokens") or {}).get("Worker")
        if not token:
            raise self._not_manager()
        info = client.info().get("Swarm") or {}
        managers = [m.get("Addr") for m in info.get("RemoteManagers") or [] if m.get("Addr")]
        address = managers[0] if managers else f"{info.get('NodeAddr')}:2377"
        return f"docker swarm join --token {token} {address}"

    # -- pre-flight ---------------------------------------------------------------------------
    def preflight(self) -> list[Check]:
        """The swarm, the data node, where the workers go, the image (ragctl/runtime/swarm_preflight.py)."""
        from ragctl.runtime.swarm_preflight import preflight_checks

        return preflight_checks(self, engine().info())

    def worker_placement(self):
        """Where the workers go on this swarm now (a swarm_preflight.Placement)."""
        from ragctl.runtime.swarm_preflight import worker_placement

        return worker_placement(self.config, self.nodes())

    # -- lifecycle ----------------------------------------------------------------------------
    def render(self) -> dict[str, Any]:
        """Write the stack file and .env; create the secrets and configs it names (missing ones)."""
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files, placement=self.worker_placement().rendered)
        return self.create_objects()

    def create_objects(self) -> dict[str, Any]:
        from docker.errors import APIError

        client = engine()
        objects = stack_swarm_objects(self.project_root)
        have = {s.name for s in client.secrets.list(filters={"label": f"{LABEL_KEY}={self.name}"})}
        have |= {c.name for c in client.configs.list(filters={"label": f"{LABEL_KEY}={self.name}"})}
        created = []
        for item in objects.values():
            if item.name in have:
                continue
            if not item.data:
                raise UsageError(f"The {item.key} secret would be empty.", "ragctl render   (makes the certificate)")
            labels = {LABEL_KEY: self.name, NAMESPACE_LABEL: self.name}
            try:
                if item.kind == "config":
                    client.configs.create(name=item.name, data=item.data, labels=labels)
                else:
                    client.secrets.create(name=item.name, data=item.data, labels=labels)
            except APIError as exc:
                if exc.status_code != 409:  # made meanwhile by another ragctl: the same content
                    raise DockerError(f"Could not create the swarm {item.kind} {item.name}.", stderr=str(exc),
                                      hint="ragctl doctor") from exc
            created.append(item.name)
        return {"created": created, "names": {k: o.name for k, o in objects.items()}}

    def prune_objects(self, keep: set[str]) -> list[str]:
        """Remove this stack's secrets and configs that the deployed stack no longer names (one still in
        use, by a task being replaced, stays for the next up)."""
        from docker.errors import APIError

        client = engine()
        removed = []
        found = [*client.secrets.list(filters={"label": f"{LABEL_KEY}={self.name}"}),
                 *client.configs.list(filters={"label": f"{LABEL_KEY}={self.name}"})]
        for item in found:
            if item.name not in keep:
                try:
                    item.remove()
                    removed.append(item.name)
                except APIError:
                    pass
        return removed

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
            set_config_value(self.project_root, "stack", "workers", workers)
            self.config = load_deploy_config(self.project_root)
        wait_s = 600 if wait_s is None else wait_s
        self._add_node_addresses()
        if not self.engine_is_manager():
            self.preflight()  # says so, with the command that makes one
        from ragctl.runtime.swarm_preflight import plan

        placement = plan(self)  # a one-node swarm's node labelled, "auto" resolved: both said (note)
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files, placement=placement.rendered)
        self.preflight()
        objects = self.create_objects()
        self.deploy()
        ready = self.wait_ready(wait_s=wait_s, progress=progress)
        self.prune_objects(set(objects["names"].values()))
        return ready

    def _add_node_addresses(self) -> None:
        """The nodes' addresses join the self-signed certificate's names (clients reach any of them)."""
        if self.config.tls != "self-signed":
            return
        try:
            addresses = [n.address for n in self.nodes() if n.address]
        except RagctlError:
            return
        missing = [a for a in addresses if a not in self.config.tls_hosts]
        if missing:
            set_config_value(self.project_root, "stack", "tls_hosts", [*self.config.tls_hosts, *missing])
            self.config = load_deploy_config(self.project_root)

    def deploy(self) -> None:
        from ragctl.images import registry_of

        # A name without a registry host is on the nodes already (ragctl bundle load, or a build
        # there): asking Docker Hub for its digest would only time out on a closed network.
        resolve = "always" if registry_of(f"{self.config.image}:{self.config.tag}") else "never"
        docker_cli(["stack", "deploy", "--compose-file", str(self.project_root / "stack.yaml"), "--prune",
                    "--resolve-image", resolve, "--with-registry-auth", self.name], timeout_s=300)

    def wait_ready(self, services: list[str] | None = None, *, wait_s: float = 600,
                   progress: Callable[[list[SwarmService]], None] | None = None, **_: Any) -> list[SwarmService]:
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

        url = f"{self.edge_url()}/api/health"
        try:
            return httpx.get(url, timeout=5, verify=self.api_verify()).status_code == 200
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
            self.prune_objects(set())
        return before

    def restart(self, service: str, *, wait_s: float = 300) -> list[SwarmService]:
        """Replace a service's tasks one by one (the API start-first: no question dropped)."""
        if service not in self.wanted():
            raise DockerError(f"Unknown service {service!r}.", hint=f"one of: {', '.join(self.wanted())}")
        if not any(s.service == service and s.tasks for s in self.services()):
            raise NotRunning(f"{service} is not deployed in {self.name}.", hint="ragctl up")
        full_name = f"{self.name}_{service}"
        began = self._update_started(full_name)
        docker_cli(["service", "update", "--force", "--detach", full_name], timeout_s=120)
        deadline = time.monotonic() + 15  # until the swarm records the new update (else the last one reads done)
        while self._update_started(full_name) == began and time.monotonic() < deadline:
            time.sleep(0.5)
        ready = self.wait_ready([service], wait_s=wait_s)  # the update's state says when it is over
        done = next(s for s in ready if s.service == service)
        if done.update and done.update.startswith("rollback"):
            raise DockerError(f"The restart of {service} was rolled back: a new replica did not get healthy.",
                              hint=f"ragctl logs {service}")
        return [done]

    @staticmethod
    def _update_started(full_name: str) -> str | None:
        return (engine().services.get(full_name).attrs.get("UpdateStatus") or {}).get("StartedAt")

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[SwarmService]], None] | None = None) -> list[SwarmService]:
        self.record_replicas(replicas)
        docker_cli(["service", "scale", "--detach", *(f"{self.name}_{k}={v}" for k, v in replicas.items())],
                   timeout_s=120)
        return self.wait_ready(list(replicas), wait_s=wait_s, progress=progress)

    def reload_nginx(self) -> bool:
        return False

    def logs(self, service: str | None = None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """A service's log lines from every node (``docker service logs``), or every service's."""
        chosen = [service] if service else list(self.wanted())
        if follow:
            command = ["docker", "service", "logs", "--tail", str(lines), "--follow", f"{self.name}_{chosen[0]}"]
            with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
                try:
                    for line in proc.stdout:
                        yield line.rstrip("\n")
                finally:
                    proc.terminate()
            return
        for name in chosen:
            done = docker_cli(["service", "logs", "--tail", str(lines), "--no-trunc", f"{self.name}_{name}"],
                              timeout_s=60, check=False)
            if done.returncode != 0:
                yield f"(no logs of {name}: {done.stderr.strip()[-300:]})"
                continue
            yield from (done.stdout + done.stderr).splitlines()

    # -- the services' own view: one-shot jobs on the stack's network ---------------------------
    def job(self, command: list[str], *, timeout_s: float = 180, secrets: tuple[str, ...] = APP_SECRETS,
            constraint: str | None = None) -> tuple[int, str]:
        """Run ``command`` once (one task, never restarted) on the stack's data network, with the app
        services' environment and secrets, wherever the swarm places it; (exit code, output)."""
        objects = self.create_objects()["names"]
        name = f"{self.name}_job-{uuid.uuid4().hex[:8]}"
        uid = self.config.uid or IMAGE_UID
        args = ["service", "create", "--name", name, *ONE_SHOT_MODES["replicated"],
                "--network", f"{self.name}_rag-network", "--label", f"{LABEL_KEY}={self.name}",
                "--container-label", f"{LABEL_KEY}={self.name}", "--user", f"{uid}:{self.config.gid or uid}",
                "--read-only", "--cap-drop", "ALL", "--mount", "type=tmpfs,destination=/tmp",
                "--env", "RAG_PROJECT_ROOT=/app/project", "--env", "RAG_SECRETS_DIR=/run/secrets",
                "--env", "RAG_DATA_DIR=/tmp/data", "--env", "RAG_EXTRACTED_DIR=/tmp/extracted_results",
                "--env", "RAG_LOGS_DIR=/tmp/logs", "--env", "HOME=/tmp", "--env", "CHROMA_URL=http://chroma:8000",
                "--env", "HF_HUB_OFFLINE=1", "--detach"]
        for key in secrets:
            args += ["--secret", f"source={objects[key]},target={key},uid={uid},gid={self.config.gid or uid},mode=0400"]
        if constraint:
            args += ["--constraint", constraint]
        args += [f"{self.config.image}:{self.config.tag}", *command]
        docker_cli(args, timeout_s=60)
        client = engine()
        deadline = time.monotonic() + timeout_s
        try:
            exit_code = None
            while time.monotonic() < deadline:
                tasks = client.services.get(name).tasks()
                ended = [t for t in tasks if (t.get("Status") or {}).get("State") in ENDED]
                if ended:
                    status = ended[0].get("Status") or {}
                    exit_code = int((status.get("ContainerStatus") or {}).get("ExitCode") or
                                    (0 if status.get("State") == "complete" else 1))
                    break
                time.sleep(1.0)
            output = docker_cli(["service", "logs", "--raw", "--no-trunc", name], timeout_s=60, check=False)
            text = output.stdout + output.stderr
            if exit_code is None:
                raise DockerError(f"The job {' '.join(command[:4])} did not finish within {timeout_s:.0f} s.",
                                  stderr=text[-2000:], hint="ragctl ps; ragctl nodes")
            return exit_code, text
        finally:
            docker_cli(["service", "rm", name], timeout_s=60, check=False)

    def exec(self, service: str, command: list[str], *, timeout_s: float = 60) -> tuple[int, str]:
        """In a running container of ``service`` on this node when there is one, else as a job."""
        container = self.container_of(service)
        if container is not None:
            result = container.exec_run(command)
            return result.exit_code, result.output.decode(errors="replace")
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

    # -- checks (doctor across hosts) ------------------------------------------------------------
    def service_checks(self) -> list[Check]:
        checks = []
        for service in self.status().services:
            if service.ready:
                checks.append(Check(f"service {service.name}", "ok", service.summary()))
            else:
                cause = service.problems[0] if service.problems else "replicas are not running"
                checks.append(Check(f"service {service.name}", "fail", service.summary(), cause,
                                    f"ragctl restart {service.name}   (then ragctl logs {service.name}; ragctl nodes)",
                                    ("restart", service.name)))
        return checks

    def environment_checks(self, *, running: bool) -> list[Check]:
        from ragctl.runtime.swarm_checks import swarm_checks

        return swarm_checks(self)

    def global_job(self, command: list[str], *, timeout_s: float = 120) -> list[dict[str, Any]]:
        """Run ``command`` once on every active node (one task a node, on the stack's network); for each
        node that got a task: {"node", "state", "error", "output" (its last JSON line, or None)}.
        The command prints one JSON object carrying ``"node"`` (NODE in its environment)."""
        name = f"{self.name}_nodecheck-{uuid.uuid4().hex[:8]}"
        uid = self.config.uid or IMAGE_UID
        docker_cli(["service", "create", "--name", name, *ONE_SHOT_MODES["global"],
                    "--network", f"{self.name}_rag-network", "--label", f"{LABEL_KEY}={self.name}",
                    "--container-label", f"{LABEL_KEY}={self.name}", "--user", f"{uid}:{uid}", "--read-only",
                    "--cap-drop", "ALL", "--env", "NODE={{.Node.Hostname}}", "--detach",
                    f"{self.config.image}:{self.config.tag}", *command], timeout_s=60)
        client = engine()
        names = self.node_names(client)
        expected = [n for n in self.nodes() if n.state == "ready" and n.availability == "active"]
        tasks: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                tasks = client.services.get(name).tasks()
                if len(tasks) >= len(expected) and all((t.get("Status") or {}).get("State") in ENDED for t in tasks):
                    break
                time.sleep(1.0)
            output = docker_cli(["service", "logs", "--raw", "--no-trunc", name], timeout_s=60, check=False).stdout
        finally:
            docker_cli(["service", "rm", name], timeout_s=60, check=False)
        reports = {}
        for line in output.splitlines():
            try:
                report = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(report, dict) and report.get("node"):
                reports[report["node"]] = report
        found = []
        for task in tasks:
            node = names.get(task.get("NodeID", ""), task.get("NodeID", "?")[:12])
            status = task.get("Status") or {}
            found.append({"node": node, "state": status.get("State"), "error": status.get("Err") or "",
                          "output": reports.get(node)})
        seen = {f["node"] for f in found}
        found += [{"node": n.hostname, "state": None, "error": "no task ran there", "output": None}
                  for n in expected if n.hostname not in seen]
        return found

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

    # -- backup and restore: through the data node's engine ----------------------------------------
    # The data services' volumes are on the data node: backup and restore copy files through its
    # containers, so the CLI must talk to that node's engine (the manager, in the usual layout; else
    # DOCKER_HOST at the data node).  The catalog, postings, extracted text and uploads are one
    # PostgreSQL dump (pg_dump -Fc), restored with pg_restore into the fresh server.
    def service_container(self, service: str, client: docker.DockerClient | None = None):
        container = self.container_of(service, client)
        if container is None:
            data = [n.hostname for n in self.nodes() if n.data]
            raise NotRunning(f"No running {service} container on the engine ragctl talks to; the data services run "
                             f"on {', '.join(data) or 'the data node'}.",
                             f"run it against the data node's engine: DOCKER_HOST=ssh://USER@{data[0] if data else 'NODE'} "
                             "ragctl …   (or from that node)")
        return container

    def stop_for_restore(self) -> bool:
        was_running = is_running(self)
        self.preflight()  # the swarm, the labels and the image: refused before anything is removed
        if was_running:
            self.service_container("postgres")  # restore writes the volumes through this engine
        self.down(volumes=True)
        return was_running

    def restore_stores(self, archive: Path) -> None:
        """Fresh volumes for Chroma and Redis with the archive's files (through a container that mounts
        them on this engine, the data node's); the PostgreSQL dump waits for the server (start_after_restore)."""
        from ragctl.runtime.base import store_tree_tar

        client = engine(timeout_s=600)
        image = f"{self.config.image}:{self.config.tag}"
        uid = self.config.uid or IMAGE_UID
        labels = {NAMESPACE_LABEL: self.name, LABEL_KEY: self.name}
        mounts = {"chroma": "/chroma", "redis": "/data"}
        for tree in mounts:
            client.volumes.create(f"{self.name}_{tree}_data", labels=labels)
        helper = client.containers.create(image, ["true"], user=f"{uid}:{uid}", labels={LABEL_KEY: self.name},
                                          volumes={f"{self.name}_{t}_data": {"bind": m, "mode": "rw"}
                                                   for t, m in mounts.items()})
        try:
            for tree, mount in mounts.items():
                content = store_tree_tar(archive, tree, owner=uid)
                if content:
                    helper.put_archive(mount, content)
        finally:
            helper.remove(force=True)
        self._restore_archive = archive

    restore_wait_s = 900
    #: The postgres service reads its password from the Swarm secret (stack.db_server's default).
    postgres_password_args: tuple[str, ...] = ()

    @property
    def uses_postgres(self) -> bool:
        return True  # stack.yaml always runs PostgreSQL: nodes share no disk


def node_table_rows(nodes: list[NodeInfo]) -> list[dict[str, str]]:
    """``ragctl nodes``' table: one row a node."""
    rows = []
    for node in nodes:
        labels = [key.removeprefix("ragctl.") for key in (DATA_LABEL, GPU_LABEL) if node.labels.get(key) == "true"]
        rows.append({"node": node.hostname + (" (leader)" if node.leader else ""), "role": node.role,
                     "state": node.state, "availability": node.availability, "address": node.address,
                     "labels": ", ".join(labels) or "-", "gpus": str(node.gpus),
                     "replicas": ", ".join(f"{k}×{v}" for k, v in sorted(node.replicas.items())) or "-",
                     "engine": node.engine})
    return rows


def parse_label(text: str) -> tuple[str, bool]:
    """``data=true`` → ("data", True); ``gpu=false`` → ("gpu", False)."""
    key, sep, value = text.partition("=")
    if not sep or value.lower() not in ("true", "false") or key not in NODE_LABELS:
        raise UsageError(f"Not a node label: {text!r}.", "ragctl nodes label NODE data=true   (or gpu=true, gpu=false)")
    return key, value.lower() == "true"


__all__ = ["NodeInfo", "SwarmRuntime", "SwarmService", "node_table_rows", "parse_label"]
