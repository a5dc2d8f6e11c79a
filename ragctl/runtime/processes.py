"""Processes of this machine, read from /proc: is a pid alive, and is it ours."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but not ours: verification below will refuse it
    # A zombie is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot): tells a pid from a later reuse of it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_our_process(pid: int | None, markers: list[str], start_ticks: int | None = None) -> bool:
    """True only for a live pid whose command line holds one of ``markers`` and, when known, whose
    start time is the one recorded when we started it."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    cmdline = proc_cmdline(pid)
    if not cmdline or not any(marker in cmdline for marker in markers):
        return False
    return start_ticks is None or proc_start_ticks(pid) == start_ticks
