"""The Compose deployment: what ``ragctl init`` records and ``ragctl render`` writes.

``DeployConfig`` is the ``[stack]`` table of ragctl.toml (defaults from the guide);
``render_files`` turns it, with the project's settings, into compose.yaml, Dockerfile,
nginx.conf, .env and redis.conf — deterministically: the same inputs give the same bytes (the
API key, the Flower password and the Redis password are generated once and then read back from
.env).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ragctl.engine import compose_command
from ragctl.errors import ConfigError, DockerError
from ragctl.project import REDIS_PASSWORD_KEY, ProjectConfig, new_redis_password, read_dotenv, redact_dotenv

#: Characters a Redis password may hold: it goes into redis.conf, a shell here-document and a URL.
REDIS_PASSWORD_RE = re.compile(r"[A-Za-z0-9._~-]{16,256}")

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # the package ``templates`` (package data)
LABEL_KEY = "io.ragctl.project"
#: The label Compose puts on every container: its service's name.
SERVICE_LABEL = "com.docker.compose.service"
RENDERED = {
    "compose.yaml": "compose.yaml.j2",
    "Dockerfile": "Dockerfile.j2",
    "nginx.conf": "nginx.conf.j2",
    ".env": "env.j2",
    "redis.conf": "redis.conf.j2",
}
TORCH_INDEXES = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://pypi.org/simple"}
HOST_FOLDERS = ("data", "logs", "extracted_results", "hwp_data")


class DeployConfig(BaseModel):
    """``[stack]`` in ragctl.toml.  Defaults are the guide's."""

    workers: int = Field(default=2, ge=0, le=64)
    api_replicas: int = Field(default=1, ge=1, le=16)
    gpu: bool = False
    flower: bool = False
    nginx: bool = False
    env: Literal["dev", "prod"] = "prod"
    api_cpus: float = Field(default=2, gt=0)
    api_memory: str = "2g"
    worker_cpus: float = Field(default=4, gt=0)
    worker_memory: str = "8g"
    worker_gpus: int = Field(default=1, ge=1)
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_bind: str = "0.0.0.0"
    nginx_port: int = Field(default=80, ge=1, le=65535)
    nginx_bind: str = "0.0.0.0"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    image: str = "ragctl"
    tag: str = "0.1.0"
    base_image: str = "ragctl-base:bookworm"
    torch_variant: Literal["cpu", "cuda"] = "cpu"
    ca_bundle: str | None = None
    wheelhouse: str | None = None
    log_max_size: str = "10m"
    log_max_files: int = 3
    redis_appendfsync: Literal["always", "everysec"] = "always"


