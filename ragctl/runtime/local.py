"""The local runtime: the stack's services as supervised local processes on loopback.

``LocalRuntime.up`` renders a plan (``run/plan.json``: every service's command, port and log file),
starts one detached supervisor (``python -m ragctl.runtime.supervisor <project>``) that runs the plan,
restarts what dies and writes ``run/state.json``, then waits until Redis answers PING, Chroma its
heartbeat and the API ``/api/health``.

This module is imported by the CLI on every command (``read_state`` decides embedded vs stack
mode), so it imports nothing heavy: only the standard library here, httpx inside the probes.

Safety: this module only ever signals pids that our own state file names *and* that are verified
to be our processes (``/proc/<pid>/cmdline`` holds the expected command and the process start time
matches the one recorded when it was started), never anything else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragctl.errors import NotRunning, PreflightFailed, RagctlError, StartTimeout, UsageError
from ragctl.project import CHROMA_TOKEN_KEY, ProjectConfig, ensure_dotenv_value, read_dotenv, redact_url
from ragctl.runtime.base import Runtime
from ragctl.runtime.capabilities import (
    Announces,
    BacksUp,
    Diagnosable,
    GuardsRedis,
    SecurityFacts,
    Upgradable,
)
from ragctl.runtime.ports import pick_free_port, port_free, port_holder
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


# -- data -------------------------------------------------------------------------------------
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
        return asdict(self)


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


def _supervisor_markers(project_root: Path) -> list[str]:
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


def _service_from_dict(data: dict[str, Any]) -> ServiceState:
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
    if not is_our_process(pid, _supervisor_markers(Path(raw.get("project_root", project_root))),
                          raw.get("supervisor_start_ticks")):
        return None
    services = []
    for item in raw.get("services", []):
        service = _service_from_dict(item)
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


# -- ragctl.toml -----------------------------------------------------------------------------
def local_config(project_root: Path) -> dict[str, Any]:
    """The ``[local]`` table of ragctl.toml with defaults filled in."""
    config: dict[str, Any] = dict(DEFAULT_PORTS)
    config.update(api_app=DEFAULT_API_APP, worker_app=DEFAULT_WORKER_APP)
    config.update(ProjectConfig.load(project_root).table("local"))
    for key in DEFAULT_PORTS:
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise PreflightFailed(f"[local] {key} = {value!r} in ragctl.toml is not a port number.",
                                  hint=f"set [local] {key} to a number from 1 to 65535, or 0 for a free port")
    return config


# -- the plan --------------------------------------------------------------------------------
@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    port: int | None
    markers: list[str]
    #: Services that must be running before this one starts.
    after: list[str]
    #: Stop order: higher groups stop first; redis (0) stops last.
    group: int
    log: str
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def _resp(*words: str) -> bytes:
    """One Redis command in RESP (binary-safe: a password is never parsed as an inline command)."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_ping(port: int, password: str | None = None, *, timeout_s: float = 1) -> bytes:
    """Redis's answer to PING on loopback (after AUTH when a password is given): ``+PONG``, or an
    error such as ``-NOAUTH Authentication required.``  OSError when nothing answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall((_resp("AUTH", password) if password else b"") + _resp("PING"))
        data = b""
        while data.count(b"\r\n") < (2 if password else 1):
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    replies = data.split(b"\r\n")
    if password and not replies[0].startswith(b"+OK"):
        return replies[0]  # AUTH refused: its error
    return replies[1 if password else 0]


def _tail(path: Path, lines: int) -> list[str]:
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


class LocalRuntime(Runtime, Diagnosable, SecurityFacts, GuardsRedis, BacksUp, Upgradable, Announces):
    """The stack of one project as supervised local processes on 127.0.0.1."""

    kind = "local"

    def __init__(self, project_root: Path, config: ProjectConfig | None = None) -> None:
        super().__init__(Path(project_root).expanduser().resolve(), config)
        self.project_root = self.root
        self.run_dir = self.project_root / RUN_DIR
        self.logs_dir = self.project_root / LOGS_DIR
        self.data_dir = self.project_root / DATA_DIR
        self._workers_before_restore = 2

    # -- queries --------------------------------------------------------------------------
    def state(self) -> RuntimeState | None:
        return read_state(self.project_root)

    def ps(self) -> list[ServiceState]:
        state = self.state()
        return state.services if state else []

    def status(self) -> RuntimeStatus:
        state = self.state()
        if state is None:
            return RuntimeStatus(running=False, project_root=self.project_root)
        auth = None
        if state.flower_url:
            auth = read_dotenv(self.project_root / ".env").get("FLOWER_BASIC_AUTH")
        return RuntimeStatus(
            running=True, project_root=self.project_root, supervisor_pid=state.supervisor_pid,
            api_url=state.api_url, redis_url=state.redis_url, chroma_url=state.chroma_url,
            flower_url=state.flower_url, flower_auth=auth, services=state.services,
        )

    def client_settings(self):
        """The project's settings as a client of this stack: its loopback Redis and Chroma server
        while it runs; the project's own (embedded Chroma) when it does not."""
        from stack.settings import load_settings

        status = self.status()
        if not status.running:
            return load_settings(self.project_root, {"chroma_url": None})
        return load_settings(self.project_root, {"redis_url": status.redis_url, "chroma_url": status.chroma_url})

    def service_names(self) -> list[str]:
        raw = load_state_file(self.project_root) or self._load_plan() or {}
        return [s["name"] for s in raw.get("services", [])]

    # -- up -------------------------------------------------------------------------------
    def preflight(self, workers: int = 2, flower: bool = False) -> list[ServiceSpec]:
        """Check everything that can be checked before starting, and return the plan."""
        if workers < 0:
            raise PreflightFailed(f"--workers must be 0 or more, not {workers}.")
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise PreflightFailed(
                "redis-server is not installed (not found on PATH); the local runtime needs it as the "
                "Celery broker.",
                hint="sudo apt-get install redis-server   (Debian/Ubuntu package 'redis-server'), "
                     "then ragctl up --runtime local",
            )
        chroma = Path(sys.executable).parent / "chroma"
        chroma_bin = str(chroma) if chroma.exists() else shutil.which("chroma")
        if chroma_bin is None:
            raise PreflightFailed("The Chroma server command 'chroma' was not found next to "
                                 f"{sys.executable} nor on PATH.",
                                 hint="pip install 'chromadb>=1.0,<2' in this environment")
        config = local_config(self.project_root)
        for key, what in (("api_app", "API"), ("worker_app", "worker")):
            module = str(config[key]).split(":", 1)[0]
            if not self._module_exists(module):
                raise PreflightFailed(f"The {what} module {module} cannot be imported by {sys.executable}.",
                                     hint="install ragctl with its stack extra: pip install -e '.[stack]'")
        ports = self._resolve_ports(config, flower)

        python = sys.executable
        api_app, worker_app = str(config["api_app"]), str(config["worker_app"])
        logs = self.logs_dir

        def log(name: str) -> str:
            return str(logs / f"{name}.log")

        specs = [
            ServiceSpec("redis", [redis_server, str(self.run_dir / "redis.conf")], ports["redis_port"],
                        ["redis-server"], [], 0, log("redis"), f"redis://127.0.0.1:{ports['redis_port']}/0"),
            # Chroma behind its token (stack/chroma_gate.py): the gate answers on the loopback port and
            # runs `chroma run` in a network namespace of its own, where nothing else reaches it.
            ServiceSpec("chroma", [python, "-m", "stack.chroma_gate", "--listen", f"127.0.0.1:{ports['chroma_port']}",
                                   "--path", str(self.data_dir / "chroma"), "--isolate", "auto",
                                   "--status-file", str(self.run_dir / CHROMA_GATE_FILE)],
                        ports["chroma_port"], ["chroma"], [], 1, log("chroma"),
                        f"http://127.0.0.1:{ports['chroma_port']}"),
            ServiceSpec("api", [python, "-m", "uvicorn", api_app, "--host", "127.0.0.1",
                                "--port", str(ports["api_port"]),
                                # The client's address is the API's to decide (RAG_TRUSTED_PROXIES), not uvicorn's.
                                "--no-proxy-headers"],
                        ports["api_port"], ["uvicorn"], ["redis", "chroma"], 2, log("api"),
                        f"http://127.0.0.1:{ports['api_port']}"),
        ]
        # Workers share the machine's cores rather than each asking torch for all of them, unless the
        # project's torch_threads (RAG_TORCH_THREADS, ragctl.toml, .env) says how many each may use.
        from stack.settings import load_settings

        torch_threads = str(load_settings(self.project_root).torch_threads
                            or max(1, (os.cpu_count() or 1) // max(1, workers)))
        for i in range(1, workers + 1):
            specs.append(ServiceSpec(
                f"worker-{i}",
                [python, "-m", "celery", "-A", worker_app, "worker", "--pool", "threads",
                 "-n", f"worker-{i}@%h", "-Q", "ingest,celery", "--loglevel", "INFO"],
                None, ["celery"], ["redis", "chroma"], 2, log(f"worker-{i}"),
                env={"RAG_TORCH_THREADS": torch_threads}))
        specs.append(ServiceSpec(
            "beat", [python, "-m", "celery", "-A", worker_app, "beat", "--schedule",
                     str(self.data_dir / "celerybeat-schedule"), "--loglevel", "INFO"],
            None, ["celery"], ["redis"], 2, log("beat")))
        if flower:
            # The password goes to Flower through its environment (FLOWER_BASIC_AUTH), not argv,
            # so that it does not show in `ps` to every user of the machine.
            specs.append(ServiceSpec(
                "flower", [python, "-m", "celery", "-A", worker_app, "flower", "--address=127.0.0.1",
                           f"--port={ports['flower_port']}"],
                ports["flower_port"], ["celery"], ["redis"], 2, log("flower"),
                f"http://127.0.0.1:{ports['flower_port']}"))
        return specs

    def up(self, *, services: list[str] | None = None, workers: int | None = None, flower: bool = False,
           wait_s: float | None = None,
           progress: Callable[[list[ServiceState]], None] | None = None) -> list[ServiceState]:
        """Start the stack (or report the running one) and wait until it answers."""
        if services:
            raise UsageError("Naming services is for the docker runtime; the local runtime starts them all.",
                             "ragctl up")
        workers = 2 if workers is None else workers
        wait_s = 60 if wait_s is None else wait_s
        running = self.state()
        if running is not None:
            return running.services
        self._stop_leftovers()
        specs = self.preflight(workers, flower)
        for folder in (self.run_dir, self.logs_dir, self.data_dir / "redis", self.data_dir / "chroma"):
            folder.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)  # redis.conf, plan.json and state.json hold the Redis password
        ensure_dotenv_value(self.project_root, "RAG_API_KEY", lambda: secrets.token_urlsafe(32))
        redis_password = self._redis_password()
        self._stack_secret(CHROMA_TOKEN_KEY)  # the services and the chroma gate read it from .env
        if flower:
            auth, _ = ensure_dotenv_value(self.project_root, "FLOWER_BASIC_AUTH",
                                          lambda: "admin:" + secrets.token_urlsafe(18))
            next(s for s in specs if s.name == "flower").env["FLOWER_BASIC_AUTH"] = auth
        redis = specs[0]
        self._render_redis_conf(redis.port or 0, redis_password)
        urls = {s.name: s.url for s in specs if s.url}
        # Every client (the services, and the CLI through the state file) gets the password in its URL;
        # the redis service's own url (ps) stays without it.
        from ragctl.deploy import redis_url

        urls["redis"] = redis_url("127.0.0.1", redis.port or 0, redis_password)
        env = {
            "RAG_PROJECT_ROOT": str(self.project_root),
            "REDIS_URL": urls["redis"],
            "CHROMA_URL": urls["chroma"],
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
        plan = {
            "project_root": str(self.project_root),
            "created_at": time.time(),
            "workers": workers,
            "flower": flower,
            "env": env,
            "urls": {"api": urls["api"], "redis": urls["redis"], "chroma": urls["chroma"],
                     "flower": urls.get("flower")},
            "services": [asdict(s) for s in specs],
        }
        write_json_atomic(self.run_dir / PLAN_FILE, plan)
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        supervisor_log = open(self.logs_dir / "supervisor.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, str(self.project_root)],
                cwd=self.project_root, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=supervisor_log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        finally:
            supervisor_log.close()
        self._wait_supervisor(proc)
        return self.wait_ready(wait_s, progress)

    def wait_ready(self, wait_s: float = 60,
                   progress: Callable[[list[ServiceState]], None] | None = None) -> list[ServiceState]:
        """Wait until every service answers its probe; raise StartTimeoutError with the logs if not."""
        deadline = time.monotonic() + wait_s
        ready: dict[str, bool] = {}
        while True:
            state = self.state()
            if state is None:
                raise StartTimeout(
                    "The supervisor stopped while the stack was starting.",
                    hint=f"see {self.logs_dir / 'supervisor.log'}",
                    failing=["supervisor"], logs={"supervisor": _tail(self.logs_dir / "supervisor.log", 30)})
            for service in state.services:
                if not ready.get(service.name):
                    ready[service.name] = self._probe(service)
                service.ready = ready[service.name]
                if service.pid is None or service.state != "running":
                    service.ready = ready[service.name] = False
            if progress is not None:
                progress(state.services)
            if all(s.ready for s in state.services):
                return state.services
            if time.monotonic() >= deadline:
                failing = [s.name for s in state.services if not s.ready]
                logs = {name: _tail(self.logs_dir / f"{name}.log", 20) for name in failing}
                raise StartTimeout(
                    f"The stack did not become ready within {wait_s:g} s: {', '.join(failing)} "
                    "not answering.  The processes are left running for inspection.",
                    hint="ragctl logs " + failing[0] + "   (then ragctl down, or wait and run ragctl ps)",
                    failing=failing, logs=logs)
            time.sleep(0.5)

    # -- restart / down -------------------------------------------------------------------
    def restart(self, service: str, wait_s: float = 60) -> list[ServiceState]:
        """Restart one service (``worker`` means every worker); returns their new states."""
        state = self.state()
        if state is None:
            raise NotRunning("The local stack is not running.", hint="ragctl up --runtime local")
        names = self._expand(service, [s.name for s in state.services])
        before = {s.name: s.pid for s in state.services}
        write_json_atomic(self.run_dir / CONTROL_FILE, {"restart": names, "at": time.time()})
        self._signal_supervisor(state, signal.SIGHUP)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            current = self.state()
            if current is None:
                raise NotRunning("The local stack stopped during the restart.",
                                      hint="ragctl logs supervisor")
            chosen = [s for s in current.services if s.name in names]
            if all(s.pid and s.pid != before.get(s.name) and s.state == "running" for s in chosen):
                return chosen
            time.sleep(0.3)
        raise StartTimeout(f"{service} did not come back within {wait_s:g} s.",
                                hint=f"ragctl logs {names[0]}", failing=names,
                                logs={n: _tail(self.logs_dir / f"{n}.log", 20) for n in names})

    def down(self, *, volumes: bool = False, timeout_s: float = 90) -> list[str]:
        """Stop everything this project's runtime started; with ``volumes``, also empty data/."""
        raw = load_state_file(self.project_root)
        stopped: list[ServiceState] = []
        if raw:
            stopped = [_service_from_dict(s) for s in raw.get("services", []) if pid_alive(s.get("pid"))]
            pid = raw.get("supervisor_pid")
            markers = _supervisor_markers(self.project_root)
            if is_our_process(pid, markers, raw.get("supervisor_start_ticks")):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline and is_our_process(pid, markers,
                                                                       raw.get("supervisor_start_ticks")):
                    time.sleep(0.2)
                if is_our_process(pid, markers, raw.get("supervisor_start_ticks")):
                    os.kill(pid, signal.SIGKILL)
            self._stop_leftovers(raw)
        for service in stopped:
            service.state, service.pid = "exited", None
        if volumes:
            if self._live_services(load_state_file(self.project_root)):
                raise RagctlError("Some services are still running; data/ was left as it is.",
                                        hint="ragctl ps, then ragctl down again")
            self.wipe_data()
        return [service.name for service in stopped]

    def wipe_data(self) -> None:
        """Delete the contents of data/ (the folder itself stays)."""
        if not self.data_dir.is_dir():
            return
        for entry in self.data_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def recent_logs(self, lines: int) -> dict[str, str]:
        """Every log under logs/, running or not: a stack that crashed left its reasons there."""
        return {path.stem: "\n".join(_tail(path, lines)) for path in sorted(self.logs_dir.glob("*.log"))}

    # -- backup and restore ---------------------------------------------------------------
    def stop_for_restore(self) -> bool:
        state = self.state()
        if state is None:
            return False
        self._workers_before_restore = state.workers
        self.down()
        return True

    def start_after_restore(self, was_running: bool) -> bool:
        if was_running:
            self.up(workers=self._workers_before_restore, wait_s=120)
        return was_running

    # -- logs -----------------------------------------------------------------------------
    def log_path(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100,
             poll_s: float = 0.25) -> Iterator[str]:
        """The last ``lines`` lines of a service's log; with ``follow``, then new lines as they come
        (until the caller stops iterating).  ``worker`` means every worker, each line prefixed."""
        known = self.service_names() or sorted(p.stem for p in self.logs_dir.glob("*.log"))
        if service is None:
            raise UsageError(f"Name a service: {', '.join([*known, 'supervisor'])}.", "ragctl logs api")
        names = self._expand(service, [*known, "supervisor"])
        paths = {name: self.log_path(name) for name in names}
        missing = [name for name, path in paths.items() if not path.exists()]
        if len(missing) == len(paths):
            raise RagctlError(f"No log for {service} yet ({paths[names[0]]} does not exist).",
                                    hint="ragctl up --runtime local")
        prefix = len(names) > 1
        for name, path in paths.items():
            for line in _tail(path, lines):
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

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _expand(service: str, known: list[str]) -> list[str]:
        if service in known:
            return [service]
        if service in ("worker", "workers"):
            workers = [n for n in known if n.startswith("worker-")]
            if workers:
                return workers
        raise RagctlError(f"Unknown service {service!r}.",
                                hint="one of: " + ", ".join(dict.fromkeys([*known, "worker"])))

    @staticmethod
    def _module_exists(module: str) -> bool:
        import importlib.util

        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    def _resolve_ports(self, config: dict[str, Any], flower: bool) -> dict[str, int]:
        wanted = {k: int(config[k]) for k in DEFAULT_PORTS if flower or k != "flower_port"}
        fixed = {k: v for k, v in wanted.items() if v}
        seen: dict[int, str] = {}
        for key, port in fixed.items():
            if port in seen:
                raise PreflightFailed(f"[local] {key} and {seen[port]} are both {port} in ragctl.toml.",
                                     hint=f"give each service its own port, e.g. [local] {key} = 0 (a free one)")
            seen[port] = key
            if not port_free(port):
                holder = port_holder(port)
                who = f" by {holder}" if holder else ""
                raise PreflightFailed(
                    f"Port {port} on 127.0.0.1 ({key.removesuffix('_port')}) is already taken{who}.",
                    hint=f"stop that process, or set another port in ragctl.toml: [local] {key} = "
                         f"{port + 1}   (0 picks a free one)")
        resolved = dict(fixed)
        for key, port in wanted.items():
            if not port:
                resolved[key] = pick_free_port(set(resolved.values()))
        return resolved

    def _redis_password(self) -> str:
        """The project's Redis password (REDIS_PASSWORD in .env), generated on first use."""
        from ragctl.deploy import REDIS_PASSWORD_KEY

        return self._stack_secret(REDIS_PASSWORD_KEY)

    def _stack_secret(self, key: str) -> str:
        """One of the project's stack secrets (STACK_SECRETS in .env), generated on first use."""
        from ragctl.deploy import checked_secret
        from ragctl.project import new_secret

        value, _ = ensure_dotenv_value(self.project_root, key, new_secret)
        try:
            return checked_secret(key, value)
        except RagctlError as exc:
            raise PreflightFailed(exc.message, hint=exc.hint) from None

    def _chroma_headers(self) -> dict[str, str]:
        token = read_dotenv(self.project_root / ".env").get(CHROMA_TOKEN_KEY, "")
        return {"X-Chroma-Token": token} if token else {}

    # -- facts for doctor's security checks (ragctl/ops/security.py) -------------------------------
    def store_ports(self) -> list[tuple[str, str, int]]:
        """(service, address, port) of the running stores: Redis's ``bind`` in run/redis.conf, the
        chroma gate's listening address."""
        state = self.state()
        if state is None:
            return []
        found = []
        conf = self.run_dir / "redis.conf"
        try:
            for raw in conf.read_text(encoding="utf-8").splitlines():
                words = raw.split()
                if words[:1] == ["bind"]:
                    port = next((s.port for s in state.services if s.name == "redis"), 0) or 0
                    found += [("redis", address, port) for address in words[1:]]
        except OSError:
            pass
        gate = self.chroma_guard()
        if gate and gate.get("listen"):
            host, _, port = str(gate["listen"]).rpartition(":")
            found.append(("chroma", host, int(port or 0)))
        return found

    def edge(self) -> list[tuple[str, str, int, bool]]:
        """The local API listens on 127.0.0.1 only (plain HTTP)."""
        state = self.state()
        api = next((s for s in state.services if s.name == "api"), None) if state else None
        return [("api", "127.0.0.1", api.port or 0, False)] if api else []

    def chroma_guard(self) -> dict[str, Any] | None:
        """What the running chroma gate wrote of itself (isolated: Chroma's own port in a network
        namespace only the gate reaches); None when the stack does not run."""
        if self.state() is None:
            return None
        try:
            return json.loads((self.run_dir / CHROMA_GATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"isolated": None, "error": f"no {self.run_dir / CHROMA_GATE_FILE}: Chroma runs without its gate"}

    def _state_redis_password(self) -> str | None:
        """The password the running stack's clients use (from its state file's Redis URL)."""
        from urllib.parse import unquote, urlsplit

        raw = load_state_file(self.project_root) or {}
        password = urlsplit((raw.get("urls") or {}).get("redis") or "").password
        return unquote(password) if password else None

    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        """(answer, where) of the running Redis to a client without the password (doctor's
        security check): ``-NOAUTH …`` when it is protected.  None when the stack does not run."""
        state = self.state()
        redis = next((s for s in state.services if s.name == "redis"), None) if state else None
        if redis is None or not redis.port:
            return None
        return redis_ping(redis.port).decode(errors="replace"), f"127.0.0.1:{redis.port}"

    def _render_redis_conf(self, port: int, password: str) -> Path:
        """run/redis.conf with ``requirepass``: written owner-only (0600), before the password goes in."""
        from ragctl.deploy import redis_conf

        path = self.run_dir / "redis.conf"
        text = redis_conf(bind="127.0.0.1", port=port, directory=f'"{self.data_dir / "redis"}"', password=password)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older copy may have been 0644
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def _load_plan(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.run_dir / PLAN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _wait_supervisor(self, proc: subprocess.Popen, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            raw = load_state_file(self.project_root)
            if raw and raw.get("supervisor_pid") == proc.pid:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        log = _tail(self.logs_dir / "supervisor.log", 20)
        raise RagctlError("The supervisor did not start:\n  " + "\n  ".join(log),
                                hint=f"see {self.logs_dir / 'supervisor.log'}")

    def _signal_supervisor(self, state: RuntimeState, sig: int) -> None:
        raw = load_state_file(self.project_root) or {}
        if not is_our_process(state.supervisor_pid, _supervisor_markers(self.project_root),
                              raw.get("supervisor_start_ticks")):
            raise NotRunning("The local stack is not running.", hint="ragctl up --runtime local")
        os.kill(state.supervisor_pid, sig)

    @staticmethod
    def _live_services(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
        if not raw:
            return []
        return [s for s in raw.get("services", [])
                if is_our_process(s.get("pid"), s.get("markers") or [s["name"]], s.get("start_ticks"))]

    def _probe(self, service: ServiceState) -> bool:
        """Does the service answer?  Redis: PING; Chroma: heartbeat; API: /api/health."""
        if service.pid is None:
            return False
        try:
            if service.name == "redis" and service.port:
                return redis_ping(service.port, self._state_redis_password()).startswith(b"+PONG")
            if service.name in ("chroma", "api", "flower") and service.url:
                import httpx

                path = {"chroma": "/api/v2/heartbeat", "api": "/api/health", "flower": "/healthcheck"}
                # Chroma's heartbeat authenticates too (the gate answers 401 without the token).
                headers = self._chroma_headers() if service.name == "chroma" else {}
                response = httpx.get(service.url + path[service.name], headers=headers, timeout=2)
                # Flower answers 401 before the password: that is up, too.
                return response.status_code == 200 or (service.name == "flower"
                                                        and response.status_code == 401)
        except (OSError, ValueError, ImportError):
            return False
        except Exception:  # noqa: BLE001 - httpx errors: not ready yet
            return False
        if service.name.startswith("worker-"):
            # Celery prints "<name>@<host> ready." once it is connected and consuming.
            lines = _tail(self.logs_dir / f"{service.name}.log", 400)
            starts = [i for i, line in enumerate(lines) if line.startswith("=== ") and "ragctl: starting" in line]
            return any(line.rstrip().endswith(" ready.") for line in lines[starts[-1] if starts else 0:])
        # Beat: the supervisor marks it running once it stayed up for a moment.
        return service.state == "running"

    def _stop_leftovers(self, raw: dict[str, Any] | None = None) -> None:
        """Stop services left by a supervisor that died without stopping them (verified pids only)."""
        raw = raw if raw is not None else load_state_file(self.project_root)
        if not raw:
            return
        if is_our_process(raw.get("supervisor_pid"), _supervisor_markers(self.project_root),
                          raw.get("supervisor_start_ticks")):
            return
        leftovers = self._live_services(raw)
        by_group: dict[int, list[dict[str, Any]]] = {}
        for item in leftovers:
            by_group.setdefault(int(item.get("group", 2)), []).append(item)
        for group in sorted(by_group, reverse=True):
            items = by_group[group]
            for item in items:
                os.kill(item["pid"], signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and any(pid_alive(i["pid"]) for i in items):
                time.sleep(0.2)
            for item in items:
                if is_our_process(item["pid"], item.get("markers") or [item["name"]], item.get("start_ticks")):
                    os.kill(item["pid"], signal.SIGKILL)
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)
