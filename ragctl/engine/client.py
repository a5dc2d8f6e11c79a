"""One docker-py client for the engine ragctl talks to ($DOCKER_HOST or the default socket), with a
timeout on every call, and an error that says why it is not reachable and what to run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragctl.errors import EngineUnavailable

if TYPE_CHECKING:
    import docker

ENGINE_TIMEOUT_S = 30


def engine(timeout_s: float = ENGINE_TIMEOUT_S) -> docker.DockerClient:
    """A client for the local engine ($DOCKER_HOST or the default socket) that has answered a ping."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
        return client
    except DockerException as exc:
        text = str(exc)
        if "Permission denied" in text or "PermissionError" in text:
            raise EngineUnavailable(
                f"Permission denied on the Docker socket: {text}",
                hint="sudo usermod -aG docker $USER   (then log in again), or run ragctl as root") from exc
        raise EngineUnavailable(
            f"The Docker engine is not reachable: {text}",
            hint="start it: sudo systemctl start docker   (or dockerd &), then docker info") from exc