def parse_bytes(value: str) -> int:
    """Compose's memory sizes: 512m, 2g, 8G, 1024k, 100000 (bytes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " "))


def fit_to_host(config: DeployConfig) -> tuple[DeployConfig, dict[str, str]]:
    """The guide's CPU and memory limits, lowered where this host has less (pre-flight would refuse
    them); with a note per changed key."""
    from ragctl.checks import GIB

    cores = os.cpu_count() or 1
    try:
        total = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        total = None
    changes, notes = {}, {}
    for service in ("api", "worker"):
        cpus, memory = getattr(config, f"{service}_cpus"), getattr(config, f"{service}_memory")
        if cpus > cores:
            changes[f"{service}_cpus"] = float(cores)
            notes[f"{service}_cpus"] = f"{service}_cpus = {cores} (the guide's {cpus:g}; this host has {cores} CPUs)"
        if total and parse_bytes(memory) > total:
            fitted = f"{max(1, int(total * 0.75 / GIB))}g"
            changes[f"{service}_memory"] = fitted
            notes[f"{service}_memory"] = (f"{service}_memory = {fitted} (the guide's {memory}; this host has "
                                          f"{total / GIB:.1f} GiB)")
    return config.model_copy(update=changes), notes


def gpu_available() -> bool:
    """An NVIDIA container runtime on this host (what --gpu defaults to)."""
    return shutil.which("nvidia-container-runtime") is not None or Path("/usr/bin/nvidia-container-toolkit").exists()


def load_deploy_config(root: Path) -> DeployConfig:
    """The ``[stack]`` table of ragctl.toml, validated (ConfigError names the bad value)."""
    from pydantic import ValidationError

    table = ProjectConfig.load(root).table("stack")
    try:
        return DeployConfig(**table)
    except ValidationError as exc:
        raise ConfigError(f"[stack] in {root / 'ragctl.toml'} is invalid: {exc}",
                          f"fix [stack] in {root / 'ragctl.toml'}") from exc


def render_files(root: Path) -> dict[str, str]:
    """File name → content for the deployment in ``root``."""
    from stack.pipeline.embed import is_packaged_model
    from stack.settings import load_settings

    config = load_deploy_config(root)
    settings = load_settings(root)
    existing = read_dotenv(root / ".env")
    name = ProjectConfig.load(root).name
    cores = os.cpu_count() or 1
    context = config.model_dump() | {
        "name": name,
        "label_key": LABEL_KEY,
        "dev": config.env == "dev",
        "prod": config.env == "prod",
        "image": f"{config.image}:{config.tag}",
        "source_dir": str(Path(__file__).resolve().parents[1]),
        "worker_torch_threads": max(1, int(min(config.worker_cpus, cores))),
        "max_upload_mb": settings.max_upload_mb,
        "embed_model": settings.embed_model,
        # A model that no installed package carries is downloaded at build time, never at run time.
        "bake_embed_model": not is_packaged_model(settings.embed_model),
        "api_key": existing.get("RAG_API_KEY") or secrets.token_urlsafe(32),
        "flower_auth": existing.get("FLOWER_BASIC_AUTH") or "admin:" + secrets.token_urlsafe(18),
        "redis_password": checked_redis_password(existing.get(REDIS_PASSWORD_KEY) or new_redis_password()),
        "extra_env": sorted((k, v) for k, v in existing.items()
                            if k not in ("RAG_API_KEY", "FLOWER_BASIC_AUTH", "RAG_MAX_UPLOAD_MB", "RAG_EMBED_MODEL",
                                         REDIS_PASSWORD_KEY)),
        "torch_index": TORCH_INDEXES[config.torch_variant],
    }
    # Compose's redis.conf holds no password: Compose hands REDIS_PASSWORD (from .env) to the redis
    # container, whose command feeds "requirepass" to redis-server on stdin (compose.yaml.j2).
    context |= {"redis_bind": "0.0.0.0", "redis_port": 6379, "redis_dir": "/data", "redis_protected": False,
                "redis_requirepass": None, "redis_password_on_stdin": True}
    environment = _templates()
    return {out: environment.get_template(template).render(**context) for out, template in RENDERED.items()}


def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        autoescape=False,  # YAML, nginx and Dockerfile text, not HTML
    )


def redis_conf(*, bind: str, port: int, directory: str, appendfsync: str = "always", protected: bool = True,
               password: str | None = None) -> str:
    """redis.conf from the stack's one template (the local runtime writes its own copy with it, with
    ``requirepass``: that copy must be written readable by its owner only)."""
    return _templates().get_template(RENDERED["redis.conf"]).render(
        redis_bind=bind, redis_port=port, redis_dir=directory, redis_appendfsync=appendfsync,
        redis_protected=protected, redis_requirepass=checked_redis_password(password) if password else None,
        redis_password_on_stdin=False)


def checked_redis_password(password: str) -> str:
    """The password, when it is one we can put in redis.conf, a here-document and a URL unescaped."""
    if not REDIS_PASSWORD_RE.fullmatch(password or ""):
        raise ConfigError(f"{REDIS_PASSWORD_KEY} in .env must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ -.",
                          f"delete the {REDIS_PASSWORD_KEY} line from .env (ragctl render or ragctl up generates "
                          "a new one), then restart the stack")
    return password


def redis_url(host: str, port: int, password: str | None, db: int = 0) -> str:
    """``redis://:PASSWORD@host:port/db`` (the password URL-quoted), or without one."""
    from urllib.parse import quote

    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


@dataclass
class RenderedFile:
    name: str
    path: Path
    changed: bool
    diff: str


def write_rendered(root: Path, *, dry_run: bool = False) -> list[RenderedFile]:
    """Write the rendered files (and the host folders the compose file mounts); report changes."""
    results = []
    for name, content in render_files(root).items():
        path = root / name
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        shown = content if name != ".env" else redact_dotenv(content)
        shown_old = old if name != ".env" else redact_dotenv(old)
        diff = "".join(difflib.unified_diff(shown_old.splitlines(True), shown.splitlines(True),
                                            f"a/{name}", f"b/{name}"))
        results.append(RenderedFile(name, path, old != content, diff))
        if not dry_run and old != content:
            path.write_text(content, encoding="utf-8")
            if name == ".env":
                path.chmod(0o600)
    if not dry_run:
        for folder in HOST_FOLDERS:
            (root / folder).mkdir(exist_ok=True)
    return results


def validate(root: Path, *, profiles: list[str] | None = None, timeout_s: float = 60) -> dict:
    """``docker compose config`` over the rendered files: the resolved model, or DockerError."""
    command = [*compose_command(), "--project-directory", str(root), "-f", str(root / "compose.yaml")]
    for profile in profiles or []:
        command += ["--profile", profile]
    command += ["config", "--format", "json"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    try:
        # Some Compose builds print a YAML error and still exit 0: only a model counts as valid.
        model = json.loads(out.stdout) if out.returncode == 0 else None
    except json.JSONDecodeError:
        model = None
    if not isinstance(model, dict):
        raise DockerError(f"docker compose config rejected {root / 'compose.yaml'}.", command=command,
                          stderr=out.stderr.strip(), code="invalid_compose", hint="ragctl render --diff   (then fix ragctl.toml [stack])")
    return model


def profiles_for(config: DeployConfig) -> list[str]:
    return [name for name, on in (("flower", config.flower), ("nginx", config.nginx)) if on]
