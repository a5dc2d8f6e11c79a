"""What ``doctor`` and ``health`` check on a Compose stack beyond what every runtime shares: the
engine, Compose, published ports, the GPU toolkit, Nginx's upload limit, containers killed for
memory, and why the services cannot reach Redis."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from ragctl.checks import Check, disk_check
from ragctl.deploy import SERVICE_LABEL
from ragctl.errors import EngineUnavailable

if TYPE_CHECKING:
    from ragctl.runtime.docker.runtime import DockerRuntime

#: Where compose.yaml points every service (with the password from .env: redis://:PASSWORD@redis:6379/0).
EXPECTED_REDIS_URL = "redis://redis:6379/0"


def _redis_target(url: str) -> str:
    """A Redis URL without its user information (what it points at, not how it logs in)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def _client(runtime: DockerRuntime):
    """The engine client, or the reason there is none (cached on the runtime for one command)."""
    if runtime.engine_answer is None:
        from ragctl.engine import engine

        try:
            runtime.engine_answer = (engine(timeout_s=10), None)
        except EngineUnavailable as exc:
            runtime.engine_answer = (None, exc)
    return runtime.engine_answer


def environment_checks(runtime: DockerRuntime, *, running: bool) -> list[Check]:
    client, error = _client(runtime)
    checks = [_engine_check(error)]
    checks += _compose_check()
    if client is not None:
        checks.append(disk_check("docker disk", _docker_root(client)))
        if not running:
            checks += [Check(c.name, c.status, c.detail,
                             None if c.status == "ok" else "another program holds a port the stack publishes",
                             c.hint) for c in runtime.port_checks(client)]
    checks += _upload_limit_checks(runtime)
    checks += _gpu_checks(runtime, client)
    checks.append(_state_check(runtime))
    return checks


def _state_check(runtime: DockerRuntime) -> Check:
    if runtime.uses_postgres:
        return Check("state store", "ok", "the catalog, postings, text, uploads and keys are in the stack's PostgreSQL")
    return Check("state store", "warn", "the catalog, postings, text, uploads and keys are SQLite files in data/ "
                 "(a stack from before PostgreSQL)", "API and workers can then never leave this host",
                 hint="ragctl backup, then ragctl upgrade   (moves them into the stack's PostgreSQL, checked)")


def _docker_root(client):
    from pathlib import Path

    return Path(client.info().get("DockerRootDir") or "/var/lib/docker")


def _engine_check(error: EngineUnavailable | None) -> Check:
    if error is None:
        return Check("docker engine", "ok", "the engine answers a ping")
    denied = "Permission denied" in error.message
    return Check("docker socket" if denied else "docker engine", "fail", error.message,
                 "this user may not use the Docker socket" if denied else "the Docker engine is not running",
                 error.hint)


def _compose_check() -> list[Check]:
    from ragctl.engine import compose_command
    from ragctl.errors import DockerError

    try:
        return [Check("compose v2", "ok", " ".join(compose_command()))]
    except DockerError as exc:
        return [Check("compose v2", "fail", exc.message, "Compose v2 is not installed", exc.hint)]


def _upload_limit_checks(runtime: DockerRuntime) -> list[Check]:
    path = runtime.root / "nginx.conf"
    if not runtime.config.nginx or not path.is_file():
        return []
    match = re.search(r"client_max_body_size\s+(\d+)m;", path.read_text())
    nginx_mb = int(match.group(1)) if match else None
    api_mb = runtime.client_settings().max_upload_mb
    if nginx_mb == api_mb + 1:
        return [Check("upload limit", "ok", f"nginx {nginx_mb}m = API {api_mb} MB + multipart")]
    return [Check("upload limit", "fail", f"nginx.conf client_max_body_size {nginx_mb}m, API RAG_MAX_UPLOAD_MB "
                  f"{api_mb}", "Nginx and the API disagree: uploads fail with 413 from one of them",
                  "ragctl render && ragctl restart nginx")]


def _gpu_checks(runtime: DockerRuntime, client) -> list[Check]:
    if not runtime.config.gpu:
        return []
    checks = []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        checks.append(Check("gpu driver", "fail", "nvidia-smi is not on this host", "no NVIDIA driver on the host",
                            "install the NVIDIA driver for your GPU (nvidia-smi must list it)"))
    else:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
        ok = out.returncode == 0
        checks.append(Check("gpu driver", "ok" if ok else "fail", (out.stdout or out.stderr).strip()[:300],
                            None if ok else "the driver does not see a GPU", None if ok else "check the driver: nvidia-smi"))
    if client is not None:
        runtimes = set(client.info().get("Runtimes") or {})
        ok = "nvidia" in runtimes
        checks.append(Check("gpu container runtime", "ok" if ok else "fail",
                            f"engine runtimes: {', '.join(sorted(runtimes))}",
                            None if ok else "the NVIDIA container toolkit is not configured",
                            None if ok else "install nvidia-container-toolkit; nvidia-ctk runtime configure "
                            "--runtime=docker; systemctl restart docker"))
    compose = (runtime.root / "compose.yaml").read_text() if (runtime.root / "compose.yaml").is_file() else ""
    reserved = "capabilities: [gpu]" in compose
    checks.append(Check("gpu reservation", "ok" if reserved else "fail",
                        "compose.yaml reserves GPUs for the workers" if reserved else
                        "compose.yaml has no GPU device reservation",
                        None if reserved else "compose.yaml was rendered before gpu = true",
                        None if reserved else "ragctl render && ragctl up"))
    return checks


