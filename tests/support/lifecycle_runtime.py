"""A runtime that implements only :class:`~ragctl.runtime.base.Runtime`'s lifecycle, and nothing of
ragctl/runtime/capabilities.py: the proof (tests/unit/test_runtime_conformance.py) that a new
runtime is one module and one registry entry, and that every command copes with what it lacks.

Its "services" are flags in a JSON file under the project, so that separate CLI invocations see
the same state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ragctl.errors import UsageError
from ragctl.runtime.base import Runtime
from ragctl.runtimes import KINDS, RuntimeKind

KIND = "lifecycle-only"
KINDS.setdefault(KIND, RuntimeKind(KIND, "tests.support.lifecycle_runtime:LifecycleOnlyRuntime",
                                   "a test runtime with only the lifecycle", start_command="ragctl up"))
SERVICES = ("redis", "api", "worker-1")


@dataclass
class Service:
    name: str
    state: str
    ready: bool | None = None

    def summary(self) -> str:
        return self.state

    def label(self) -> str:
        return self.name

    def columns(self) -> dict[str, str]:
        return {"service": self.name, "state": self.state}

    def ps_row(self) -> dict[str, Any]:
        return {"service": self.name, "state": self.state}


@dataclass
class Status:
    running: bool
    runtime: str = KIND
    api_url: str | None = None
    flower_url: str | None = None
    flower_auth: str | None = None
    services: list[Service] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "stack" if self.running else "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "mode": self.mode, "runtime": self.runtime, "api_url": self.api_url,
                "services": [s.ps_row() for s in self.services]}


class LifecycleOnlyRuntime(Runtime):
    kind = KIND

    def _state_file(self):
        return self.root / "run" / "lifecycle-only.json"

    def _read(self) -> dict[str, str]:
        path = self._state_file()
        return json.loads(path.read_text()) if path.is_file() else {}

    def _write(self, states: dict[str, str]) -> None:
        self._state_file().parent.mkdir(parents=True, exist_ok=True)
        self._state_file().write_text(json.dumps(states))

    def status(self) -> Status:
        states = self._read()
        services = [Service(name, state, state == "running") for name, state in states.items()]
        return Status(running=bool(states) and all(s == "running" for s in states.values()), services=services)

    def up(self, **_options: Any) -> list[Service]:
        self._write(dict.fromkeys(SERVICES, "running"))
        return self.status().services

    def down(self, *, volumes: bool = False) -> list[str]:
        stopped = list(self._read())
        self._write({})
        return stopped

    def restart(self, service: str) -> list[Service]:
        states = self._read()
        if service not in states:
            raise UsageError(f"No service {service!r}.", "ragctl ps")
        states[service] = "running"
        self._write(states)
        return [s for s in self.status().services if s.name == service]

    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        yield from (f"{name}: {state}" for name, state in self._read().items() if service in (None, name))
