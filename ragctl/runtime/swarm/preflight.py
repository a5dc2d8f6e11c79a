"""``ragctl up``'s pre-flight on a swarm (issue #12, #29): the swarm, the data node, where the workers
go, the image.

Two things are settled here rather than asked of the user, and every ``up`` says how:

* **The data node of a one-node swarm.**  When the swarm has exactly one node and no node carries
  ``ragctl.data=true``, that node is the only possible answer: ``up`` labels it (and says so).  With
  two nodes or more, which disk keeps Postgres, Redis and Chroma is the user's choice, and the
  pre-flight asks for it by name.
* **Where CPU workers go** with ``worker_placement = "auto"`` (the default): apart from the data node
  when a ready, active node other than the data node (and not a GPU node) can take them; otherwise
  with the data services, on the data node.  Swarm constraints cannot say "apart if possible", so
  ``up`` resolves "auto" from the nodes it sees and renders the result into stack.yaml: a node that
  joins later (``ragctl nodes join-command``) takes the workers on the next ``up``, and the
  pre-flight row says that they move.  ``"apart"`` and ``"any"`` are kept as they are.

Every failing row's hint is a command or a ``[stack]`` setting that clears that row
(tests/swarm/test_swarm_one_node.py follows each of them on a real swarm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ragctl.checks import Check
from ragctl.deploy import IMAGE_UID, DeployConfig
from ragctl.errors import PreflightFailed
from ragctl.runtime.container_stack import resource_checks

if TYPE_CHECKING:
    from ragctl.runtime.swarm.runtime import SwarmRuntime
    from ragctl.runtime.swarm.status import NodeInfo

#: The node labels that place the stack (here, not in status.py, which imports this module: one way).
DATA_LABEL, GPU_LABEL = "ragctl.data", "ragctl.gpu"

SETTING_HINT = 'set worker_placement = "auto" under [stack] in ragctl.toml'


def usable(node: NodeInfo) -> bool:
    """Ready and active: the swarm places new tasks there."""
    return node.state == "ready" and node.availability == "active"


@dataclass(frozen=True)
class Placement:
    """Where the workers go: ``mode`` is what stack.yaml renders ("gpu", "apart" or "any"), ``nodes``
    the usable nodes that fit it, ``reason`` the words of the pre-flight row."""

    mode: Literal["gpu", "apart", "any"]
    nodes: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def rendered(self) -> str:
        """The ``placement`` argument of ragctl.deploy.render_context (GPU workers ignore it)."""
        return "any" if self.mode == "any" else "apart"


def worker_placement(config: DeployConfig, nodes: list[NodeInfo]) -> Placement:
    ready = [n for n in nodes if usable(n)]
    data = ", ".join(n.hostname for n in nodes if n.data) or "the data node"
    if config.gpu:
        fit = [n.hostname for n in ready if n.labels.get(GPU_LABEL) == "true"]
        return Placement("gpu", fit, f"GPU workers (gpu = true) on nodes labelled {GPU_LABEL}=true")
    apart = [n.hostname for n in ready if not n.data and n.labels.get(GPU_LABEL) != "true"]
    setting = config.worker_placement
    if setting == "apart":
        return Placement("apart", apart, f'worker_placement = "apart": off the data node {data}')
    if setting == "any":
        return Placement("any", [n.hostname for n in ready], 'worker_placement = "any": on any node')
    if apart:
        return Placement("apart", apart, f'worker_placement = "auto": another node than the data node {data} is '
                         "ready, so the workers run apart from the data services")
    return Placement("any", [n.hostname for n in ready], f'worker_placement = "auto": no node but the data node '
                     f"{data} is ready for them, so the workers run with the data services; they move to other "
                     "nodes on the next ragctl up once one joins (ragctl nodes join-command)")


def worker_check(config: DeployConfig, nodes: list[NodeInfo], placement: Placement) -> Check:
    if placement.nodes:
        on_data = sorted(n.hostname for n in nodes if n.data and n.replicas.get("worker"))
        moving = ""
        if placement.mode == "apart" and on_data:
            moving = f"; the workers now on {', '.join(on_data)} move there"
        return Check("worker nodes", "ok", f"workers can run on {', '.join(placement.nodes)} ({placement.reason}"
                     f"{moving})", data={"mode": placement.mode, "nodes": placement.nodes})
    if placement.mode == "gpu":
        gpus = [n.hostname for n in nodes if usable(n) and n.gpus > 0]
        node = gpus[0] if gpus else "NODE"
        return Check("worker nodes", "fail", f"no ready node is labelled {GPU_LABEL}=true for the GPU workers",
                     hint=f"ragctl nodes label {node} gpu=true   (a node with an NVIDIA GPU), or set gpu = false "
                     "under [stack] in ragctl.toml", data={"mode": "gpu", "nodes": []})
    return Check("worker nodes", "fail", f"no ready node fits the workers ({placement.reason}, and no other node "
                 "is ready)", hint=f"{SETTING_HINT} (the workers share the data node until another node joins), "
                 "or add a node: ragctl nodes join-command", data={"mode": placement.mode, "nodes": []})


def lone_unlabelled_node(nodes: list[NodeInfo]) -> NodeInfo | None:
    """The node to label ragctl.data=true without asking: the only node of a one-node swarm, when no
    node carries the label and it takes tasks."""
    if len(nodes) == 1 and not nodes[0].data and usable(nodes[0]):
        return nodes[0]
    return None


def data_node_check(nodes: list[NodeInfo]) -> Check:
    labelled = [n for n in nodes if n.data]
    if len(labelled) == 1:
        node = labelled[0]
        if node.state != "ready":
            return Check("data node", "fail", f"{node.hostname}, which holds Postgres, Redis and Chroma, is "
                         f"{node.state}", "the stack cannot store or queue anything until it is back",
                         hint=f"bring {node.hostname}'s engine back (systemctl start docker on it)")
        if node.availability != "active":
            return Check("data node", "fail", f"{node.hostname}, which holds Postgres, Redis and Chroma, is "
                         f"{node.availability}: the swarm places no task there",
                         hint=f"docker node update --availability active {node.hostname}")
        return Check("data node", "ok", f"{node.hostname} holds Postgres, Redis and Chroma")
    if len(labelled) > 1:
        keep = next((n for n in labelled if n.replicas.get("postgres")), None) or next(
            (n for n in labelled if n.leader), labelled[0])
        others = [n.hostname for n in labelled if n is not keep]
        return Check("data node", "fail", f"{', '.join(n.hostname for n in labelled)} carry {DATA_LABEL}=true; "
                     "exactly one must (the data services' volumes live on it)",
                     hint=" && ".join(f"ragctl nodes label {name} data=false" for name in others)
                     + f"   (the label stays on {keep.hostname}"
                     + (", which runs Postgres)" if keep.replicas.get("postgres") else ")"))
    lone = lone_unlabelled_node(nodes)
    if lone is not None:
        return Check("data node", "ok", f"{lone.hostname} is the swarm's only node: ragctl up labels it "
                     f"{DATA_LABEL}=true, and it holds Postgres, Redis and Chroma")
    manager = next((n for n in nodes if n.leader), nodes[0] if nodes else None)
    return Check("data node", "fail", f"no node carries {DATA_LABEL}=true; one must hold Postgres, Redis and "
                 "Chroma (their volumes live on it)",
                 hint=f"ragctl nodes label {manager.hostname if manager else 'NODE'} data=true   (or another node "
                 "whose disk should keep the data: ragctl nodes lists them)")


def settle_data_node(runtime: SwarmRuntime, nodes: list[NodeInfo]) -> list[NodeInfo]:
    """Label the only node of a one-node swarm ragctl.data=true (saying so); the nodes as they are now."""
    lone = lone_unlabelled_node(nodes)
    if lone is None:
        return nodes
    runtime.note(f"{lone.hostname} is the swarm's only node: labelling it {DATA_LABEL}=true (it holds Postgres, "
                 "Redis and Chroma; when nodes join, the workers move to them on the next ragctl up)")
    runtime.label_node(lone.hostname, "data", True)
    return runtime.nodes()


def plan(runtime: SwarmRuntime) -> Placement:
    """What ``up`` settles before it renders stack.yaml: the only node of a one-node swarm labelled the
    data node, and where the workers go; each said through ``runtime.note`` ("auto"'s choice every
    time, so that a move of the workers is never silent)."""
    config = runtime.config
    nodes = settle_data_node(runtime, runtime.nodes())
    placement = worker_placement(config, nodes)
    if config.worker_placement == "auto" and placement.mode != "gpu" and config.workers and placement.nodes:
        runtime.note(worker_check(config, nodes, placement).detail)
    return placement


def preflight_checks(runtime: SwarmRuntime, info: dict) -> list[Check]:
    """The rows of ``up``'s pre-flight; PreflightFailed when one fails."""
    from docker.errors import ImageNotFound

    from ragctl.engine import engine
    from ragctl.images import image_name

    swarm = info.get("Swarm") or {}
    config = runtime.config
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise PreflightFailed(checks=[Check("swarm", "fail", "this engine is not a manager of an active swarm",
                                            hint="docker swarm init   (or set DOCKER_HOST to a manager's engine)")])
    nodes = runtime.nodes()
    ready = [n for n in nodes if usable(n)]
    checks = [Check("swarm", "ok", f"{len(ready)} of {len(nodes)} nodes ready and active"), data_node_check(nodes)]
    if config.workers:
        checks.append(worker_check(config, nodes, worker_placement(config, nodes)))
    if config.flower:
        checks.append(Check("flower", "fail", "Flower is not part of a swarm stack (ragctl top shows the queue "
                            "and the workers)", hint="set flower = false under [stack] in ragctl.toml"))
    if config.uid not in (None, IMAGE_UID) or config.gid not in (None, IMAGE_UID):
        checks.append(Check("user", "fail", f"uid = {config.uid}, gid = {config.gid}: the swarm's services run as "
                            f"the image's user ({IMAGE_UID}), whose volumes they own",
                            hint="remove the uid and gid lines under [stack] in ragctl.toml"))
    image = image_name(config)
    try:
        engine().images.get(image)
        checks.append(Check("image", "ok", f"{image} is on this node (the others are checked as tasks start)"))
    except ImageNotFound:
        checks.append(Check("image", "fail", f"the image {image} is not on this node",
                            hint="ragctl build   (or ragctl bundle load FILE, made by ragctl bundle save FILE "
                            "where the image is; on every node)"))
    checks += resource_checks(info, runtime.root)
    if any(c.status == "fail" for c in checks):
        raise PreflightFailed(checks=checks)
    return checks


__all__ = ["Placement", "data_node_check", "plan", "preflight_checks", "settle_data_node", "worker_check",
           "worker_placement"]
