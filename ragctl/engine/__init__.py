"""The Docker engine, once, for everything in ragctl that touches it (the Compose and Swarm runtimes,
images and bundles, migrate): docker-py for the engine's API (:mod:`.client`, :mod:`.containers`),
the Compose and docker CLIs where they are the right tool (:mod:`.cli`), and long transfers limited
by inactivity rather than length (:mod:`.inactivity`).  Every call has a timeout; every failure says
what happened, why, and what to run next (with the command and its stderr when a CLI ran)."""

from ragctl.engine.cli import (
    compose,
    compose_argv,
    compose_command,
    docker_cli,
    docker_stream,
    engine_versions,
    run_cli,
    stream_lines,
)
from ragctl.engine.client import ENGINE_TIMEOUT_S, engine
from ragctl.engine.containers import (
    ExecResult,
    PortBinding,
    container_user,
    copy_in,
    copy_out,
    exec_in,
    port_bindings,
    published_url,
)
from ragctl.engine.inactivity import (
    ENGINE_INACTIVITY_S,
    INACTIVITY_ENV,
    Inactivity,
    inactivity_limit,
    is_timeout,
)
from ragctl.errors import DockerError, EngineStalled, EngineUnavailable

__all__ = ["ENGINE_INACTIVITY_S", "ENGINE_TIMEOUT_S", "INACTIVITY_ENV", "DockerError", "EngineStalled",
           "EngineUnavailable", "ExecResult", "Inactivity", "PortBinding", "compose", "compose_argv",
           "compose_command", "container_user", "copy_in", "copy_out", "docker_cli", "docker_stream", "engine",
           "engine_versions", "exec_in",
           "inactivity_limit", "is_timeout", "port_bindings", "published_url", "run_cli", "stream_lines"]
