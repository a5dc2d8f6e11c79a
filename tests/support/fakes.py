"""A Runtime that runs nothing: its state, probe and stores are what a test says, and every call
to it is recorded, so doctor's plan, health's verdicts and backup/restore's order can be tested
without processes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ragctl.runtime.base import Runtime
from ragctl.runtime.capabilities import BacksUp, Diagnosable, SecurityFacts, Upgradable
from ragctl.runtimes import KINDS, RuntimeKind

# A test's runtime kind is an entry in the registry like any other (one entry, one module).
KINDS.setdefault("fake", RuntimeKind("fake", "tests.support.fakes:FakeRuntime", "a runtime that runs nothing (tests)",
                                     start_command="ragctl up --runtime fake"))


@dataclass
class FakeService:
    name: str
    state: str = "running"
    ready: bool | None = True

    def summary(self) -> str:
        return self.state

    def label(self) -> str:
        return self.name

    def columns(self) -> dict[str, str]:
        return {"service": self.name, "state": self.state}

    def ps_row(self) -> dict[str, Any]:
        return {"service": self.name, "state": self.state}


@dataclass
class FakeStatus:
    running: bool
    services: list[FakeService]
    api_url: str | None = None
    runtime: str = "fake"
    flower_url: str | None = None
    flower_auth: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "services": [s.ps_row() for s in self.services]}


def healthy_probe(**changes: Any) -> dict[str, Any]:
    """What stack.probe reports for a healthy stack with one worker; ``changes`` replace parts."""
    probe = {
        "redis": {"ok": True, "ms": 1.0, "aof_enabled": True, "intake_paused": None, "queue_depth": 0},
        "celery": {"ok": True, "workers": ["worker-1@host"], "consuming_ingest": ["worker-1@host"],
                   "registered": ["rag.ingest"], "registered_by": {"worker-1@host": ["rag.ingest"]},
                   "backends": {"worker-1@host": "redis://"}},
        "queue": {"ok": True, "queued": 0, "oldest_queued_age_s": None},
        "chroma": {"ok": True, "collections": {"default": {"count": 7, "embed_model": None}}},
    }
    probe.update(changes)
    return probe


class FakeRuntime(Runtime, Diagnosable, SecurityFacts, BacksUp, Upgradable):
    kind = "fake"

    def __init__(self, root: Path, *, running: bool = True, services: list[FakeService] | None = None,
                 probe: dict[str, Any] | None = None, api_url: str | None = "http://127.0.0.1:9",
                 stores: dict[str, bytes] | None = None, after_fix: dict[str, Any] | None = None,
                 ready_after_probes: int = 0) -> None:
        """``after_fix``: the probe once a restart, up or resume has taken effect, which is
        ``ready_after_probes`` probes after the call (a worker that boots slowly)."""
        super().__init__(root)
        self.is_running = running
        self.services = services if services is not None else [FakeService(n) for n in ("redis", "chroma", "api",
                                                                                           "worker-1")]
        self.probe_report = probe if probe is not None else healthy_probe()
        self.api = api_url
        self.stores = stores if stores is not None else {"chroma/chroma.sqlite3": b"vectors",
                                                         "redis/dump.rdb": b"REDIS0011"}
        self.calls: list[str] = []
        self.restored: dict[str, bytes] = {}
        self.after_fix, self.ready_after_probes = after_fix, ready_after_probes
        self.booting: int | None = None
        #: What doctor's security checks read (store_ports, chroma_guard, container_users, edge): a test
        #: sets one to make a fault on purpose (a published port, a root container…).
        self.facts: dict[str, Any] = {"store_ports": [], "chroma_guard": None, "container_users": None, "edge": []}

    def store_ports(self) -> list[tuple[str, str, int]]:
        return self.facts["store_ports"]

    def chroma_guard(self) -> dict[str, Any] | None:
        return self.facts["chroma_guard"]

    def container_users(self) -> dict[str, str] | None:
        return self.facts["container_users"]

    def edge(self) -> list[tuple[str, str, int, bool]]:
        return self.facts["edge"]

    def _fixed(self) -> None:
        if self.after_fix is not None:
            self.booting = self.ready_after_probes

    def status(self) -> FakeStatus:
        return FakeStatus(self.is_running, self.services if self.is_running else [], self.api)

    def up(self, **options: Any) -> list[Any]:
        self.calls.append("up")
        self.is_running = True
        self._fixed()
        return self.services

    def down(self, *, volumes: bool = False) -> list[str]:
        self.calls.append("down --volumes" if volumes else "down")
        self.is_running = False
        return [s.name for s in self.services]

    def restart(self, service: str) -> list[Any]:
        self.calls.append(f"restart {service}")
        self._fixed()
        return [s for s in self.services if s.name == service]

    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        yield from ()

    def probe(self) -> dict[str, Any]:
        self.calls.append("probe")
        if self.booting is not None:
            if self.booting <= 0:
                self.probe_report, self.booting = self.after_fix, None
            else:
                self.booting -= 1
        return self.probe_report

    def maintenance(self, action: str) -> dict[str, Any]:
        self.calls.append(f"maintenance {action}")
        if action == "resume":
            self._fixed()
        return {"pause": {"paused": True}, "bgsave": {"path": "/data/dump.rdb"}}.get(action, {})

    def vector_counts(self) -> dict[str, int]:
        self.calls.append("vector_counts")
        return {name: c["count"] for name, c in self.probe_report["chroma"]["collections"].items()}

    def store_members(self, redis_dump: str | None) -> Iterator[tuple[str, IO[bytes], int]]:
        self.calls.append("store_members")
        for name, content in self.stores.items():
            yield name, io.BytesIO(content), len(content)

    def stop_for_restore(self) -> bool:
        self.calls.append("stop_for_restore")
        was = self.is_running
        self.is_running = False
        return was

    def restore_stores(self, archive: Path) -> None:
        import tarfile

        self.calls.append("restore_stores")
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.split("/", 1)[0] in ("chroma", "redis"):
                    self.restored[member.name] = tar.extractfile(member).read()

    def start_after_restore(self, was_running: bool) -> bool:
        self.calls.append("start_after_restore")
        self.is_running = was_running
        return was_running
