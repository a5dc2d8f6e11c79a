"""What ``up`` checks before a Compose stack starts (and ``restore`` before it removes anything):
Compose, the image, CPU and memory limits against the engine, the GPU runtime, the ports it
publishes, the fixed container names, disk and memory.  PreflightFailed when any fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragctl.checks import Check
from ragctl.deploy import LABEL_KEY, DeployConfig, parse_bytes
from ragctl.engine import engine, port_bindings
from ragctl.errors import DockerError, PreflightFailed
from ragctl.runtime.container_stack import resource_checks

if TYPE_CHECKING:
    import docker

    from ragctl.runtime.docker.runtime import DockerRuntime

FIXED_NAMES = {"redis": "rag-redis", "chroma": "rag-chroma", "postgres": "rag-postgres", "beat": "rag-beat",
               "flower": "rag-flower", "nginx": "rag-nginx"}


def preflight(runtime: DockerRuntime) -> list[Check]:
    """Everything ``up`` needs, checked before anything starts.  Raises PreflightFailed."""
    from docker.errors import ImageNotFound

    from ragctl.engine import compose_command
    from ragctl.images import image_name

    config = runtime.config
    client = engine()  # EngineUnavailable is itself a pre-flight failure (exit 4)
    info = client.info()
    checks: list[Check] = []
    try:
        compose_command()
        checks.append(Check("compose", "ok", "Compose v2 found"))
    except DockerError as exc:
        checks.append(Check("compose", "fail", exc.message, hint=exc.hint))
    image = image_name(config)
    try:
        client.images.get(image)
        checks.append(Check("image", "ok", f"{image} is on the engine"))
    except ImageNotFound:
        checks.append(Check("image", "fail", f"the image {image} is not on this engine",
                            hint="ragctl build   (or ragctl bundle load FILE on a closed network)"))
    checks += _limit_checks(config, info)
    if config.gpu:
        checks.append(_gpu_runtime_check(info))
    checks += port_checks(runtime, client)
    checks += _name_checks(runtime, client)
    checks += resource_checks(info, runtime.root)
    if any(c.status == "fail" for c in checks):
        raise PreflightFailed(checks=checks)
    return checks


def _limit_checks(config: DeployConfig, info: dict[str, Any]) -> list[Check]:
    checks = []
    cpus, memory = info.get("NCPU", 0), info.get("MemTotal", 0)
    for service, wanted_cpus, wanted_memory in (("api", config.api_cpus, config.api_memory),
                                                ("worker", config.worker_cpus, config.worker_memory)):
        if cpus and wanted_cpus > cpus:
            checks.append(Check(f"{service} cpus", "fail", f"{service}_cpus = {wanted_cpus:g} but the engine has "
                                f"{cpus} CPUs", hint=f"set {service}_cpus = {cpus} under [stack] in ragctl.toml"))
        if memory and parse_bytes(wanted_memory) > memory:
            checks.append(Check(f"{service} memory", "fail",
                                f"{service}_memory = {wanted_memory} but the engine has "
                                f"{memory / (1 << 30):.1f} GiB", hint=f"lower {service}_memory under [stack]"))
    return checks


def _gpu_runtime_check(info: dict[str, Any]) -> Check:
    runtimes = set(info.get("Runtimes") or {})
    if "nvidia" in runtimes:
        return Check("gpu runtime", "ok", "the NVIDIA container runtime is installed")
    return Check("gpu runtime", "fail", f"GPU is on but the engine has no nvidia runtime (runtimes: "
                 f"{', '.join(sorted(runtimes)) or 'none'})",
                 hint="install nvidia-container-toolkit and run: nvidia-ctk runtime configure "
                 "--runtime=docker && systemctl restart docker   (or gpu = false)")


def published_ports(config: DeployConfig) -> list[tuple[str, str, int]]:
    """(service, host address, port) this configuration publishes."""
    ports = [("nginx", config.nginx_bind, config.nginx_port) if config.nginx else
             ("api", config.api_bind, config.api_port)]
    if config.nginx and config.https and config.nginx_http_port:
        ports.append(("nginx_http", config.nginx_bind, config.nginx_http_port))
    if config.flower:
        ports.append(("flower", "127.0.0.1", config.flower_port))
    return ports


def port_checks(runtime: DockerRuntime, client: docker.DockerClient) -> list[Check]:
    from ragctl.runtime.ports import port_free, port_holder

    checks = []
    others = client.containers.list(filters={"status": "running"}, ignore_removed=True)
    for service, host, port in published_ports(runtime.config):
        holders = [c for c in others if any(b.host_port == str(port) for b in port_bindings(c))]
        ours = [c for c in holders if c.labels.get(LABEL_KEY) == runtime.name]
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


def _name_checks(runtime: DockerRuntime, client: docker.DockerClient) -> list[Check]:
    checks = []
    wanted = runtime.wanted()
    existing = {c.name: c for c in client.containers.list(all=True, ignore_removed=True)}
    for service, name in FIXED_NAMES.items():
        container = existing.get(name)
        if service in wanted and container is not None and container.labels.get(LABEL_KEY) != runtime.name:
            owner = container.labels.get(LABEL_KEY) or container.labels.get("com.docker.compose.project")
            checks.append(Check(f"name {name}", "fail",
                                f"a container named {name} exists and is not part of this project"
                                f"{f' (it belongs to {owner})' if owner else ''}; ragctl never touches it",
                                hint=f"stop that stack first (ragctl -p ITS_PROJECT down), or rename it: "
                                f"docker rename {name} {name}-old"))
    return checks
