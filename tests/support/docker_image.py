"""What the Docker suites share (tests/compose, tests/swarm): the ragctl CLI as a subprocess, and the
stack's image, built once per test session the closed-network way.

The base image is made locally (debootstrap + docker import: there is no registry), a wheelhouse is
filled once (``ragctl wheelhouse``), and ``ragctl:e2e`` is built from it (the build contacts no package
index).  A suite's own project then builds the same Dockerfile again: the layer cache answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BASE_IMAGE = "ragctl-base:bookworm"
IMAGE_TAG = "e2e"
IMAGE = f"ragctl:{IMAGE_TAG}"
REPO = Path(__file__).resolve().parents[2]


def require_engine() -> None:
    from ragctl.engine import EngineUnavailable, engine

    try:
        engine(timeout_s=10)
    except EngineUnavailable as exc:
        reason = f"no Docker engine: {exc.message} ({exc.hint})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: the Docker suite must run)")
        pytest.skip(reason)


def ragctl(*args: str, root: Path | None = None, timeout: float = 900, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ragctl", *(["-p", str(root)] if root else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"ragctl {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    return done


def ragctl_json(*args: str, root: Path | None = None, timeout: float = 900, check: bool = True,
                env: dict[str, str] | None = None):
    done = ragctl(*args, "--json", root=root, timeout=timeout, check=check, env=env)
    return json.loads(done.stdout), done.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_stack(root: Path, **values) -> None:
    from ragctl.project import set_config_value

    for key, value in values.items():
        set_config_value(root, "stack", key, value)


@pytest.fixture(scope="session")
def e2e_wheels(tmp_path_factory) -> Path:
    """The base image made, and a wheelhouse for the image's build."""
    require_engine()
    made = subprocess.run(["bash", str(REPO / "scripts" / "make-base-image.sh"), BASE_IMAGE], capture_output=True,
                          text=True, timeout=1200, check=False)
    assert made.returncode == 0, made.stderr
    wheels = tmp_path_factory.mktemp("wheels")
    # This machine's pip configuration supplies torch (a local CPU wheel); elsewhere the default
    # --torch-index is PyTorch's CPU index.
    listed, _ = ragctl_json("wheelhouse", str(wheels), "--torch-index", "pip", timeout=1800)
    assert any(name.startswith("torch-2.13.0") for name in listed["wheels"])
    return wheels


@pytest.fixture(scope="session")
def e2e_image(e2e_wheels, tmp_path_factory) -> str:
    """``ragctl:e2e`` built from this checkout (once a session)."""
    root = tmp_path_factory.mktemp("image") / "ragctl-image"
    ragctl("init", str(root), "--runtime", "docker", "--workers", "1", "--no-gpu", "--yes")
    set_stack(root, tag=IMAGE_TAG)
    built, _ = ragctl_json("build", "--wheelhouse", str(e2e_wheels), root=root, timeout=2400)
    assert built["image"] == IMAGE
    print(f"\nbuild: {built['seconds']} s, {built['size_bytes'] / 1e9:.2f} GB, python {built['python']}")
    return IMAGE
