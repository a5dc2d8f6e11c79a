"""The embedded runtime: no services; the CLI process itself parses, embeds and answers, and the
vector store is the persistent Chroma folder under data/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.errors import UsageError
from ragctl.runtime.base import Runtime
from ragctl.runtime.capabilities import BacksUp, Diagnosable, SecurityFacts, Upgradable


@dataclass
class EmbeddedStatus:
    project_root: Path
    running: bool = False
    runtime: str = "embedded"
    api_url: str | None = None
    flower_url: str | None = None
    flower_auth: str | None = None
    services: list[Any] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {"running": False, "mode": "embedded", "runtime": "embedded", "project": str(self.project_root),
                "api_url": None, "services": []}


class EmbeddedRuntime(Runtime, Diagnosable, SecurityFacts, BacksUp, Upgradable):
    kind = "embedded"

    def status(self) -> EmbeddedStatus:
        return EmbeddedStatus(self.root)

    def api_url(self) -> str | None:
        return None

    def up(self, **_options: Any) -> list[Any]:
        raise UsageError("An embedded project has no services to start.", "ragctl up --runtime local   (or docker)")

    def down(self, *, volumes: bool = False) -> list[str]:
        if volumes:
            raise UsageError("An embedded project has no stack; its data is under data/.",
                             "ragctl documents delete ID   (or remove the project folder)")
        return []

    def restart(self, service: str) -> list[Any]:
        raise UsageError(f"An embedded project has no services (not even {service!r}): commands run in the CLI.",
                         "ragctl up --runtime local   (to run the services)")

    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100) -> Iterator[str]:
        raise UsageError("An embedded project has no service logs: commands run in the CLI.",
                         "ragctl up --runtime local   (then ragctl logs SERVICE)")

    def client_settings(self):
        from stack.settings import load_settings

        return load_settings(self.root, {"chroma_url": None})

    def probe(self) -> dict[str, Any]:
        """Only the vector store exists: it is read in this process."""
        try:
            from ragctl.backends.embedded import probe_vectors

            return {"chroma": {"ok": True, **probe_vectors(self.client_settings())}}
        except Exception as exc:  # noqa: BLE001 - reported by the checks that read it
            return {"chroma": {"ok": False, "error": f"{type(exc).__name__}: {exc}"}}

    def maintenance(self, action: str) -> dict[str, Any]:
        return {"paused": True} if action == "pause" else {}
