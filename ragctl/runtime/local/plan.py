"""What the local runtime will run, decided before anything starts: the ``[local]`` settings, the
tools it needs (redis-server, Chroma, the API and worker modules), free ports, the services'
commands (the plan the supervisor runs), the stack's secrets and Redis's configuration file.
PreflightFailed names what is missing and how to get it."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.errors import PreflightFailed, RagctlError
from ragctl.project import ProjectConfig, ensure_dotenv_value
from ragctl.runtime.local.state import CHROMA_GATE_FILE, DEFAULT_API_APP, DEFAULT_PORTS, DEFAULT_WORKER_APP
from ragctl.runtime.ports import pick_free_port, port_free, port_holder

if TYPE_CHECKING:
    from ragctl.runtime.local.runtime import LocalRuntime


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


def plan_services(runtime: LocalRuntime, workers: int = 2, flower: bool = False) -> list[ServiceSpec]:
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
    config = local_config(runtime.root)
    for key, what in (("api_app", "API"), ("worker_app", "worker")):
        module = str(config[key]).split(":", 1)[0]
        if not module_exists(module):
            raise PreflightFailed(f"The {what} module {module} cannot be imported by {sys.executable}.",
                                 hint="install ragctl with its stack extra: pip install -e '.[stack]'")
    ports = resolve_ports(config, flower)

    python = sys.executable
    api_app, worker_app = str(config["api_app"]), str(config["worker_app"])
    logs = runtime.logs_dir

    def log(name: str) -> str:
        return str(logs / f"{name}.log")

    specs = [
        ServiceSpec("redis", [redis_server, str(runtime.run_dir / "redis.conf")], ports["redis_port"],
                    ["redis-server"], [], 0, log("redis"), f"redis://127.0.0.1:{ports['redis_port']}/0"),
        # Chroma behind its token (stack/chroma_gate.py): the gate answers on the loopback port and
        # runs `chroma run` in a network namespace of its own, where nothing else reaches it.
        ServiceSpec("chroma", [python, "-m", "stack.chroma_gate", "--listen", f"127.0.0.1:{ports['chroma_port']}",
                               "--path", str(runtime.data_dir / "chroma"), "--isolate", "auto",
                               "--status-file", str(runtime.run_dir / CHROMA_GATE_FILE)],
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

    torch_threads = str(load_settings(runtime.root).torch_threads
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
                 str(runtime.data_dir / "celerybeat-schedule"), "--loglevel", "INFO"],
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


def resolve_ports(config: dict[str, Any], flower: bool) -> dict[str, int]:
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


def module_exists(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def redis_password(root: Path) -> str:
    """The project's Redis password (REDIS_PASSWORD in .env), generated on first use."""
    from ragctl.deploy import REDIS_PASSWORD_KEY

    return stack_secret(root, REDIS_PASSWORD_KEY)

def stack_secret(root: Path, key: str) -> str:
    """One of the project's stack secrets (STACK_SECRETS in .env), generated on first use."""
    from ragctl.deploy import checked_secret
    from ragctl.project import new_secret

    value, _ = ensure_dotenv_value(root, key, new_secret)
    try:
        return checked_secret(key, value)
    except RagctlError as exc:
        raise PreflightFailed(exc.message, hint=exc.hint) from None


def render_redis_conf(runtime: LocalRuntime, port: int, password: str) -> Path:
    """run/redis.conf with ``requirepass``: written owner-only (0600), before the password goes in."""
    from ragctl.deploy import redis_conf

    path = runtime.run_dir / "redis.conf"
    text = redis_conf(bind="127.0.0.1", port=port, directory=f'"{runtime.data_dir / "redis"}"', password=password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older copy may have been 0644
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
