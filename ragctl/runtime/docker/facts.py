"""Facts a Compose stack gives doctor's security checks (ragctl/ops/security.py): the data stores'
published ports, Chroma's token gate, the users containers run as, and the edge clients reach."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ragctl.deploy import SERVICE_LABEL
from ragctl.engine import container_user, port_bindings
from ragctl.errors import DockerError
from ragctl.runtime.container_stack import STORE_SERVICES

if TYPE_CHECKING:
    from ragctl.runtime.docker.runtime import DockerRuntime



def compose_port(entry: Any) -> tuple[str, int]:
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


def rendered_services(runtime: DockerRuntime) -> dict[str, Any]:
    """compose.yaml's services as written (PyYAML when installed, else ``docker compose config``)."""
    path = runtime.root / "compose.yaml"
    if not path.is_file():
        return {}
    try:
        import yaml
    except ImportError:  # a base install: Compose itself reads the file
        import subprocess

        from ragctl.deploy import validate

        try:
            model = validate(runtime.root, profiles=runtime.profiles)
        except (DockerError, OSError, subprocess.SubprocessError):
            return {}
    else:
        try:
            model = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return {}
    services = model.get("services") if isinstance(model, dict) else None
    return services if isinstance(services, dict) else {}


def store_ports(runtime: DockerRuntime) -> list[tuple[str, str, int]]:
    """The data stores' ports that compose.yaml publishes, and those our running containers have."""
    found: set[tuple[str, str, int]] = set()
    for service, spec in rendered_services(runtime).items():
        if service in STORE_SERVICES and isinstance(spec, dict):
            found.update((service, host, port) for host, port in map(compose_port, spec.get("ports") or []) if port)
    try:
        containers = runtime.containers()
    except Exception:  # noqa: BLE001 - no engine: the rendered file is what there is to read
        containers = []
    for container in containers:
        service = container.labels.get(SERVICE_LABEL, "")
        if service in STORE_SERVICES and container.status == "running":
            found.update((service, b.host_ip, int(b.host_port)) for b in port_bindings(container))
    return sorted(found)


def chroma_guard(runtime: DockerRuntime) -> dict[str, Any] | None:
    """Compose's chroma runs the token gate, with Chroma itself on the container's loopback."""
    chroma = rendered_services(runtime).get("chroma")
    if not isinstance(chroma, dict):
        return None  # not rendered yet: render writes the gate in
    command = chroma.get("command") or []
    text = " ".join(command) if isinstance(command, list) else str(command)
    if "stack.chroma_gate" in text:
        return {"isolated": True, "listen": "chroma:8000",
                "inner": "127.0.0.1 inside the chroma container (only the gate reaches it)"}
    return {"isolated": False, "error": "compose.yaml's chroma service runs without the token gate"}


def container_users(runtime: DockerRuntime) -> dict[str, str] | None:
    try:
        containers = runtime.containers()
    except Exception:  # noqa: BLE001 - no engine: nothing to inspect
        return {}
    return {c.name: container_user(c) for c in containers if c.status == "running"}


def edge(runtime: DockerRuntime) -> list[tuple[str, str, int, bool]]:
    config = runtime.config
    tls = config.tls != "off"
    if config.nginx:
        return [("nginx", config.nginx_bind, int(config.nginx_port or 80), tls)]
    return [("api", config.api_bind, config.api_port, tls)]
