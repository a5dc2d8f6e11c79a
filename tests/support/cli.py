"""Driving the CLI in-process, and projects for the local runtime on free loopback ports."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from typer.testing import CliRunner

runner = CliRunner()
#: Ports 0: the local runtime takes free ones, so that stacks of several tests never collide.
FREE_PORTS = "[local]\napi_port = 0\nredis_port = 0\nchroma_port = 0\nflower_port = 0\n"


def ragctl(project: Path, *args: str):
    """``ragctl --project PROJECT ARGS`` in this process (exceptions propagate to the test)."""
    from ragctl.cli import app

    return runner.invoke(app, ["--project", str(project), *args], catch_exceptions=False)


def output(result) -> str:
    return result.stdout + (result.stderr or "")


def as_json(result) -> dict | list:
    return json.loads(result.stdout)


def make_project(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ragctl.toml").write_text('# test project\n[project]\nname = "t"\n\n' + FREE_PORTS + extra)
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
