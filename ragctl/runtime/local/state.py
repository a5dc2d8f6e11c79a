"""The local stack's files under run/ (the supervisor's plan and state, written atomically and
owner-only) and what they read as: each service, the running stack, its status.  Cheap: the CLI
reads the state on every command (``read_state`` decides embedded or stack mode)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragctl.project import redact_url
from ragctl.runtime.processes import is_our_process, pid_alive

RUN_DIR = "run"
LOGS_DIR = "logs"
DATA_DIR = "data"
STATE_FILE = "state.json"
PLAN_FILE = "plan.json"
#: What the chroma gate (stack/chroma_gate.py) says of itself: where Chroma listens, isolated or not.
CHROMA_GATE_FILE = "chroma-gate.json"
CONTROL_FILE = "control.json"
LOCK_FILE = "supervisor.lock"
SUPERVISOR_MODULE = "ragctl.runtime.supervisor"

DEFAULT_PORTS = {"api_port": 8000, "redis_port": 6379, "chroma_port": 8001, "flower_port": 5555}
DEFAULT_API_APP = "stack.api.app:app"
DEFAULT_WORKER_APP = "stack.worker.app"
#: How long a service gets to stop after SIGTERM before SIGKILL (the supervisor uses the same).
STOP_GRACE_S = 15.0


@dataclass
class ServiceState:
    name: str
    state: str  # starting | running | exited | restarting | stopping
    pid: int | None
    port: int | None
    restarts: int = 0
    started_at: float | None = None
    log: str = ""
    url: str | None = None
    exit_code: int | None = None
    #: Filled by ``up`` while it waits: the service answers its health probe.
    ready: bool | None = None

    def summary(self) -> str:
        return f"{self.state}, pid {self.pid}, {self.restarts} restarts"

    def label(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def columns(self) -> dict[str, str]:
        return {"service": self.name, "state": self.state, "pid": str(self.pid or "-"),
                "port": str(self.port or "-"), "restarts": str(self.restarts)}

    def ps_row(self) -> dict[str, Any]:
        return {"service": self.name, "state": self.state, "pid": self.pid, "port": self.port,
                "restarts": self.restarts}

    def to_dict(self) -> dict[str, Any]:
        # "service" as every runtime's status row says it; "name" as the local stack always has.
        return asdict(self) | {"service": self.name}


@dataclass
class RuntimeState:
    """What ``run/state.json`` says, for a supervisor that is alive."""

    project_root: Path
    supervisor_pid: int
    started_at: float
    services: list[ServiceState]
    api_url: str
    redis_url: str
    chroma_url: str
    flower_url: str | None = None
    workers: int = 0
    stopping: bool = False

    @property
    def running(self) -> bool:
        return not self.stopping


@dataclass
class RuntimeStatus:
    running: bool
    project_root: Path
    runtime: str = "local"
    supervisor_pid: int | None = None
    api_url: str | None = None
    redis_url: str | None = None
    chroma_url: str | None = None
    flower_url: str | None = None
    #: ``user:password`` for Flower's basic auth (from the project's .env), when Flower runs.
    flower_auth: str | None = None
    services: list[ServiceState] = field(default_factory=list)

    @property
    def mode(self) -> str:
        """How the CLI's data commands run: through the stack, or embedded in the CLI process."""
        return "stack" if self.running else "embedded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "mode": self.mode,
            "runtime": self.runtime,
            "project": str(self.project_root),
            "supervisor_pid": self.supervisor_pid,
            "api_url": self.api_url,
            "redis_url": redact_url(self.redis_url),
            "chroma_url": self.chroma_url,
            "flower_url": self.flower_url,
            "flower_auth": self.flower_auth,
            "services": [s.to_dict() for s in self.services],
        }


def supervisor_markers(project_root: Path) -> list[str]:
    return [f"{SUPERVISOR_MODULE} {project_root}"]


# -- state file ------------------------------------------------------------------------------
def run_dir(project_root: Path) -> Path:
    return project_root / RUN_DIR


def load_state_file(project_root: Path) -> dict[str, Any] | None:
    """The raw state file, whether or not its supervisor still lives."""
    try:
        return json.loads((run_dir(project_root) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def service_from_dict(data: dict[str, Any]) -> ServiceState:
    return ServiceState(
        name=data["name"], state=data.get("state", "starting"), pid=data.get("pid"), port=data.get("port"),
        restarts=int(data.get("restarts", 0)), started_at=data.get("started_at"), log=data.get("log", ""),
        url=data.get("url"), exit_code=data.get("exit_code"),
    )


def read_state(project_root: Path) -> RuntimeState | None:
    """The running local stack of this project, or None.  Cheap: one small JSON file and /proc."""
    project_root = Path(project_root)
    raw = load_state_file(project_root)
    if not raw:
        return None
    pid = raw.get("supervisor_pid")
    if not is_our_process(pid, supervisor_markers(Path(raw.get("project_root", project_root))),
                          raw.get("supervisor_start_ticks")):
        return None
    services = []
    for item in raw.get("services", []):
        service = service_from_dict(item)
        if service.pid and not pid_alive(service.pid):
            service.state, service.pid = ("restarting" if service.state != "exited" else "exited"), None
        services.append(service)
    urls = raw.get("urls", {})
    return RuntimeState(
        project_root=project_root, supervisor_pid=pid, started_at=raw.get("started_at", 0.0),
        services=services, api_url=urls.get("api", ""), redis_url=urls.get("redis", ""),
        chroma_url=urls.get("chroma", ""), flower_url=urls.get("flower"), workers=int(raw.get("workers", 0)),
        stopping=bool(raw.get("stopping")),
    )


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Owner-only: plan.json and state.json hold the authenticated REDIS_URL.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def tail(path: Path, lines: int) -> list[str]:
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block, data = 8192, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except OSError:
        return []
    return [line.decode("utf-8", errors="replace") for line in data.splitlines()[-lines:]]


def read_logs(paths: dict[str, Path], *, lines: int, follow: bool = False, poll_s: float = 0.25) -> Iterator[str]:
    """The last ``lines`` lines of each log; with ``follow``, then new lines as they come (until the
    caller stops iterating), across rotation and truncation.  Several logs: each line prefixed."""
    prefix = len(paths) > 1
    for name, path in paths.items():
        for line in tail(path, lines):
            yield f"{name} | {line}" if prefix else line
    if not follow:
        return
    positions: dict[str, tuple[int, int]] = {}
    for name, path in paths.items():
        try:
            st = path.stat()
            positions[name] = (st.st_ino, st.st_size)
        except OSError:
            positions[name] = (0, 0)
    partial: dict[str, str] = {}
    while True:
        for name, path in paths.items():
            try:
                st = path.stat()
            except OSError:
                continue
            inode, offset = positions[name]
            if st.st_ino != inode or st.st_size < offset:
                offset = 0  # rotated or truncated
            if st.st_size > offset:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                offset += len(chunk)
                text = partial.pop(name, "") + chunk.decode("utf-8", errors="replace")
                *complete, rest = text.split("\n")
                if rest:
                    partial[name] = rest
                for line in complete:
                    yield f"{name} | {line}" if prefix else line
            positions[name] = (st.st_ino, offset)
        time.sleep(poll_s)
