"""What a Compose stack's state reads as: each container, each service (its containers against the
replicas the configuration wants), and the stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ragctl.deploy import SERVICE_LABEL
from ragctl.engine import port_bindings

if TYPE_CHECKING:
    from docker.models.containers import Container

#: Services that run once before the others and exit (compose.yaml.j2): shown only when they failed.
ONE_SHOT = ("fix-owner",)


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
        return cls(name=container.name, service=container.labels.get(SERVICE_LABEL, "?"), state=container.status,
                   health=(attrs.get("Health") or {}).get("Status"),
                   exit_code=attrs.get("ExitCode") if container.status in ("exited", "dead") else None,
                   ports=sorted({str(binding) for binding in port_bindings(container)}))

    @property
    def finished_one_shot(self) -> bool:
        return self.service in ONE_SHOT and self.state == "exited" and self.exit_code == 0


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


def service_statuses(containers: list[Container], wanted: dict[str, int]) -> list[ServiceStatus]:
    """Each wanted service (in the configuration's order), then any other service that has containers."""
    states = [s for s in map(ContainerState.of, containers) if not s.finished_one_shot]
    names = list(wanted) + sorted({s.service for s in states} - set(wanted))
    return [ServiceStatus(name, wanted.get(name, 0), sorted((s for s in states if s.service == name),
                                                            key=lambda s: s.name))
            for name in names]
