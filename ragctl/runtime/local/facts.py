"""What the running local stack says of itself: whether each service answers (Redis PING, Chroma's
heartbeat, the API's health, a worker's "ready"), and the facts doctor's security checks read
(the stores' addresses, the chroma gate, the edge, Redis without its password)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.project import CHROMA_TOKEN_KEY, read_dotenv
from ragctl.runtime.local.state import CHROMA_GATE_FILE, ServiceState, load_state_file, tail

if TYPE_CHECKING:
    from ragctl.runtime.local.runtime import LocalRuntime


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


def chroma_headers(root: Path) -> dict[str, str]:
    token = read_dotenv(root / ".env").get(CHROMA_TOKEN_KEY, "")
    return {"X-Chroma-Token": token} if token else {}


def answers(runtime: LocalRuntime, service: ServiceState) -> bool:
    """Does the service answer?  Redis: PING; Chroma: heartbeat; API: /api/health."""
    if service.pid is None:
        return False
    try:
        if service.name == "redis" and service.port:
            return redis_ping(service.port, state_redis_password(runtime.root)).startswith(b"+PONG")
        if service.name in ("chroma", "api", "flower") and service.url:
            import httpx

            path = {"chroma": "/api/v2/heartbeat", "api": "/api/health", "flower": "/healthcheck"}
            # Chroma's heartbeat authenticates too (the gate answers 401 without the token).
            headers = chroma_headers(runtime.root) if service.name == "chroma" else {}
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
        lines = tail(runtime.logs_dir / f"{service.name}.log", 400)
        starts = [i for i, line in enumerate(lines) if line.startswith("=== ") and "ragctl: starting" in line]
        return any(line.rstrip().endswith(" ready.") for line in lines[starts[-1] if starts else 0:])
    # Beat: the supervisor marks it running once it stayed up for a moment.
    return service.state == "running"


def store_ports(runtime: LocalRuntime) -> list[tuple[str, str, int]]:
    """(service, address, port) of the running stores: Redis's ``bind`` in run/redis.conf, the
    chroma gate's listening address."""
    state = runtime.state()
    if state is None:
        return []
    found = []
    conf = runtime.run_dir / "redis.conf"
    try:
        for raw in conf.read_text(encoding="utf-8").splitlines():
            words = raw.split()
            if words[:1] == ["bind"]:
                port = next((s.port for s in state.services if s.name == "redis"), 0) or 0
                found += [("redis", address, port) for address in words[1:]]
    except OSError:
        pass
    gate = chroma_guard(runtime)
    if gate and gate.get("listen"):
        host, _, port = str(gate["listen"]).rpartition(":")
        found.append(("chroma", host, int(port or 0)))
    return found

def edge(runtime: LocalRuntime) -> list[tuple[str, str, int, bool]]:
    """The local API listens on 127.0.0.1 only (plain HTTP)."""
    state = runtime.state()
    api = next((s for s in state.services if s.name == "api"), None) if state else None
    return [("api", "127.0.0.1", api.port or 0, False)] if api else []

def chroma_guard(runtime: LocalRuntime) -> dict[str, Any] | None:
    """What the running chroma gate wrote of itself (isolated: Chroma's own port in a network
    namespace only the gate reaches); None when the stack does not run."""
    if runtime.state() is None:
        return None
    try:
        return json.loads((runtime.run_dir / CHROMA_GATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"isolated": None, "error": f"no {runtime.run_dir / CHROMA_GATE_FILE}: Chroma runs without its gate"}

def state_redis_password(root: Path) -> str | None:
    """The password the running stack's clients use (from its state file's Redis URL)."""
    from urllib.parse import unquote, urlsplit

    raw = load_state_file(root) or {}
    password = urlsplit((raw.get("urls") or {}).get("redis") or "").password
    return unquote(password) if password else None

def anonymous_redis_ping(runtime: LocalRuntime) -> tuple[str, str] | None:
    """(answer, where) of the running Redis to a client without the password (doctor's
    security check): ``-NOAUTH …`` when it is protected.  None when the stack does not run."""
    state = runtime.state()
    redis = next((s for s in state.services if s.name == "redis"), None) if state else None
    if redis is None or not redis.port:
        return None
    return redis_ping(redis.port).decode(errors="replace"), f"127.0.0.1:{redis.port}"
