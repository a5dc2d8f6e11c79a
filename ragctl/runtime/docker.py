"""The docker runtime: the rendered Compose stack on a Docker engine.

State is read from Docker (containers carrying this project's label), never from local files.  The
lifecycle runs the Compose v2 CLI (``ragctl.engine.compose``, with timeouts); probes (state,
health, published ports, exec) go through docker-py.  Nothing here acts on a container, volume or
network without this project's label.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ragctl.checks import Check, disk_check, memory_check
from ragctl.deploy import (
    IMAGE_UID,
    LABEL_KEY,
    NGINX_HTTP_PORT,
    NGINX_HTTPS_PORT,
    SERVICE_LABEL,
    DeployConfig,
    load_deploy_config,
    parse_bytes,
    profiles_for,
    write_rendered,
)
from ragctl.engine import compose, compose_argv, engine
from ragctl.errors import DockerError, NotRunning, PreflightFailed, RagctlError, StartTimeout, UsageError
from ragctl.project import ProjectConfig, read_dotenv, set_config_value
from ragctl.runtime.base import Runtime, is_running, parse_last_json
from ragctl.runtime.capabilities import (
    Announces,
    BacksUp,
    Diagnosable,
    GuardsRedis,
    SecurityFacts,
    Upgradable,
)
from ragctl.runtimes import kind_of
from ragctl.sync_services import sync_services_wanted

if TYPE_CHECKING:
    import ssl

    import docker
    from docker.models.containers import Container

#: Services that run once before the others and exit (compose.yaml.j2): shown only when they failed.
ONE_SHOT = ("fix-owner",)
FIXED_NAMES = {"redis": "rag-redis", "chroma": "rag-chroma", "postgres": "rag-postgres", "beat": "rag-beat",
               "flower": "rag-flower", "nginx": "rag-nginx"}
#: Where pg_dump writes (and pg_restore reads) inside the postgres container: its volume, not /tmp.
PG_DUMP = "/pgdata/ragctl.dump"
#: The backup archive's member holding that dump.
PG_MEMBER = "postgres/ragctl.dump"


@dataclass
class ContainerState:
    name: str
    service: str
    state: str  # created | running | restarting | exited | paused | dead
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    exit_code: int | None
    ports: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in (None, "healthy")

    @classmethod
    def of(cls, container: Container) -> ContainerState:
        attrs = container.attrs.get("State", {})
        ports = []
        for port, bindings in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
            for binding in bindings or []:
                ports.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{port}")
        return cls(name=container.name, service=container.labels.get(SERVICE_LABEL, "?"), state=container.status,
                   health=(attrs.get("Health") or {}).get("Status"),
                   exit_code=attrs.get("ExitCode") if container.status in ("exited", "dead") else None,
                   ports=sorted(set(ports)))


@dataclass
class ServiceStatus:
    """One Compose service: its containers and what ``ragctl ps`` shows."""

    service: str
    wanted: int
    containers: list[ContainerState]

    @property
    def running(self) -> int:
        return sum(c.state == "running" for c in self.containers)

    @property
    def ready(self) -> bool:
        return len([c for c in self.containers if c.ready]) >= self.wanted and (self.wanted > 0 or self.running == 0)

    @property
    def state(self) -> str:
        """healthy, running (no healthcheck), starting, unhealthy, restarting, exited or missing."""
        if not self.containers:
            return "missing" if self.wanted else "stopped"
        states = {c.state for c in self.containers}
        health = {c.health for c in self.containers if c.state == "running"}
        if "restarting" in states:
            return "restarting"
        if "unhealthy" in health:
            return "unhealthy"
        if states <= {"exited", "dead", "created"}:
            return "exited"
        if self.running < self.wanted or "starting" in health:
            return "starting"
        return "healthy" if health == {"healthy"} else "running"

    @property
    def name(self) -> str:
        return self.service

    def label(self) -> str:
        return ", ".join(c.name for c in self.containers) or self.service

    def columns(self) -> dict[str, str]:
        ports = sorted({p for c in self.containers for p in c.ports})
        return {"service": self.service, "state": self.state, "replicas": f"{self.running}/{self.wanted}",
                "containers": ", ".join(c.name for c in self.containers) or "-", "ports": ", ".join(ports) or "-"}

    def ps_row(self) -> dict[str, Any]:
        return self.to_dict()

    def summary(self) -> str:
        exits = [f"{c.name} exited {c.exit_code}" for c in self.containers if c.exit_code is not None]
        return f"{self.state}, {self.running}/{self.wanted} running" + (f"; {', '.join(exits)}" if exits else "")

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "state": self.state, "replicas": self.running, "wanted": self.wanted,
                "ready": self.ready, "containers": [asdict(c) for c in self.containers]}


@dataclass
class DockerStatus:
    running: bool
    project_root: Path
    project: str
    services: list[ServiceStatus]
    api_url: str | None = None
    flower_url: str | None = None
    flower_auth: str | None = None
    runtime: str = "docker"

    @property
    def mode(self) -> str:
        return "stack" if self.running else "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "mode": self.mode, "runtime": self.runtime,
                "project": str(self.project_root), "compose_project": self.project, "api_url": self.api_url,
                "flower_url": self.flower_url, "flower_auth": self.flower_auth,
                "services": [s.to_dict() for s in self.services]}


#: The services holding data: never published on the host (doctor's "store ports" check).
STORE_SERVICES = ("redis", "chroma", "postgres", "db")


def _compose_port(entry: Any) -> tuple[str, int]:
    """(host address, published port) of one ``ports:`` entry ("6379", "6379:6379",
    "127.0.0.1:6379:6379", or the long form); port 0 when it publishes nothing."""
    if isinstance(entry, dict):
        published = str(entry.get("published") or "").split("-")[0]
        return str(entry.get("host_ip") or ""), int(published) if published.isdigit() else 0
    text = str(entry).split("/")[0]
    if text.startswith("["):  # [::1]:6379:6379
        host, _, rest = text[1:].partition("]:")
        published = rest.split(":")[0]
    else:
        parts = text.split(":")
        host, published = (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0] if len(parts) == 2 else "")
    published = published.split("-")[0]
    return host, int(published) if published.isdigit() else 0


def _url_host(host_ip: str) -> str:
    return "127.0.0.1" if host_ip in ("", "0.0.0.0", "::") else host_ip


class DockerRuntime(Runtime, Diagnosable, SecurityFacts, GuardsRedis, BacksUp, Upgradable, Announces):
    """The rendered Compose stack of one project on the local Docker engine."""

    kind = "docker"
    #: (engine client, None) or (None, why not), asked once per command (docker_checks._client).
    _engine_answer: tuple | None = None

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
        return wanted | sync_services_wanted(self.project_root)

    def services(self, client: docker.DockerClient | None = None) -> list[ServiceStatus]:
        states = [s for s in map(ContainerState.of, self.containers(client))
                  if not (s.service in ONE_SHOT and s.state == "exited" and s.exit_code == 0)]
        wanted = self.wanted()
        names = list(wanted) + sorted({s.service for s in states} - set(wanted))
        return [ServiceStatus(name, wanted.get(name, 0),
                              sorted((s for s in states if s.service == name), key=lambda s: s.name))
                for name in names]

    def status(self) -> DockerStatus:
        client = engine()
        containers = self.containers(client)
        services = self.services(client)
        running = any(c.status == "running" for c in containers)
        status = DockerStatus(running=running, project_root=self.project_root, project=self.name, services=services)
        if running:
            scheme = "https" if self.config.https else "http"
            edge = f"{NGINX_HTTPS_PORT if self.config.https else NGINX_HTTP_PORT}/tcp"
            status.api_url = self._published_url(containers, "nginx", edge, scheme) or \
                self._published_url(containers, "api", "8000/tcp", scheme)
            status.flower_url = self._published_url(containers, "flower", "5555/tcp")
            if status.flower_url:
                status.flower_auth = read_dotenv(self.project_root / ".env").get("FLOWER_BASIC_AUTH")
        return status


    def api_verify(self) -> ssl.SSLContext | bool:
        """How clients check the edge's certificate: a context trusting only the project's own
        certificate file when it is self-signed, else the system's trust store (a provided
        certificate from a public or company CA; ``SSL_CERT_FILE`` names another bundle)."""
        import ssl

        from ragctl.deploy import CERT_FILE

        if self.config.tls != "self-signed":
            return True
        return ssl.create_default_context(cafile=str(self.project_root / CERT_FILE))

    @staticmethod
    def _published_url(containers: list[Container], service: str, port: str, scheme: str = "http") -> str | None:
        for container in containers:
            if container.labels.get(SERVICE_LABEL) != service or container.status != "running":
                continue
            for binding in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(port) or []:
                if binding.get("HostPort"):
                    return f"{scheme}://{_url_host(binding.get('HostIp', ''))}:{binding['HostPort']}"
        return None

    # -- pre-flight ---------------------------------------------------------------------------
    def preflight(self) -> list[Check]:
        """Everything ``up`` needs, checked before anything starts.  Raises PreflightFailed."""
        from docker.errors import ImageNotFound

        from ragctl.engine import compose_command
        from ragctl.images import image_name

        client = engine()  # EngineUnavailable is itself a pre-flight failure (exit 4)
        info = client.info()
        checks: list[Check] = []
        try:
            compose_command()
            checks.append(Check("compose", "ok", "Compose v2 found"))
        except DockerError as exc:
            checks.append(Check("compose", "fail", exc.message, hint=exc.hint))
        image = image_name(self.config)
        try:
            client.images.get(image)
            checks.append(Check("image", "ok", f"{image} is on the engine"))
        except ImageNotFound:
            checks.append(Check("image", "fail", f"the image {image} is not on this engine",
                                hint="ragctl build   (or ragctl bundle load FILE on a closed network)"))
        cpus, memory = info.get("NCPU", 0), info.get("MemTotal", 0)
        for service, wanted_cpus, wanted_memory in (("api", self.config.api_cpus, self.config.api_memory),
                                                    ("worker", self.config.worker_cpus, self.config.worker_memory)):
            if cpus and wanted_cpus > cpus:
                checks.append(Check(f"{service} cpus", "fail",
                                    f"{service}_cpus = {wanted_cpus:g} but the engine has {cpus} CPUs",
                                    hint=f"set {service}_cpus = {cpus} under [stack] in ragctl.toml"))
            if memory and parse_bytes(wanted_memory) > memory:
                checks.append(Check(f"{service} memory", "fail",
                                    f"{service}_memory = {wanted_memory} but the engine has "
                                    f"{memory / (1 << 30):.1f} GiB", hint=f"lower {service}_memory under [stack]"))
        if self.config.gpu:
            runtimes = set(info.get("Runtimes") or {})
            if "nvidia" in runtimes:
                checks.append(Check("gpu runtime", "ok", "the NVIDIA container runtime is installed"))
            else:
                checks.append(Check("gpu runtime", "fail",
                                    f"GPU is on but the engine has no nvidia runtime (runtimes: "
                                    f"{', '.join(sorted(runtimes)) or 'none'})",
                                    hint="install nvidia-container-toolkit and run: nvidia-ctk runtime configure "
                                    "--runtime=docker && systemctl restart docker   (or gpu = false)"))
        checks += self.port_checks(client)
        checks += self._name_checks(client)
        checks += self._resource_checks(info)
        if any(c.status == "fail" for c in checks):
            raise PreflightFailed(checks=checks)
        return checks

    def published_ports(self) -> list[tuple[str, str, int]]:
        """(service, host address, port) this configuration publishes."""
        config = self.config
        ports = [("nginx", config.nginx_bind, config.nginx_port) if config.nginx else
                 ("api", config.api_bind, config.api_port)]
        if config.nginx and config.https and config.nginx_http_port:
            ports.append(("nginx_http", config.nginx_bind, config.nginx_http_port))
        if config.flower:
            ports.append(("flower", "127.0.0.1", config.flower_port))
        return ports

    # -- facts for doctor's security checks (ragctl/ops/security.py) ------------------------------

    def _rendered_services(self) -> dict[str, Any]:
        """compose.yaml's services as written (PyYAML when installed, else ``docker compose config``)."""
        path = self.project_root / "compose.yaml"
        if not path.is_file():
            return {}
        try:
            import yaml
        except ImportError:  # a base install: Compose itself reads the file
            import subprocess

            from ragctl.deploy import validate

            try:
                model = validate(self.project_root, profiles=self.profiles)
            except (DockerError, OSError, subprocess.SubprocessError):
                return {}
        else:
            try:
                model = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                return {}
        services = model.get("services") if isinstance(model, dict) else None
        return services if isinstance(services, dict) else {}

    def store_ports(self) -> list[tuple[str, str, int]]:
        """The data stores' ports that compose.yaml publishes, and those our running containers have."""
        found: set[tuple[str, str, int]] = set()
        for service, spec in self._rendered_services().items():
            if service in STORE_SERVICES and isinstance(spec, dict):
                found.update((service, host, port) for host, port in map(_compose_port, spec.get("ports") or [])
                             if port)
        try:
            containers = self.containers()
        except Exception:  # noqa: BLE001 - no engine: the rendered file is what there is to read
            containers = []
        for container in containers:
            service = container.labels.get(SERVICE_LABEL, "")
            if service not in STORE_SERVICES or container.status != "running":
                continue
            for bindings in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                for binding in bindings or []:
                    if binding.get("HostPort"):
                        found.add((service, binding.get("HostIp", ""), int(binding["HostPort"])))
        return sorted(found)

    def chroma_guard(self) -> dict[str, Any] | None:
        """Compose's chroma runs the token gate, with Chroma itself on the container's loopback."""
        chroma = self._rendered_services().get("chroma")
        if not isinstance(chroma, dict):
            return None  # not rendered yet: render writes the gate in
        command = chroma.get("command") or []
        text = " ".join(command) if isinstance(command, list) else str(command)
        if "stack.chroma_gate" in text:
            return {"isolated": True, "listen": "chroma:8000",
                    "inner": "127.0.0.1 inside the chroma container (only the gate reaches it)"}
        return {"isolated": False, "error": "compose.yaml's chroma service runs without the token gate"}

    def container_users(self) -> dict[str, str] | None:
        try:
            containers = self.containers()
        except Exception:  # noqa: BLE001 - no engine: nothing to inspect
            return {}
        return {c.name: str((c.attrs.get("Config") or {}).get("User") or "") for c in containers
                if c.status == "running"}

    def edge(self) -> list[tuple[str, str, int, bool]]:
        config = self.config
        tls = getattr(config, "tls", "off") != "off"
        if config.nginx:
            return [("nginx", config.nginx_bind, int(config.nginx_port or 80), tls)]
        return [("api", config.api_bind, config.api_port, tls)]

    def port_checks(self, client: docker.DockerClient) -> list[Check]:
        from ragctl.runtime.ports import port_free, port_holder

        checks = []
        others = client.containers.list(filters={"status": "running"}, ignore_removed=True)
        for service, host, port in self.published_ports():
            holders = [c for c in others if any(
                binding.get("HostPort") == str(port)
                for bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values()
                for binding in bindings or [])]
            ours = [c for c in holders if c.labels.get(LABEL_KEY) == self.name]
            if ours:
                checks.append(Check(f"port {port}", "ok", f"already published by this stack ({ours[0].name})"))
            elif holders:
                checks.append(Check(f"port {port}", "fail", f"{service}'s port {port} is published by the "
                                    f"container {holders[0].name}, which is not part of this project",
                                    hint=f"choose another port: set {service}_port under [stack] in ragctl.toml"))
            elif not port_free(port, host if host not in ("", "::") else "0.0.0.0"):
                holder = port_holder(port)
                checks.append(Check(f"port {port}", "fail",
                                    f"{service}'s port {port} is taken{' by ' + holder if holder else ''}",
                                    hint=f"stop that process, or set {service}_port under [stack] in ragctl.toml"))
            else:
                checks.append(Check(f"port {port}", "ok", f"free for {service}"))
        return checks

    def _name_checks(self, client: docker.DockerClient) -> list[Check]:
        checks = []
        wanted = self.wanted()
        existing = {c.name: c for c in client.containers.list(all=True, ignore_removed=True)}
        for service, name in FIXED_NAMES.items():
            container = existing.get(name)
            if service in wanted and container is not None and container.labels.get(LABEL_KEY) != self.name:
                owner = container.labels.get(LABEL_KEY) or container.labels.get("com.docker.compose.project")
                checks.append(Check(f"name {name}", "fail",
                                    f"a container named {name} exists and is not part of this project"
                                    f"{f' (it belongs to {owner})' if owner else ''}; ragctl never touches it",
                                    hint=f"stop that stack first (ragctl -p ITS_PROJECT down), or rename it: "
                                    f"docker rename {name} {name}-old"))
        return checks

    def _resource_checks(self, info: dict[str, Any]) -> list[Check]:
        return [disk_check("docker disk", Path(info.get("DockerRootDir") or "/var/lib/docker")),
                disk_check("project disk", self.project_root), *memory_check()]

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
            set_config_value(self.project_root, "stack", "workers", workers)
            self.config = load_deploy_config(self.project_root)
        wait_s = 300 if wait_s is None else wait_s
        self._pin_database()
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files)
        self.preflight()
        args = ["up", "-d", "--remove-orphans", *(services or [])]
        return self._run_and_wait(args, services, wait_s=wait_s, progress=progress)

    def _pin_database(self) -> None:
        """Write down where the state lives when ragctl.toml leaves it to the data folder's contents
        (load_deploy_config): a stack that started on one never finds itself on the other."""
        if "database" not in ProjectConfig.load(self.project_root).table("stack"):
            set_config_value(self.project_root, "stack", "database", self.config.database)

    def _run_and_wait(self, args: list[str], services: list[str] | None, *, wait_s: float,
                      progress: Callable[[list[ServiceStatus]], None] | None) -> list[ServiceStatus]:
        outcome: dict[str, BaseException | None] = {}

        def run() -> None:
            try:
                compose(self.project_root, args, profiles=self.profiles, timeout_s=wait_s + 120)
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
        compose(self.project_root, args, profiles=["flower", "nginx"], timeout_s=timeout_s)
        return before

    def restart(self, service: str, *, wait_s: float = 180) -> list[ServiceStatus]:
        """Restart one service's containers (starting stopped ones); the others keep running."""
        known = self.wanted()
        if service not in known:
            raise DockerError(f"Unknown service {service!r}.", hint=f"one of: {', '.join(known)}")
        if not any(s.service == service and s.containers for s in self.services()):
            raise NotRunning(f"{service} has no container in {self.name}.", hint="ragctl up")
        compose(self.project_root, ["restart", "--timeout", "20", service], profiles=self.profiles,
                timeout_s=wait_s + 60)
        ready = self.wait_ready([service], wait_s=wait_s)
        if service == "api":
            self.reload_nginx()
        return [s for s in ready if s.service == service]

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[ServiceStatus]], None] | None = None) -> list[ServiceStatus]:
        """Set worker and/or API replicas live: recorded in ragctl.toml, re-rendered, applied without
        recreating running containers; Nginx re-reads the API replicas."""

        self.record_replicas(replicas)
        args = ["up", "-d", "--no-deps", "--no-recreate", *replicas]
        ready = self._run_and_wait(args, list(replicas), wait_s=wait_s, progress=progress)
        if "api" in replicas:
            self.reload_nginx()
        return ready

    def record_replicas(self, replicas: dict[str, int]) -> None:
        """Check a scale request against a running stack, record it in ragctl.toml and re-render."""
        keys = {"worker": "workers", "api": "api_replicas"}
        unknown = set(replicas) - set(keys)
        if unknown:
            raise DockerError(f"Only worker and api scale (not {', '.join(sorted(unknown))}).",
                              hint="ragctl scale worker=3 api=2")
        from pydantic import ValidationError

        try:
            DeployConfig(**(self.config.model_dump() | {keys[k]: v for k, v in replicas.items()}))
        except ValidationError as exc:
            error = exc.errors()[0]
            raise UsageError(f"{error['loc'][0]}: {error['msg']} (asked {error.get('input')!r}).",
                             "ragctl scale worker=N api=M   (workers 0–64, API replicas 1–16)") from exc
        if not any(s.running for s in self.services()):
            raise NotRunning(f"The stack {self.name} is not running.", hint="ragctl up")
        for service, count in replicas.items():
            set_config_value(self.project_root, "stack", keys[service], count)
        self.config = load_deploy_config(self.project_root)
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files)

    def reload_nginx(self) -> bool:
        """Make Nginx resolve the API service again (after scale or restart); False when it is off."""
        for container in self.containers():
            if container.labels.get(SERVICE_LABEL) == "nginx" and container.status == "running":
                result = container.exec_run(["nginx", "-e", "stderr", "-c", "/app/nginx.conf", "-s", "reload"])
                if result.exit_code != 0:
                    raise DockerError("Nginx did not reload.", stderr=result.output.decode(errors="replace"),
                                      hint="ragctl logs nginx")
                return True
        return False

    def logs(self, service: str | None = None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        """A service's log lines, or every service's (each line prefixed by its container)."""
        import subprocess

        args = ["logs", "--no-color", "--tail", str(lines), *(["--follow"] if follow else []),
                *([service] if service else [])]
        if not follow:
            try:
                yield from compose(self.project_root, args, profiles=self.profiles, timeout_s=60).stdout.splitlines()
            except DockerError as exc:
                yield f"(no logs: {exc.message})"
            return
        command = compose_argv(self.project_root, args, profiles=self.profiles)
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            try:
                for line in proc.stdout:
                    yield line.rstrip("\n")
            finally:
                proc.terminate()

    def exec(self, service: str, command: list[str], *, timeout_s: float = 60) -> tuple[int, str]:
        """Run a command in the first running container of ``service``."""
        for container in self.containers(engine(timeout_s=timeout_s)):
            if container.labels.get(SERVICE_LABEL) == service and container.status == "running":
                result = container.exec_run(command)
                return result.exit_code, result.output.decode(errors="replace")
        raise NotRunning(f"No running {service} container in {self.name}.", hint="ragctl ps")

    def celery_workers(self) -> list[str]:
        """Worker node names that answer a Celery ping (asked from inside a worker container)."""
        code, output = self.exec("worker", ["python", "-m", "celery", "-A", "stack.worker.app", "inspect", "ping",
                                            "--timeout", "5", "--json"], timeout_s=60)
        if code != 0:
            return []
        import json

        try:
            payload = json.loads(output.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return []
        return sorted(payload) if isinstance(payload, dict) else sorted(
            name for item in payload for name in item)


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

    # -- checks -------------------------------------------------------------------------------
    def service_checks(self) -> list[Check]:
        from ragctl.runtime.docker_checks import service_checks

        return service_checks(self)

    def environment_checks(self, *, running: bool) -> list[Check]:
        from ragctl.runtime.docker_checks import environment_checks

        return environment_checks(self, running=running)

    def diagnose_redis(self, probe: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
        from ragctl.runtime.docker_checks import diagnose_redis

        return diagnose_redis(self, probe)

    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        """doctor's security check: Redis's answer to a client without the password (docker_checks)."""
        from ragctl.runtime.docker_checks import anonymous_redis_ping

        return anonymous_redis_ping(self)

    # -- backup and restore -------------------------------------------------------------------
    # With PostgreSQL, the catalog, postings, extracted text, uploads and keys are one pg_dump -Fc,
    # made and loaded inside the postgres container (python -m stack.db_server --dump/--load).
    #: How stack.db_server finds the password in the postgres container (compose.yaml: from .env).
    postgres_password_args: tuple[str, ...] = ("--password-env", "POSTGRES_PASSWORD")
    restore_wait_s = 600

    def catalog_documents(self) -> dict[str, list[str]]:
        if not self.uses_postgres:
            return super().catalog_documents()
        return self.maintenance("documents")

    def store_members(self, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
        if self.uses_postgres:
            yield from self._postgres_dump()
        yield from self._container_files("chroma", "/chroma", "chroma")
        if redis_dump:
            yield from self._container_files("redis", redis_dump, "redis")

    def _db_server(self, container: Container, action: str, path: str) -> None:
        code, output = container.exec_run(["python", "-m", "stack.db_server", *self.postgres_password_args,
                                           action, path])
        if code != 0:
            tool = "pg_dump" if action == "--dump" else "pg_restore"
            raise RagctlError(f"{tool} failed in {container.name}: {output.decode(errors='replace')[-800:]}",
                              "ragctl logs postgres", code="backup_error" if action == "--dump" else "restore_mismatch")

    def _postgres_dump(self) -> Iterator[tuple[str, IO[bytes], int]]:
        postgres = self.service_container("postgres")
        self._db_server(postgres, "--dump", PG_DUMP)
        try:
            for _, reader, size in self._container_files("postgres", PG_DUMP, "postgres"):
                yield PG_MEMBER, reader, size
        finally:
            postgres.exec_run(["rm", "-f", PG_DUMP])

    def _container_files(self, service: str, path: str, prefix: str) -> Iterator[tuple[str, IO[bytes], int]]:
        import tarfile

        container = self.service_container(service, engine(timeout_s=600))
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
                yield f"{prefix}/{relative}", tar.extractfile(member), member.size

    def service_container(self, service: str, client: docker.DockerClient | None = None) -> Container:
        """A container of ``service`` on this engine (what backup and restore copy files through)."""
        container = next((c for c in self.containers(client) if c.labels.get(SERVICE_LABEL) == service), None)
        if container is None:
            raise NotRunning(f"No {service} container in {self.name}.", "ragctl up")
        return container

    def stop_for_restore(self) -> bool:
        was_running = is_running(self)
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files)
        self.preflight()  # image, names, ports, limits: refused before anything is removed
        self.down(volumes=True)
        return was_running

    def restore_stores(self, archive: Path) -> None:
        """Create (not start) redis and chroma with their fresh volumes, and copy the files in; the
        PostgreSQL dump waits for its server (start_after_restore)."""
        from ragctl.runtime.base import store_tree_tar

        compose(self.project_root, ["up", "--no-start", "redis", "chroma"], profiles=self.profiles, timeout_s=300)
        targets = {"chroma": "/chroma", "redis": "/data"}
        containers = {c.labels.get(SERVICE_LABEL): c for c in self.containers(engine(timeout_s=600))}
        for tree, mount in targets.items():
            content = store_tree_tar(archive, tree)
            if content:
                containers[tree].put_archive(mount, content)
        self._restore_archive = archive

    def start_after_restore(self, was_running: bool) -> bool:
        """Start the stack (its volumes were recreated), then fill PostgreSQL: the archive's dump, or
        for an archive of a stack from before PostgreSQL, its SQLite state moved in (checked, as
        ``ragctl upgrade`` does); the services that cache the catalog restart."""
        self.up(wait_s=self.restore_wait_s)
        archive = getattr(self, "_restore_archive", None)
        if archive is not None and self.uses_postgres and self._restore_database(archive):
            for service in ("api", "worker", "beat"):
                self.restart(service)
        return True

    def _restore_database(self, archive: Path) -> bool:
        """Load the archive's database into the fresh server; False when the archive has none."""
        import tarfile

        with tarfile.open(archive, mode="r:gz") as tar:
            names = set(tar.getnames())
            if PG_MEMBER not in names:
                if not any(name.startswith(("data/catalog.sqlite", "data/keys.sqlite", "data/lexical/"))
                           for name in names):
                    return False
                self._move_state(replace=False)  # restore wrote those files into data/
                return True
            dump = tar.extractfile(PG_MEMBER).read()
        postgres = self.service_container("postgres")
        user = (postgres.attrs.get("Config") or {}).get("User") or f"{IMAGE_UID}:{IMAGE_UID}"
        uid, _, gid = user.partition(":")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as out:
            info = tarfile.TarInfo(PG_DUMP.rsplit("/", 1)[1])
            info.size, info.mode, info.uid, info.gid = len(dump), 0o600, int(uid), int(gid or uid)
            out.addfile(info, io.BytesIO(dump))
        postgres.put_archive(PG_DUMP.rsplit("/", 1)[0], buffer.getvalue())
        try:
            self._db_server(postgres, "--load", PG_DUMP)
        finally:
            postgres.exec_run(["rm", "-f", PG_DUMP])
        return True

    def _move_state(self, *, replace: bool) -> dict[str, Any]:
        """The project folder's SQLite state moved into the stack's PostgreSQL (stack.maintenance
        move-state, where the services run); UpgradeFailed with the move's reason when it did not."""
        result = self.run_module("stack.maintenance", ["move-state-replace" if replace else "move-state"],
                                 timeout_s=3600)
        if not result.get("moved"):
            raise UpgradeFailed(result)
        return result


    # -- ragctl upgrade: a stack from before PostgreSQL moves its state in -------------------------
    def upgrade_state(self, *, replace: bool = False, wait_s: float | None = None,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Move a Compose stack's SQLite state into its own PostgreSQL service, in place.

        The stack stops; ragctl.toml switches to ``database = "postgres"``; PostgreSQL starts alone;
        a one-off container of the stopped stack moves the catalog, postings, text, uploads and keys
        (one transaction, verified, rolled back on a difference); the stack starts on PostgreSQL and
        its document ids are checked against the SQLite catalog's.  On any failure the switch is
        undone (the SQLite files were only read), a PostgreSQL volume this run created is removed, and
        the stack starts again as it was."""
        from ragctl.backends.embedded import sqlite_catalog_documents

        say = progress or (lambda _text: None)
        if self.uses_postgres:
            return {"upgraded": False, "database": "postgres",
                    "reason": "the stack keeps its state in PostgreSQL already"}
        started = time.monotonic()
        before = sqlite_catalog_documents(self.project_root)
        was_running = is_running(self)
        client = engine()
        volume = f"{self.name}_postgres_data"
        had_volume = bool(client.volumes.list(filters={"name": volume, "label": f"{LABEL_KEY}={self.name}"}))
        if was_running:
            say("stopping the stack")
            self.down()
        try:
            set_config_value(self.project_root, "stack", "database", "postgres")
            self.config = load_deploy_config(self.project_root)
            write_rendered(self.project_root, files=kind_of(self.kind).rendered_files)
            self.preflight()
            say("starting PostgreSQL")
            compose(self.project_root, ["up", "-d", "postgres"], profiles=self.profiles, timeout_s=300)
            self.wait_ready(["postgres"], wait_s=300)
            say("moving the catalog, postings, extracted text, uploads and keys (checked, one transaction)")
            done = compose(self.project_root, ["run", "--rm", "--no-deps", "-T", "api", "python", "-m",
                                               "stack.maintenance", "move-state-replace" if replace else "move-state"],
                           profiles=self.profiles, timeout_s=3600)
            moved = parse_last_json("stack.maintenance", 0, done.stdout, where="a one-off api container")
            if not moved.get("moved"):
                raise UpgradeFailed(moved)
            say("starting the stack on PostgreSQL")
            self.up(wait_s=wait_s)
            after = self.catalog_documents()
            if after != before:
                raise UpgradeFailed({"code": "documents_differ", "error": (
                    f"the stack on PostgreSQL lists {sum(map(len, after.values()))} documents, the SQLite catalog "
                    f"{sum(map(len, before.values()))}")})
        except BaseException as exc:
            say("rolling back: the stack goes back to its SQLite files")
            self._undo_upgrade(volume if not had_volume else None, restart=was_running)
            if isinstance(exc, RagctlError):
                exc.message = f"Upgrade rolled back, the stack is on its SQLite files again (nothing lost): {exc.message}"
                exc.args = (exc.message,)
            raise
        if not was_running:
            self.down()
        return {"upgraded": True, "database": "postgres", "documents": sum(map(len, before.values())),
                "collections": sorted(before), "move": moved, "running": was_running,
                "seconds": round(time.monotonic() - started, 1)}

    def _undo_upgrade(self, created_volume: str | None, *, restart: bool) -> None:
        set_config_value(self.project_root, "stack", "database", "sqlite")
        self.config = load_deploy_config(self.project_root)
        write_rendered(self.project_root, files=kind_of(self.kind).rendered_files)
        self.down()  # --remove-orphans: the postgres container, no longer in compose.yaml, goes too
        if created_volume:
            from docker.errors import NotFound

            try:
                found = engine().volumes.get(created_volume)
                if (found.attrs.get("Labels") or {}).get(LABEL_KEY) == self.name:
                    found.remove()
            except NotFound:
                pass
        if restart:
            self.up()


class UpgradeFailed(RagctlError):
    """The move into PostgreSQL did not happen (rolled back inside the database)."""

    code = "upgrade_failed"

    def __init__(self, result: dict[str, Any]) -> None:
        differences = result.get("differences") or []
        hints = {"target_not_empty": "if that state is an earlier, abandoned upgrade of this project: ragctl upgrade "
                                     "--replace --yes   (it is deleted first; the SQLite files stay as they are)",
                 "move_mismatch": "fix the cause named above, then ragctl upgrade again"}
        super().__init__(result.get("error") or "the move into PostgreSQL failed",
                         hints.get(result.get("code"), "ragctl doctor   (then ragctl upgrade again)"))
        self.move_code = result.get("code")
        self.differences = differences


class _ChunkReader(io.RawIOBase):
    """A file over docker-py's stream of byte chunks (``get_archive``)."""

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
