"""The swarm's nodes as the control plane sees them through one manager's engine: who they are, what
runs where, their ragctl labels, and the command that joins a new one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragctl.deploy import load_deploy_config
from ragctl.engine import engine
from ragctl.errors import DockerError, RagctlError, UsageError
from ragctl.project import set_config_value
from ragctl.runtime.swarm.status import NODE_LABELS, NodeInfo, gpus_of

if TYPE_CHECKING:
    import docker

    from ragctl.runtime.swarm.runtime import SwarmRuntime


def not_manager() -> RagctlError:
    return DockerError("This engine is not a manager of a Docker Swarm.",
                       hint="docker swarm init   (or point DOCKER_HOST at a manager of your swarm)",
                       code="not_swarm_manager")


def engine_is_manager() -> bool:
    swarm = engine().info().get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def node_names(client: docker.DockerClient) -> dict[str, str]:
    """Node id → hostname ({} on a worker node's engine, which cannot list nodes)."""
    try:
        return {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12]) for n in client.nodes.list()}
    except Exception:  # noqa: BLE001 - a worker node's engine cannot list nodes
        return {}


def list_nodes(runtime: SwarmRuntime) -> list[NodeInfo]:
    """Every node, managers first, with this stack's running replicas on each."""
    client = engine()
    try:
        listed = client.nodes.list()
    except Exception as exc:
        raise not_manager() from exc
    replicas: dict[str, dict[str, int]] = {}
    names = {n.id: n.attrs.get("Description", {}).get("Hostname", n.id[:12]) for n in listed}
    for service in client.services.list(filters=runtime.stack_filter()):
        short = service.name.removeprefix(f"{runtime.name}_")
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
            labels=dict(spec.get("Labels") or {}), gpus=gpus_of(description),
            engine=(description.get("Engine") or {}).get("EngineVersion", "?"),
            replicas=replicas.get(hostname, {})))
    return sorted(found, key=lambda n: (n.role != "manager", n.hostname))


def label_node(runtime: SwarmRuntime, node: str, key: str, value: bool) -> NodeInfo:
    """Set (or with ``value`` False remove) ragctl.data / ragctl.gpu on a node."""
    if key not in NODE_LABELS:
        raise UsageError(f"Unknown node label {key!r}.", "ragctl nodes label NODE data=true   (or gpu=true)")
    client = engine()
    try:
        target = client.nodes.get(node)
    except Exception as exc:
        known = ", ".join(n.hostname for n in list_nodes(runtime))
        raise UsageError(f"No node {node!r} in this swarm.", f"one of: {known}   (ragctl nodes)") from exc
    spec = dict(target.attrs["Spec"])
    labels = dict(spec.get("Labels") or {})
    if value:
        labels[NODE_LABELS[key]] = "true"
    else:
        labels.pop(NODE_LABELS[key], None)
    spec["Labels"] = labels
    target.update(spec)
    return next(n for n in list_nodes(runtime) if n.id == target.id[:12])


def join_command() -> str:
    """The command a new node runs to join the swarm as a worker."""
    client = engine()
    try:
        swarm = client.swarm.attrs
    except Exception as exc:
        raise not_manager() from exc
    token = (swarm.get("JoinTokens") or {}).get("Worker")
    if not token:
        raise not_manager()
    info = client.info().get("Swarm") or {}
    managers = [m.get("Addr") for m in info.get("RemoteManagers") or [] if m.get("Addr")]
    address = managers[0] if managers else f"{info.get('NodeAddr')}:2377"
    return f"docker swarm join --token {token} {address}"


def add_node_addresses(runtime: SwarmRuntime) -> None:
    """The nodes' addresses join the self-signed certificate's names (clients reach any of them)."""
    if runtime.config.tls != "self-signed":
        return
    try:
        addresses = [n.address for n in runtime.nodes() if n.address]
    except RagctlError:
        return
    missing = [a for a in addresses if a not in runtime.config.tls_hosts]
    if missing:
        set_config_value(runtime.root, "stack", "tls_hosts", [*runtime.config.tls_hosts, *missing])
        runtime.config = load_deploy_config(runtime.root)
