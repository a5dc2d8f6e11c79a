"""What every runtime offers the control plane.

A runtime runs the project's services somewhere (``embedded``: nowhere, the CLI does the work;
``local``: supervised processes on loopback; ``docker``: the rendered Compose stack) and answers
for them: their state, their lifecycle, their logs, where clients reach them, a probe run where the
services are, and the data a backup copies.  ``health``, ``doctor``, ``backup``, ``restore``,
``migrate`` and ``support`` speak only to this interface, and ``ragctl.runtime.runtime_for`` is
the one place that picks an implementation.  A new runtime is one module that subclasses
:class:`Runtime`; ``tests/support/fakes.py`` has one that runs nothing.
"""

from __future__ import annotations

import io
import json
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from ragctl.errors import NotRunning, RagctlError, UsageError
from ragctl.project import ProjectConfig

#: Archive members (backup) → where they live: the vector store's files and the Redis snapshot.
STORE_TREES = ("chroma", "redis")
PROBE_TIMEOUT_S = 120


class ServiceView(Protocol):
    """One service as ``ps`` shows it, whatever the runtime."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def ready(self) -> bool | None: ...

    def summary(self) -> str:
        """One line for a check's evidence: state, and pid or replicas."""

    def label(self) -> str:
        """What a restart names: the process and its pid, or the containers."""

    def columns(self) -> dict[str, str]:
        """``ps``'s table row (column → text; the columns differ by runtime)."""

    def ps_row(self) -> dict[str, Any]:
        """``ps --json``'s row."""


class StackStatus(Protocol):
    running: bool
    runtime: str
    api_url: str | None
    flower_url: str | None
    flower_auth: str | None

    @property
    def services(self) -> Sequence[ServiceView]: ...

    def to_dict(self) -> dict[str, Any]: ...


class Runtime(ABC):
    """The services of one project, wherever they run: their lifecycle, and where clients reach them.

    Ten members, counted by tests/unit/test_layers.py.  What only some runtimes can do is a
    capability (ragctl/runtime/capabilities.py) that a runtime class inherits and callers ask for
    with ``isinstance``; the facts the CLI says about a kind (its start command, ``init``'s
    questions) are its entry in the registry (ragctl/runtimes.py)."""

    #: Its name in the registry (ragctl/runtimes.py) and in ragctl.toml.
    kind: ClassVar[str]

    def __init__(self, root: Path, config: ProjectConfig | None = None) -> None:
        self.root = Path(root)
        self.project_config = config or ProjectConfig.load(self.root)

    @abstractmethod
    def status(self) -> StackStatus: ...

    @abstractmethod
    def up(self, *, services: list[str] | None = None, workers: int | None = None, flower: bool = False,
           wait_s: float | None = None, progress: Callable[[list[Any]], None] | None = None) -> list[Any]: ...

    @abstractmethod
    def down(self, *, volumes: bool = False) -> list[str]:
        """Stop the stack (and delete its data with ``volumes``); the names of what stopped."""

    @abstractmethod
    def restart(self, service: str) -> list[Any]: ...

    @abstractmethod
    def logs(self, service: str | None, *, follow: bool = False, lines: int = 100) -> Iterator[str]: ...

    def scale(self, replicas: dict[str, int], *, wait_s: float = 300,
              progress: Callable[[list[Any]], None] | None = None) -> list[Any]:
        raise UsageError(f"scale drives a Compose stack; this project runs {self.kind}.",
                         "ragctl up --runtime local --workers N   (the local runtime takes its worker count at start)")

    def api_url(self) -> str | None:
        """Where the CLI's data commands reach the stack; None when they run in-process."""
        return require_running(self).api_url


def is_running(runtime: Runtime) -> bool:
    return runtime.status().running


def require_running(runtime: Runtime) -> StackStatus:
    """The runtime's status, or NotRunning (exit 5) naming the command that starts it."""
    from ragctl.runtimes import kind_of

    if not kind_of(runtime.kind).has_services:
        raise NotRunning(f"{runtime.root} runs {runtime.kind}: there is no stack whose services could be checked.",
                         "ragctl doctor   (checks the embedded store too), or ragctl up --runtime local")
    status = runtime.status()
    if not status.running:
        raise NotRunning(f"The {runtime.kind} stack of {runtime.root} is not running.",
                         f"ragctl -p {runtime.root} up")
    return status


def store_tree_tar(archive: Path, tree: str, *, owner: int | None = None) -> bytes:
    """A tar (for ``put_archive``) of one store tree of a backup archive (``chroma`` or ``redis``), its
    members relative to the tree, Redis's snapshot laid out for AOF (:func:`redis_restore_files`), and
    every parent folder listed (tar extractors differ on missing parents).  With ``owner``, files and
    folders belong to that uid:gid and are private to it; else root's, readable by all.  b"" when the
    archive holds nothing of the tree."""
    buffer, folders, added = io.BytesIO(), set(), False
    file_mode, folder_mode = (0o600, 0o700) if owner is not None else (0o644, 0o755)
    with tarfile.open(archive, mode="r:gz") as source, tarfile.open(fileobj=buffer, mode="w") as out:
        def add(info: tarfile.TarInfo, content: bytes | None = None) -> None:
            nonlocal added
            added = True
            if owner is not None:
                info.uid = info.gid = owner
            out.addfile(info, io.BytesIO(content) if content is not None else None)

        for member in source:
            if not (member.isfile() and member.name.startswith(tree + "/")):
                continue
            relative = member.name.split("/", 1)[1]
            contents = {relative: source.extractfile(member).read()}
            if tree == "redis" and relative == "dump.rdb":
                contents = redis_restore_files(contents[relative])
            for name, content in contents.items():
                for parent in reversed(Path(name).parents[:-1]):
                    if parent.as_posix() not in folders:
                        folders.add(parent.as_posix())
                        folder = tarfile.TarInfo(parent.as_posix())
                        folder.type, folder.mode = tarfile.DIRTYPE, folder_mode
                        add(folder)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(content), file_mode, member.mtime
                add(info, content)
    return buffer.getvalue() if added else b""


def write_file(target: Path, reader: IO[bytes] | None) -> None:
    """Copy a stream into a file, creating its folders."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(reader, out, 1 << 20)


def parse_last_json(module: str, code: int, output: str, *, where: str) -> dict[str, Any]:
    """The JSON document a ``python -m stack.X`` command prints last (its logs come before it)."""
    try:
        return json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RagctlError(f"{module} failed in {where} (exit {code}): {output[-800:]}", f"ragctl logs {where}",
                          code="probe_failed") from None


# Redis 7 with appendonly on ignores dump.rdb when no AOF exists (it starts empty): the snapshot goes
# in as the base of a multi-part AOF, with its manifest.  The names are Redis's defaults, which the
# rendered redis.conf and the local runtime keep.
AOF_DIR, AOF_BASE = "appendonlydir", "appendonly.aof.1.base.rdb"
AOF_MANIFEST = "appendonly.aof.manifest"


def redis_restore_files(dump: bytes) -> dict[str, bytes]:
    """Relative path under Redis's dir → content, for a snapshot Redis loads with AOF on."""
    return {"dump.rdb": dump, f"{AOF_DIR}/{AOF_BASE}": dump,
            f"{AOF_DIR}/{AOF_MANIFEST}": f"file {AOF_BASE} seq 1 type b\n".encode()}
