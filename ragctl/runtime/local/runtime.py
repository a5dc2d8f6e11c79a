"""The local runtime: the stack's services as supervised local processes on loopback.

``LocalRuntime.up`` renders a plan (``run/plan.json``: every service's command, port and log file;
plan.py), starts one detached supervisor (``python -m ragctl.runtime.supervisor <project>``) that
runs the plan, restarts what dies and writes ``run/state.json`` (state.py), then waits until Redis
answers PING, Chroma its heartbeat and the API ``/api/health`` (facts.py).

The CLI imports this package on every command (``read_state`` decides embedded vs stack mode), so
it imports nothing heavy: only the standard library, httpx inside the probes.

Safety: this runtime only ever signals pids that our own state file names *and* that are verified
to be our processes (``/proc/<pid>/cmdline`` holds the expected command and the process start time
matches the one recorded when it was started), never anything else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ragctl.errors import NotRunning, RagctlError, StartTimeout, UsageError
from ragctl.project import CHROMA_TOKEN_KEY, ProjectConfig, ensure_dotenv_value, read_dotenv
from ragctl.runtime.base import Runtime
from ragctl.runtime.capabilities import (
    Announces,
    BacksUp,
    Diagnosable,
    GuardsRedis,
    SecurityFacts,
    Upgradable,
)
from ragctl.runtime.local import facts, plan
from ragctl.runtime.local.plan import ServiceSpec
from ragctl.runtime.local.state import (
    CONTROL_FILE,
    DATA_DIR,
    LOGS_DIR,
    PLAN_FILE,
    RUN_DIR,
    STATE_FILE,
    STOP_GRACE_S,
    SUPERVISOR_MODULE,
    RuntimeState,
    RuntimeStatus,
    ServiceState,
    load_state_file,
    read_logs,
    read_state,
    service_from_dict,
    supervisor_markers,
    tail,
    write_json_atomic,
)
from ragctl.runtime.processes import is_our_process, pid_alive


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
        """Check everything that can be checked before starting, and return the plan (plan.py)."""
        return plan.plan_services(self, workers, flower)

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
        redis_password = plan.redis_password(self.project_root)
        plan.stack_secret(self.project_root, CHROMA_TOKEN_KEY)  # the services and the chroma gate read it from .env
        if flower:
            auth, _ = ensure_dotenv_value(self.project_root, "FLOWER_BASIC_AUTH",
                                          lambda: "admin:" + secrets.token_urlsafe(18))
            next(s for s in specs if s.name == "flower").env["FLOWER_BASIC_AUTH"] = auth
        redis = specs[0]
        plan.render_redis_conf(self, redis.port or 0, redis_password)
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
        planned = {
            "project_root": str(self.project_root),
            "created_at": time.time(),
            "workers": workers,
            "flower": flower,
            "env": env,
            "urls": {"api": urls["api"], "redis": urls["redis"], "chroma": urls["chroma"],
                     "flower": urls.get("flower")},
            "services": [asdict(s) for s in specs],
        }
        write_json_atomic(self.run_dir / PLAN_FILE, planned)
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
                    failing=["supervisor"], logs={"supervisor": tail(self.logs_dir / "supervisor.log", 30)})
            for service in state.services:
                if not ready.get(service.name):
                    ready[service.name] = facts.answers(self, service)
                service.ready = ready[service.name]
                if service.pid is None or service.state != "running":
                    service.ready = ready[service.name] = False
            if progress is not None:
                progress(state.services)
            if all(s.ready for s in state.services):
                return state.services
            if time.monotonic() >= deadline:
                failing = [s.name for s in state.services if not s.ready]
                logs = {name: tail(self.logs_dir / f"{name}.log", 20) for name in failing}
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
                                logs={n: tail(self.logs_dir / f"{n}.log", 20) for n in names})

    def down(self, *, volumes: bool = False, timeout_s: float = 90) -> list[str]:
        """Stop everything this project's runtime started; with ``volumes``, also empty data/."""
        raw = load_state_file(self.project_root)
        stopped: list[ServiceState] = []
        if raw:
            stopped = [service_from_dict(s) for s in raw.get("services", []) if pid_alive(s.get("pid"))]
            pid = raw.get("supervisor_pid")
            markers = supervisor_markers(self.project_root)
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
        return {path.stem: "\n".join(tail(path, lines)) for path in sorted(self.logs_dir.glob("*.log"))}

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
        yield from read_logs(paths, lines=lines, follow=follow, poll_s=poll_s)

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

    # -- facts for doctor's security checks (facts.py) ---------------------------------------------
    def store_ports(self) -> list[tuple[str, str, int]]:
        return facts.store_ports(self)

    def edge(self) -> list[tuple[str, str, int, bool]]:
        return facts.edge(self)

    def chroma_guard(self) -> dict[str, Any] | None:
        return facts.chroma_guard(self)

    def anonymous_redis_ping(self) -> tuple[str, str] | None:
        return facts.anonymous_redis_ping(self)

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
        log = tail(self.logs_dir / "supervisor.log", 20)
        raise RagctlError("The supervisor did not start:\n  " + "\n  ".join(log),
                                hint=f"see {self.logs_dir / 'supervisor.log'}")

    def _signal_supervisor(self, state: RuntimeState, sig: int) -> None:
        raw = load_state_file(self.project_root) or {}
        if not is_our_process(state.supervisor_pid, supervisor_markers(self.project_root),
                              raw.get("supervisor_start_ticks")):
            raise NotRunning("The local stack is not running.", hint="ragctl up --runtime local")
        os.kill(state.supervisor_pid, sig)

    @staticmethod
    def _live_services(raw: dict[str, Any] | None) -> list[dict[str, Any]]:
        if not raw:
            return []
        return [s for s in raw.get("services", [])
                if is_our_process(s.get("pid"), s.get("markers") or [s["name"]], s.get("start_ticks"))]

    def _stop_leftovers(self, raw: dict[str, Any] | None = None) -> None:
        """Stop services left by a supervisor that died without stopping them (verified pids only)."""
        raw = raw if raw is not None else load_state_file(self.project_root)
        if not raw:
            return
        if is_our_process(raw.get("supervisor_pid"), supervisor_markers(self.project_root),
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
