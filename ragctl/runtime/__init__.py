"""Where the project's services run: ``embedded`` (nowhere: the CLI does the work), ``local``
(supervised processes on loopback), ``docker`` (the rendered Compose stack) or ``swarm`` (the
rendered stack file on a Docker Swarm cluster).

``runtime_for`` is the one place that turns a project (or an explicit ``--runtime``) into a
:class:`~ragctl.runtime.base.Runtime`.  Importing this package is cheap: nothing heavy (torch,
chromadb, celery, docker) is imported here.
"""

from __future__ import annotations

from pathlib import Path

from ragctl.errors import RagctlError, UsageError
from ragctl.project import ProjectConfig
from ragctl.runtime.base import Runtime
from ragctl.runtimes import STACK_RUNTIMES, kind_of


def runtime_class(kind: str) -> type[Runtime]:
    """The implementation of a runtime named in ragctl.toml or on the command line (the registry's)."""
    return kind_of(kind).load()


def rendered_files(root: Path) -> dict[str, str] | None:
    """What ``render`` and ``build`` write for the project at ``root`` (its runtime's files)."""
    return kind_of(ProjectConfig.load(root).runtime).rendered_files


def render_placement(root: Path) -> str | None:
    """Where a swarm project's CPU workers go, for ``render`` and ``build`` (``up`` resolves it the same
    way): worker_placement = "auto" asks the swarm's nodes.  None for the other runtimes, and when the
    swarm cannot be asked ("auto" then renders as "apart")."""
    if ProjectConfig.load(root).runtime != "swarm":
        return None
    from docker.errors import DockerException

    from ragctl.runtime.swarm import SwarmRuntime

    try:
        return SwarmRuntime(root).worker_placement().rendered
    except (RagctlError, DockerException):
        return None


def runtime_for(root: Path, kind: str | None = None, *, config: ProjectConfig | None = None,
                starting: bool = False) -> Runtime:
    """The runtime of the project at ``root``: ``kind`` when given, else the one ragctl.toml records.

    A local stack that runs is always the answer for an embedded project (writing around it would
    split the project's data); ``starting`` (``ragctl up``) turns an embedded project into a local one.
    """
    config = config or ProjectConfig.load(root)
    if kind is not None and not kind_of(kind).has_services and starting:
        raise UsageError(f"The {kind} runtime has no services to start.", f"use --runtime {'|'.join(STACK_RUNTIMES)}")
    kind = kind or config.runtime
    if kind == "embedded":
        from ragctl.runtime.local import read_state

        if starting or read_state(Path(root)) is not None:
            kind = "local"
    return runtime_class(kind)(root, config)


__all__ = ["STACK_RUNTIMES", "Runtime", "render_placement", "rendered_files", "runtime_class", "runtime_for"]
