"""Containers through docker-py, as typed values: their published ports, a command run inside, and
files copied out of and into them (what backup and restore move).  Both container runtimes (Compose
and Swarm) read and act on containers only through these."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ragctl.engine.client import engine

if TYPE_CHECKING:
    from docker.models.containers import Container


@dataclass(frozen=True)
class PortBinding:
    """One published port: ``host_ip:host_port->container_port`` (container_port as "8000/tcp")."""

    container_port: str
    host_ip: str
    host_port: str

    def __str__(self) -> str:
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}"

    @property
    def url_host(self) -> str:
        """The address a client on this machine uses: loopback for "every address"."""
        return "127.0.0.1" if self.host_ip in ("", "0.0.0.0", "::") else self.host_ip


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


def port_bindings(container: Container) -> list[PortBinding]:
    found = []
    for port, bindings in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).items():
        for binding in bindings or []:
            if binding.get("HostPort"):
                found.append(PortBinding(port, binding.get("HostIp") or "", str(binding["HostPort"])))
    return found


def published_url(containers: Iterable[Container], label: str, service: str, port: str,
                  scheme: str = "http") -> str | None:
    """Where this machine reaches ``port`` of a running container whose ``label`` is ``service``."""
    for container in containers:
        if container.labels.get(label) != service or container.status != "running":
            continue
        for binding in port_bindings(container):
            if binding.container_port == port:
                return f"{scheme}://{binding.url_host}:{binding.host_port}"
    return None


def container_user(container: Container) -> str:
    return str((container.attrs.get("Config") or {}).get("User") or "")


def exec_in(container: Container, command: list[str]) -> ExecResult:
    result = container.exec_run(command)
    return ExecResult(result.exit_code, result.output.decode(errors="replace"))


def copy_out(container: Container, path: str, prefix: str) -> Iterator[tuple[str, IO[bytes], int]]:
    """The files under ``path`` in ``container`` as (``prefix/relative name``, reader, size), streamed."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
            yield f"{prefix}/{relative}", tar.extractfile(member), member.size


def copy_in(container: Container, folder: str, files: dict[str, bytes], *, owner: str = "", mode: int = 0o600) -> None:
    """Write ``files`` (name → content) into ``folder`` of ``container``, owned by ``owner`` ("uid:gid")."""
    uid, _, gid = owner.partition(":")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            if uid:
                info.uid, info.gid = int(uid), int(gid or uid)
            out.addfile(info, io.BytesIO(content))
    container.put_archive(folder, buffer.getvalue())


class _ChunkReader(io.RawIOBase):
    """A file over docker-py's stream of byte chunks (``get_archive``)."""

    def __init__(self, chunks) -> None:
        self.chunks, self.pending = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


__all__ = ["ExecResult", "PortBinding", "container_user", "copy_in", "copy_out", "engine", "exec_in",
           "port_bindings", "published_url"]
