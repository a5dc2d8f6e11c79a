"""The Chroma server of a stack, behind a token: ``python -m stack.chroma_gate``.

Chroma 1.x's server (the Rust frontend that ``chroma run`` starts) authenticates nobody: its auth
hook is a no-op (chroma-core/chroma#4965) and the ``CHROMA_SERVER_AUTHN_*`` settings of the old
Python server are ignored.  So this process starts ``chroma run`` where only it can reach it, and
answers on the stack's Chroma address itself, forwarding a request only when it carries the
stack's token (``X-Chroma-Token: <CHROMA_TOKEN>`` or ``Authorization: Bearer <CHROMA_TOKEN>``);
anything else gets 401 and never reaches Chroma.  The token comes from the environment or the
project's .env (``CHROMA_TOKEN``, through ``stack.settings``), never from the command line.

Where Chroma listens (``--isolate``):

- ``netns`` (the local runtime, when the kernel allows it): the gate opens its listening socket
  first, then moves itself into a new user + network namespace of its own, brings up that
  namespace's loopback and starts Chroma there on 127.0.0.1.  The listening socket stays in the
  host's namespace; Chroma's port exists only inside the gate's namespace, where no other process of
  the host (no other user, nor our own) can connect to it.
- ``none`` (Compose): Chroma listens on 127.0.0.1 of the container, which is its own network
  namespace; only processes inside the chroma container reach it.
- ``auto``: ``netns`` when possible, else ``none``, said in the log and in ``--status-file``
  (doctor reads it: on a host, ``none`` leaves Chroma's own port open to every local user).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import fcntl
import hmac
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

TOKEN_HEADER = "X-Chroma-Token"
#: Chroma's port inside the gate's own network namespace (nothing else listens there).
INNER_PORT = 8000
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length", "content-encoding", "accept-encoding"}


def log(message: str) -> None:
    print(f"chroma-gate: {message}", file=sys.stderr, flush=True)


# -- isolation -----------------------------------------------------------------------------------
def enter_private_network() -> None:
    """Move this (single-threaded) process into a new user + network namespace with its loopback up.
    OSError when the kernel refuses (no unprivileged user namespaces, seccomp, AppArmor)."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unshare(CLONE_NEWUSER|CLONE_NEWNET): {os.strerror(code)}")
    # Keep our own uid and gid inside (files Chroma writes stay ours); we hold every capability of
    # the new namespace until exec, which is all it takes to bring its loopback up.
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))  # SIOCSIFFLAGS, IFF_UP


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chroma_command() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        raise SystemExit(f"chroma-gate: the Chroma server command 'chroma' is not next to {sys.executable} nor on PATH")
    return found


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- the gate ------------------------------------------------------------------------------------
def authorized(headers: dict[str, str], token: str) -> bool:
    """Does the request carry the token (X-Chroma-Token, or Authorization: Bearer)?"""
    offered = headers.get(TOKEN_HEADER.lower(), "")
    if not offered:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        offered = value.strip() if scheme.lower() == "bearer" else ""
    return bool(offered) and hmac.compare_digest(offered.encode(), token.encode())


def make_app(token: str, upstream: str):
    """The ASGI app: 401 without the token; otherwise the request, forwarded to ``upstream``."""
    import httpx

    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(600, connect=5), trust_env=False)

    async def send_json(send, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not authorized(headers, token):
            await send_json(send, 401, {"error": "Unauthorized",
                                        "message": f"this Chroma server needs the stack's token ({TOKEN_HEADER})"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        forward = {k: v for k, v in headers.items()
                   if k not in _HOP_BY_HOP and k != TOKEN_HEADER.lower() and k != "authorization"}
        path = scope.get("raw_path") or scope["path"].encode()
        url = path.decode("latin-1") + (("?" + scope["query_string"].decode("latin-1")) if scope["query_string"] else "")
        try:
            response = await client.request(scope["method"], url, headers=forward, content=body)
        except httpx.HTTPError as exc:
            await send_json(send, 502, {"error": "BadGateway", "message": f"Chroma does not answer: {exc}"})
            return
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
               if k.lower() not in _HOP_BY_HOP]
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})

    return app


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.chroma_gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT the gate answers on")
    parser.add_argument("--path", required=True, help="Chroma's persistent folder")
    parser.add_argument("--isolate", choices=("auto", "netns", "none"), default="auto")
    parser.add_argument("--status-file", help="where to write {isolated, ...} as JSON (doctor reads it)")
    args = parser.parse_args(argv)

    from stack.settings import service_settings

    secret = service_settings().chroma_token
    token = secret.get_secret_value() if secret else ""
    if len(token) < 16:
        log("CHROMA_TOKEN is not set (or shorter than 16 characters): refusing to start an open Chroma server; "
            "run ragctl render (Docker) or ragctl up (local), which generate it into .env")
        return 2
    host, port = parse_listen(args.listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: uvicorn writes a response's head and body apart, and without
    # it Nagle + delayed ACK add ~40 ms to every request.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(128)
    listener.set_inheritable(False)

    isolated = False
    if args.isolate in ("auto", "netns"):
        try:
            enter_private_network()
            isolated = True
        except OSError as exc:
            if args.isolate == "netns":
                log(f"cannot isolate Chroma in a network namespace: {exc}")
                return 3
            log(f"no private network namespace ({exc}): Chroma listens on this host's loopback, where every "
                "local user can reach its port without the token")
    inner_port = INNER_PORT if isolated else free_loopback_port()
    where = "a private network namespace" if isolated else "127.0.0.1 (shared loopback)"
    command = [chroma_command(), "run", "--path", args.path, "--host", "127.0.0.1", "--port", str(inner_port)]
    chroma = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)  # noqa: PLW1509
    log(f"Chroma (pid {chroma.pid}) on 127.0.0.1:{inner_port} in {where}; the gate answers on {host}:{port} "
        f"and forwards only requests with {TOKEN_HEADER}")
    if args.status_file:
        status = {"isolated": isolated, "listen": f"{host}:{port}", "inner": f"127.0.0.1:{inner_port}",
                  "chroma_pid": chroma.pid, "gate_pid": os.getpid(), "started_at": time.time()}
        Path(args.status_file).write_text(json.dumps(status))

    code = asyncio.run(_serve(listener, token, f"http://127.0.0.1:{inner_port}", chroma))
    if chroma.poll() is None:
        chroma.terminate()
        try:
            chroma.wait(10)
        except subprocess.TimeoutExpired:
            chroma.kill()
    return code


async def _serve(listener: socket.socket, token: str, upstream: str, chroma: subprocess.Popen) -> int:
    import uvicorn

    config = uvicorn.Config(make_app(token, upstream), log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    exited: list[int] = []

    async def watch() -> None:
        while not server.should_exit:
            if chroma.poll() is not None:
                log(f"Chroma exited with {chroma.returncode}: stopping the gate")
                exited.append(chroma.returncode or 1)
                server.should_exit = True
                return
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=[listener])
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
    watcher.cancel()
    return exited[0] if exited else 0


if __name__ == "__main__":
    sys.exit(main())
