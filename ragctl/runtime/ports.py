"""Loopback ports: is one free, pick a free one, and who holds a taken one."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from ragctl.errors import PreflightFailed
from ragctl.runtime.processes import proc_cmdline


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(exclude: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise PreflightFailed("Could not find a free loopback port.")


def port_holder(port: int) -> str | None:
    """Who listens on ``port``: 'pid N (command)' when it can be found, else None."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in lines:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes if inode != "0"}
    if wanted:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fds = list((entry / "fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(fd) in wanted:
                        pid = int(entry.name)
                        return f"pid {pid} ({proc_cmdline(pid)[:120] or '?'})"
                except OSError:
                    continue
    if shutil.which("ss"):
        try:
            out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False,
                                 timeout=3).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
        if match:
            return f"pid {match.group(2)} ({match.group(1)})"
        if out.strip():
            return "a process of another user"
    return "a process of another user" if inodes else None
