"""The registry of runtime kinds: the one place their names and facts are listed (issue #24).

The project file's schema (``ragctl.project``), the CLI's ``--runtime`` choices, ``init``'s questions,
hints that name a start command, and the factory (``ragctl.runtime.runtime_for``) all read
:data:`KINDS`.  Adding a runtime is one module with a :class:`~ragctl.runtime.base.Runtime`
subclass and one entry here.  Importing this module is cheap: it imports no runtime.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragctl.runtime.base import Runtime

#: What ``render`` and ``build`` write for a Compose stack (file → template).
COMPOSE_FILES = {
    "compose.yaml": "compose.yaml.j2",
    "Dockerfile": "Dockerfile.j2",
    "nginx.conf": "nginx.conf.j2",
    ".env": "env.j2",
    "redis.conf": "redis.conf.j2",
}
#: The swarm runtime's files: the stack file instead of compose.yaml (its nginx.conf resolves the API's
#: replicas through Docker's DNS).
SWARM_FILES = {
    "stack.yaml": "stack.yaml.j2",
    "Dockerfile": "Dockerfile.j2",
    "nginx.conf": "nginx.conf.j2",
    ".env": "env.j2",
    "redis.conf": "redis.conf.j2",
}


@dataclass(frozen=True)
class RuntimeKind:
    """One kind of runtime: its name, where its implementation lives, and what the CLI says about it."""

    name: str
    #: "module:Class" of its :class:`~ragctl.runtime.base.Runtime`, imported only when used.
    implementation: str
    help: str
    #: False for a runtime that runs no services (embedded): no service checks, no probe over the wire.
    has_services: bool = True
    #: The command that starts this runtime's stack (hints say it).
    start_command: str = "ragctl up"
    #: The command that gets more (or fresh) workers taking tasks.
    more_workers_command: str = "ragctl restart worker"
    #: The command that re-renders the stack's configuration (secrets from .env, ports) and restarts it.
    reapply_command: str = "ragctl down && ragctl up"
    #: What ``ragctl init`` asks for this runtime ([stack] keys), and the command it suggests next.
    init_questions: tuple[str, ...] = ()
    first_step: str = "up"
    #: The stack's services read ragctl.toml's [settings] when they start (the project folder is theirs):
    #: ``config set --eval`` on the running stack restarts them to apply a change.  Containers see only
    #: .env and the rendered files.
    reads_settings_file: bool = False
    #: What ``ragctl render`` writes (file → template).
    rendered_files: dict[str, str] = field(default_factory=lambda: dict(COMPOSE_FILES))

    def load(self) -> type[Runtime]:
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)


KINDS: dict[str, RuntimeKind] = {kind.name: kind for kind in (
    RuntimeKind("embedded", "ragctl.runtime.embedded:EmbeddedRuntime",
                "no services: the CLI does the work in its own process",
                has_services=False, start_command="ragctl up --runtime local", first_step="ingest FILE_OR_FOLDER"),
    RuntimeKind("local", "ragctl.runtime.local.runtime:LocalRuntime", "supervised processes on 127.0.0.1",
                start_command="ragctl up --runtime local", init_questions=("workers",),
                first_step="up --runtime local", reads_settings_file=True),
    RuntimeKind("docker", "ragctl.runtime.docker.runtime:DockerRuntime", "the rendered Compose stack on this Docker engine",
                more_workers_command="ragctl scale worker=2", reapply_command="ragctl render && ragctl up",
                init_questions=("workers", "gpu", "nginx", "flower", "env"), first_step="build   (then ragctl up)"),
    RuntimeKind("swarm", "ragctl.runtime.swarm.runtime:SwarmRuntime", "the rendered stack file on a Docker Swarm",
                more_workers_command="ragctl scale worker=4", reapply_command="ragctl render && ragctl up",
                init_questions=("workers", "gpu"), rendered_files=dict(SWARM_FILES),
                first_step="build   (then ragctl up: a one-node swarm needs nothing more; "
                           "ragctl nodes join-command adds hosts)"),
)}
#: Every runtime's name, in the order help lists them.
RUNTIMES = tuple(KINDS)
#: The runtimes ``ragctl up`` can start (the ones with services).
STACK_RUNTIMES = tuple(name for name, kind in KINDS.items() if kind.has_services)


def choices(names: tuple[str, ...]) -> type[enum.Enum]:
    """An Enum of these runtime names, for a CLI option's choices (typer lists and checks them)."""
    return enum.Enum("RuntimeName", {name: name for name in names}, type=str)


def kind_of(name: str) -> RuntimeKind:
    """The registry entry of a runtime name (a runtime instance's ``kind``)."""
    from ragctl.errors import UsageError

    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"Unknown runtime {name!r}.", f"use --runtime {'|'.join(RUNTIMES)}") from None