def service_checks(runtime: DockerRuntime) -> list[Check]:
    """One check per wanted service (its containers ready), then containers killed for memory."""
    from docker.errors import NotFound

    client, error = _client(runtime)
    if client is None:
        return [_engine_check(error)]
    services = runtime.services(client)
    checks = []
    for service in services:
        if service.wanted == 0 and not service.containers:
            continue
        ok = service.ready
        checks.append(Check(f"service {service.service}", "ok" if ok else "fail", service.summary(),
                            None if ok else "the service is down or failing its healthcheck",
                            None if ok else f"ragctl restart {service.service}   (then ragctl logs {service.service})",
                            None if ok else ("up", "") if not service.containers else ("restart", service.service),
                            {"containers": [c.__dict__ for c in service.containers]}))
    for service in services:
        for container in service.containers:
            try:
                state = client.containers.get(container.name).attrs["State"]
            except NotFound:  # recreated since it was listed
                continue
            if state.get("OOMKilled") or (container.exit_code == 137 and service.service == "worker"):
                limit = runtime.config.worker_memory if service.service == "worker" else runtime.config.api_memory
                checks.append(Check(
                    f"oom {container.name}", "fail", f"{container.name}: OOMKilled={state.get('OOMKilled')}, "
                    f"exit {state.get('ExitCode')}", f"the container was killed for memory (its limit: {limit})",
                    f"raise {service.service}_memory under [stack] in ragctl.toml, then ragctl up"))
    return checks


def diagnose_redis(runtime: DockerRuntime, probe: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
    client, _ = _client(runtime)
    if client is None:
        return "the Docker engine is not reachable", "ragctl doctor", None
    states = {s.service: s for s in runtime.services(client)}
    client_service = probe.get("probed_in", "worker")
    env = _container_env(runtime, client, client_service)
    if not states.get("redis") or not states["redis"].running:
        return "the redis service is down", "ragctl restart redis", ("restart", "redis")
    if _redis_target(env.get("REDIS_URL", EXPECTED_REDIS_URL)) != EXPECTED_REDIS_URL:
        from ragctl.project import redact_url

        cause = (f"REDIS_URL is {redact_url(env['REDIS_URL'])!r} in the {client_service} container, not the redis "
                 f"service ({EXPECTED_REDIS_URL})")
        return (cause,
                "ragctl render && ragctl up   (compose.yaml was edited, or .env overrides REDIS_URL)", None)
    if not _same_network(runtime, client, client_service, "redis"):
        return (f"the {client_service} containers and Redis are not on the same network (rag-network)",
                "ragctl down && ragctl up", None)
    return ("Redis is up but does not answer (overloaded, paused or still loading)", "ragctl restart redis",
            ("restart", "redis"))


def anonymous_redis_ping(runtime: DockerRuntime) -> tuple[str, str] | None:
    """(answer, where) of the stack's Redis to ``redis-cli ping`` without the password, asked inside
    the redis container (Redis is published nowhere): ``NOAUTH …`` when it is protected.  None when
    no redis container runs."""
    from ragctl.errors import RagctlError

    try:
        _, output = runtime.exec("redis", ["redis-cli", "ping"], timeout_s=30)
    except RagctlError:
        return None
    return output.strip(), "the redis container"


def _container_env(runtime: DockerRuntime, client, service: str) -> dict[str, str]:
    for container in runtime.containers(client):
        if container.labels.get(SERVICE_LABEL) == service:
            return dict(item.split("=", 1) for item in container.attrs["Config"].get("Env") or [] if "=" in item)
    return {}


def _same_network(runtime: DockerRuntime, client, a: str, b: str) -> bool:
    networks: dict[str, set] = {}
    for container in runtime.containers(client):
        service = container.labels.get(SERVICE_LABEL)
        if service in (a, b) and container.status == "running":
            networks.setdefault(service, set()).update(container.attrs["NetworkSettings"]["Networks"])
    return bool(networks.get(a, set()) & networks.get(b, set()))
