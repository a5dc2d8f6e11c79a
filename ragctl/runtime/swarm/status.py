"""What a swarm stack's state reads as: each service's tasks on every node, the stack, and the
swarm's nodes (``ragctl nodes``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragctl.errors import UsageError
from ragctl.runtime.swarm.preflight import DATA_LABEL, GPU_LABEL

#: The node labels ``ragctl nodes label`` sets (NODE data=true → ragctl.data=true).
NODE_LABELS = {"data": DATA_LABEL, "gpu": GPU_LABEL}
#: A service's rolling update still going (its old and new replicas both run meanwhile).
UPDATING = ("updating", "rollback_started")


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


def gpus_of(description: dict[str, Any]) -> int:
    total = 0
    for resource in (description.get("Resources") or {}).get("GenericResources") or []:
        spec = resource.get("DiscreteResourceSpec") or {}
        if "GPU" in str(spec.get("Kind", "")).upper():
            total += int(spec.get("Value") or 0)
        named = resource.get("NamedResourceSpec") or {}
        if "GPU" in str(named.get("Kind", "")).upper():
            total += 1
    return total


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
