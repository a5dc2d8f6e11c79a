"""The local runtime's supervisor: ``python -m ragctl.runtime.supervisor <project>``.

Started detached by ``LocalRuntime.up``.  It runs the services of ``run/plan.json`` in order
(redis, chroma, then the API, workers, beat and Flower), writes ``run/state.json`` atomically on
every change, restarts a service that dies (backoff 1 s, 2 s, 4 s ... 10 s; back to 1 s after a
service ran 30 s), and on SIGTERM/SIGINT stops every child (SIGTERM, up to 15 s, then SIGKILL;
redis last) and exits.  SIGHUP makes it read ``run/control.json`` ({"restart": [names]}) and restart
those services at once, without counting them as crashes.

Children get PR_SET_PDEATHSIG(SIGTERM): if the supervisor itself is killed, they stop too.
It only ever signals the processes it started itself.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragctl.runtime.local.state import (
    CONTROL_FILE,
    LOCK_FILE,
    PLAN_FILE,
    RUN_DIR,
    STATE_FILE,
    STOP_GRACE_S,
    write_json_atomic,
)
from ragctl.runtime.processes import proc_start_ticks

TICK_S = 0.2
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 10.0
#: A service that ran this long before dying starts again from the shortest backoff.
STABLE_AFTER_S = 30.0
#: A service without a port counts as running once it stayed up this long.
SETTLE_S = 2.0
LOG_ROTATE_BYTES = 20 * 1024 * 1024

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def say(message: str) -> None:
    print(f"{_now_iso()} supervisor[{os.getpid()}]: {message}", flush=True)


class Service:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.port: int | None = spec.get("port")
        self.proc: subprocess.Popen | None = None
        self.state = "starting"
        self.restarts = 0
        self.started_at: float | None = None
        self.started_mono = 0.0
        self.next_start = 0.0
        self.backoff = BACKOFF_MIN_S
        self.restart_requested = False
        self.stop_deadline: float | None = None
        self.exit_code: int | None = None
        self.start_ticks: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "pid": self.pid, "port": self.port,
            "restarts": self.restarts, "started_at": self.started_at, "log": self.spec["log"],
            "url": self.spec.get("url"), "exit_code": self.exit_code, "start_ticks": self.start_ticks,
            "markers": self.spec["markers"], "group": self.spec["group"],
        }


class Supervisor:
    def __init__(self, root: Path, plan: dict[str, Any]) -> None:
        self.root = root
        self.plan = plan
        self.run_dir = root / RUN_DIR
        self.services = [Service(spec) for spec in plan["services"]]
        self.by_name = {s.name: s for s in self.services}
        self.env = {**os.environ, **plan.get("env", {})}
        self.started_at = time.time()
        self.stop_requested = False
        self.control_requested = False
        self.stopping = False
        self._last_written = ""

    # -- signals ---------------------------------------------------------------------------
    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stop_requested = True

    def _on_hup(self, signum: int, _frame: Any) -> None:
        self.control_requested = True

    # -- state -----------------------------------------------------------------------------
    def write_state(self) -> None:
        data = {
            "supervisor_pid": os.getpid(),
            "supervisor_start_ticks": proc_start_ticks(os.getpid()),
            "project_root": str(self.root),
            "started_at": self.started_at,
            "stopping": self.stopping,
            "workers": self.plan.get("workers", 0),
            "flower": self.plan.get("flower", False),
            "urls": self.plan.get("urls", {}),
            "services": [s.to_dict() for s in self.services],
        }
        text = json.dumps(data, sort_keys=True)
        if text != self._last_written:
            write_json_atomic(self.run_dir / STATE_FILE, data)
            self._last_written = text

    # -- one service -----------------------------------------------------------------------
    def start(self, service: Service) -> None:
        log_path = Path(service.spec["log"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if log_path.stat().st_size > LOG_ROTATE_BYTES:
                os.replace(log_path, log_path.with_name(log_path.name + ".1"))
        except OSError:
            pass
        env = {**self.env, **service.spec.get("env", {})}
        with open(log_path, "ab") as log:
            log.write(f"\n=== {_now_iso()} ragctl: starting {service.name}: "
                      f"{' '.join(service.spec['argv'])}\n".encode())
            log.flush()
            try:
                service.proc = subprocess.Popen(
                    service.spec["argv"], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, close_fds=True, preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded
                )
            except OSError as exc:
                log.write(f"=== ragctl: could not start {service.name}: {exc}\n".encode())
                say(f"could not start {service.name}: {exc}")
                self._crashed(service, time.monotonic(), None)
                return
        service.state = "starting"
        service.started_at = time.time()
        service.started_mono = time.monotonic()
        service.exit_code = None
        service.stop_deadline = None
        service.start_ticks = proc_start_ticks(service.proc.pid)
        say(f"started {service.name} (pid {service.proc.pid})")

    def _crashed(self, service: Service, now: float, code: int | None) -> None:
        ran = now - service.started_mono if service.started_mono else 0.0
        if ran >= STABLE_AFTER_S:
            service.backoff = BACKOFF_MIN_S
        delay = service.backoff
        service.backoff = min(BACKOFF_MAX_S, service.backoff * 2)
        service.restarts += 1
        service.state = "restarting"
        service.next_start = now + delay
        say(f"{service.name} exited (code {code}) after {ran:.1f} s; restarting in {delay:g} s "
            f"(restart {service.restarts})")

    def _ready(self, service: Service, now: float) -> bool:
        if service.port:
            try:
                with socket.create_connection(("127.0.0.1", service.port), timeout=0.2):
                    return True
            except OSError:
                return False
        return now - service.started_mono >= SETTLE_S

    def _deps_running(self, service: Service) -> bool:
        return all(self.by_name[d].state == "running" for d in service.spec.get("after", [])
                   if d in self.by_name)

    def tick(self) -> None:
        now = time.monotonic()
        for service in self.services:
            if service.proc is not None:
                code = service.proc.poll()
                if code is not None:
                    service.proc = None
                    service.exit_code = code
                    service.start_ticks = None
                    if service.restart_requested:
                        service.restart_requested = False
                        service.state = "restarting"
                        service.next_start = now
                        say(f"{service.name} stopped for a restart (code {code})")
                    else:
                        self._crashed(service, now, code)
                else:
                    if service.state == "starting" and self._ready(service, now):
                        service.state = "running"
                        say(f"{service.name} is running")
                    if service.stop_deadline is not None and now >= service.stop_deadline:
                        say(f"{service.name} did not stop in {STOP_GRACE_S:g} s: SIGKILL")
                        service.proc.kill()
                        service.stop_deadline = None
            if (service.proc is None and service.state in ("starting", "restarting")
                    and now >= service.next_start and self._deps_running(service)):
                self.start(service)

    def handle_control(self) -> None:
        try:
            request = json.loads((self.run_dir / CONTROL_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            say(f"SIGHUP without a readable {CONTROL_FILE}: {exc}")
            return
        (self.run_dir / CONTROL_FILE).unlink(missing_ok=True)
        for name in request.get("restart", []):
            service = self.by_name.get(name)
            if service is None:
                continue
            if service.proc is None:
                service.next_start = 0.0
                continue
            say(f"restart requested for {name}")
            service.restart_requested = True
            service.state = "stopping"
            service.stop_deadline = time.monotonic() + STOP_GRACE_S
            service.proc.terminate()

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        self.stopping = True
        say("stopping all services")
        for group in sorted({s.spec["group"] for s in self.services}, reverse=True):
            members = [s for s in self.services if s.spec["group"] == group and s.proc is not None]
            for service in members:
                service.state = "stopping"
                service.proc.terminate()  # type: ignore[union-attr]
            self.write_state()
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and any(s.proc.poll() is None for s in members):  # type: ignore[union-attr]
                time.sleep(0.1)
            for service in members:
                assert service.proc is not None
                if service.proc.poll() is None:
                    say(f"{service.name} did not stop in {STOP_GRACE_S:g} s: SIGKILL")
                    service.proc.kill()
                service.exit_code = service.proc.wait()
                service.proc = None
                service.state = "exited"
                say(f"stopped {service.name} (code {service.exit_code})")
            self.write_state()
        for service in self.services:
            service.state = "exited"

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        say(f"supervising {', '.join(s.name for s in self.services)} for {self.root}")
        self.write_state()
        try:
            while not self.stop_requested:
                if self.control_requested:
                    self.control_requested = False
                    self.handle_control()
                self.tick()
                self.write_state()
                time.sleep(TICK_S)
        finally:
            self.shutdown()
            (self.run_dir / STATE_FILE).unlink(missing_ok=True)
            say("all services stopped; bye")
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ragctl.runtime.supervisor PROJECT_ROOT", file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    run_dir = root / RUN_DIR
    lock = open(run_dir / LOCK_FILE, "w")  # noqa: SIM115 - held for the whole life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"another supervisor already runs {root}; exiting")
        return 1
    plan = json.loads((run_dir / PLAN_FILE).read_text(encoding="utf-8"))
    return Supervisor(root, plan).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
