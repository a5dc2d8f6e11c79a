"""The Compose deployment: what ``ragctl init`` records and ``ragctl render`` writes.

``DeployConfig`` is the ``[stack]`` table of ragctl.toml (defaults from the guide);
``render_files`` turns it, with the project's settings, into compose.yaml, Dockerfile,
nginx.conf, .env and redis.conf — deterministically: the same inputs give the same bytes (the
API key, the Flower password and the Redis password are generated once and then read back from
.env).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from ragctl.engine import compose_command
from ragctl.errors import ConfigError, DockerError
from ragctl.project import (
    CHROMA_TOKEN_KEY,
    POSTGRES_PASSWORD_KEY,
    REDIS_PASSWORD_KEY,
    STACK_SECRET_RE,
    STACK_SECRETS,
    ProjectConfig,
    new_secret,
    read_dotenv,
    redact_dotenv,
)
from ragctl.runtimes import COMPOSE_FILES, SWARM_FILES

#: Characters a Redis password may hold: it goes into redis.conf, a shell here-document and a URL.
REDIS_PASSWORD_RE = STACK_SECRET_RE

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # the package ``templates`` (package data)
LABEL_KEY = "io.ragctl.project"
#: The label Compose puts on every container: its service's name.
SERVICE_LABEL = "com.docker.compose.service"
#: What ``render`` writes, per runtime kind: the registry's lists (ragctl/runtimes.py).
RENDERED, SWARM_RENDERED = COMPOSE_FILES, SWARM_FILES
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
    #: The published HTTPS port of Nginx (default 443; 80 with tls = "off").
    nginx_port: int | None = Field(default=None, ge=1, le=65535)
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
    # -- the edge and the containers' user (docs/docker.md "TLS and unprivileged containers") --------
    #: HTTPS at the edge (Nginx, or the API when Nginx is off): a certificate generated into certs/
    #: ("self-signed"), the user's own in certs/tls.crt + certs/tls.key ("provided"), or plain HTTP
    #: ("off", only when the edge is bound to loopback).
    tls: Literal["self-signed", "provided", "off"] = "self-signed"
    #: Extra DNS names / IP addresses for the self-signed certificate (localhost, 127.0.0.1 and this
    #: host's name are always in it).
    tls_hosts: list[str] = Field(default_factory=list)
    #: Strict-Transport-Security from Nginx: only with tls = "provided" (a browser would pin a
    #: self-signed certificate's warning).
    hsts: bool = False
    #: The HTTP port Nginx publishes to redirect to HTTPS (default 80; 0: none).  Only with TLS on.
    nginx_http_port: int | None = Field(default=None, ge=0, le=65535)
    #: The uid:gid every service runs as (never 0).  Default: the project folder's owner, or
    #: 10001:10001 (the image's ``ragctl`` user) when root owns it.
    uid: int | None = Field(default=None, ge=1)
    gid: int | None = Field(default=None, ge=1)
    #: Where a Compose stack keeps its catalog, postings, extracted text, uploads and API keys: its own
    #: PostgreSQL service ("postgres", what ragctl init writes), or SQLite files in the project's data/
    #: folder ("sqlite": a stack from before PostgreSQL; ragctl upgrade moves it).  Left out: "postgres",
    #: unless data/ already holds SQLite state (load_deploy_config; ragctl up then writes it down).
    #: A swarm stack is always "postgres".
    database: Literal["postgres", "sqlite"] | None = None
    # -- the swarm runtime (docs/swarm.md) ----------------------------------------------------------
    #: Where CPU workers run: on nodes without the ragctl.data label ("apart": the data node's cores
    #: serve Postgres, Redis and Chroma), on any node ("any"), or "auto" (the default): apart when a
    #: ready node other than the data node can take them, else with the data services (a one-node
    #: swarm).  ``ragctl up`` resolves "auto" from the swarm's nodes (ragctl/runtime/swarm/preflight.py).
    worker_placement: Literal["auto", "apart", "any"] = "auto"
    #: The data overlay network encrypted between nodes (IPsec; needs ESP between the hosts).
    swarm_encrypted: bool = True

    @model_validator(mode="after")
    def _edge(self) -> DeployConfig:
        if self.nginx_port is None:
            self.nginx_port = 80 if self.tls == "off" else 443
        if self.nginx_http_port is None:
            self.nginx_http_port = 0 if self.tls == "off" or self.nginx_port == 80 else 80
        if self.tls == "off" and self.nginx_http_port:
            raise ValueError("nginx_http_port redirects HTTP to HTTPS: it needs tls on (leave it out with tls = \"off\")")
        if self.tls != "off" and self.nginx and self.nginx_http_port == self.nginx_port:
            raise ValueError(f"nginx_http_port and nginx_port are both {self.nginx_port}")
        if self.hsts and self.tls != "provided":
            raise ValueError("hsts = true needs tls = \"provided\" (browsers would pin a self-signed certificate)")
        if self.tls == "off" and not is_loopback(self.edge_bind):
            raise ValueError(f"tls = \"off\" sends the API key in clear text: it is allowed only when the edge is "
                             f"bound to loopback, and {'nginx_bind' if self.nginx else 'api_bind'} is "
                             f"{self.edge_bind!r} (set it to \"127.0.0.1\", or use tls = \"self-signed\")")
        return self

    @property
    def edge_bind(self) -> str:
        """The address the stack's one published entry point (Nginx, else the API) listens on."""
        return self.nginx_bind if self.nginx else self.api_bind

    @property
    def https(self) -> bool:
        return self.tls != "off"


#: The image's unprivileged user (templates/Dockerfile.j2), used when root owns the project folder.
IMAGE_UID = 10001
#: The self-signed certificate and its key, in the project (the key 0600); tls = "provided" reads
#: the user's files from the same paths.
CERT_FILE, KEY_FILE = "certs/tls.crt", "certs/tls.key"
#: Inside the containers: Nginx listens unprivileged (HTTP redirect, HTTPS or plain HTTP).
NGINX_HTTP_PORT, NGINX_HTTPS_PORT = 8080, 8443


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_user(root: Path, config: DeployConfig) -> tuple[int, int]:
    """(uid, gid) of every service: [stack] uid/gid, else the project folder's owner, else (when
    root owns it) the image's ragctl user.  Never 0."""
    if config.uid is not None:
        return config.uid, config.gid or config.uid
    try:
        owner = root.stat()
    except OSError:
        owner = None
    if owner is None or owner.st_uid == 0:
        return IMAGE_UID, config.gid or IMAGE_UID
    return owner.st_uid, config.gid or (owner.st_gid or owner.st_uid)


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
        config = DeployConfig(**table)
    except ValidationError as exc:
        raise ConfigError(f"[stack] in {root / 'ragctl.toml'} is invalid: {exc}",
                          f"fix [stack] in {root / 'ragctl.toml'}") from exc
    if config.database is None:
        from stack.names import local_state_files

        # A project that ran before (embedded, local, or a Compose stack from before PostgreSQL) keeps
        # its SQLite files until ragctl upgrade moves them: never an empty database over them.
        config.database = "sqlite" if local_state_files(root / "data") else "postgres"
    return config


def render_files(root: Path, files: dict[str, str] | None = None, *, placement: str | None = None) -> dict[str, str]:
    """File name → content for the deployment in ``root`` (``files``: name → template; the Compose
    stack's by default; ``placement``: see render_context)."""
    files = RENDERED if files is None else files
    context = render_context(root, swarm="stack.yaml" in files, placement=placement)
    environment = _templates()
    return {out: environment.get_template(template).render(**context) for out, template in files.items()}


def stack_swarm_objects(root: Path) -> dict[str, SwarmObject]:
    """The secrets and configs of the project's swarm stack, as ``ragctl up`` creates them."""
    return swarm_objects(root, render_context(root, swarm=True))


def worker_constraints(gpu: bool, placement: str) -> list[str]:
    """The swarm worker service's placement constraints: GPU workers on ragctl.gpu nodes; CPU workers
    off the data node and the GPU nodes ("apart"), or anywhere ("any": none, so the stack file has no
    ``placement`` for them: Swarm wants a list there, never an empty key)."""
    if gpu:
        return ["node.labels.ragctl.gpu == true"]
    if placement == "any":
        return []
    return ["node.labels.ragctl.data != true", "node.labels.ragctl.gpu != true"]


def render_context(root: Path, *, swarm: bool = False, placement: str | None = None) -> dict:
    """What the templates are rendered with: ragctl.toml's [stack], the settings, .env's secrets.
    ``placement`` ("apart" or "any") is where the swarm's CPU workers go, as ``ragctl up`` resolved
    worker_placement = "auto" from the nodes; without it "auto" renders as "apart" (the layout of a
    swarm of several nodes)."""
    from stack.names import is_packaged_model
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
        "redis_password": checked_secret(REDIS_PASSWORD_KEY, existing.get(REDIS_PASSWORD_KEY) or new_secret()),
        "chroma_token": checked_secret(CHROMA_TOKEN_KEY, existing.get(CHROMA_TOKEN_KEY) or new_secret()),
        "postgres_password": checked_secret(POSTGRES_PASSWORD_KEY, existing.get(POSTGRES_PASSWORD_KEY) or new_secret()),
        "extra_env": sorted((k, v) for k, v in existing.items()
                            if k not in ("RAG_API_KEY", "FLOWER_BASIC_AUTH", "RAG_MAX_UPLOAD_MB", "RAG_EMBED_MODEL",
                                         *STACK_SECRETS)),
        "torch_index": TORCH_INDEXES[config.torch_variant],
        "image_uid": IMAGE_UID,
        "uid": container_user(root, config)[0],
        "gid": container_user(root, config)[1],
        "https": config.https,
        "cert_file": CERT_FILE,
        "key_file": KEY_FILE,
        "nginx_http_inside": NGINX_HTTP_PORT,
        "nginx_https_inside": NGINX_HTTPS_PORT,
    }
    # Unattended sync ([[sync]] tables): one service per folder, with its own scoped key (ragctl/sync_services.py).
    from ragctl.sync_services import render_entries

    context |= render_entries(root, existing, https_api=config.https and not config.nginx and not swarm)
    keys = {service["key_var"] for service in context["sync_services"]}
    context["extra_env"] = [(k, v) for k, v in context["extra_env"] if k not in keys]
    # Compose's redis.conf holds no password: Compose hands REDIS_PASSWORD (from .env) to the redis
    # container, whose command feeds "requirepass" to redis-server on stdin (compose.yaml.j2).
    context |= {"redis_bind": "0.0.0.0", "redis_port": 6379, "redis_dir": "/data", "redis_protected": False,
                "redis_requirepass": None, "redis_password_on_stdin": True}
    environment = _templates()
    context["swarm"] = swarm
    resolved = placement or (config.worker_placement if config.worker_placement != "auto" else "apart")
    context |= {"worker_placement_resolved": resolved, "worker_constraints": worker_constraints(config.gpu, resolved)}
    if swarm:
        # Swarm nodes hold no project folder: the services run as the image's user unless [stack] says.
        context |= {"uid": config.uid or IMAGE_UID, "gid": config.gid or config.uid or IMAGE_UID,
                    "redis_conf": environment.get_template(RENDERED["redis.conf"]).render(**context),
                    "nginx_conf": environment.get_template(RENDERED["nginx.conf"]).render(**context)}
        objects = swarm_objects(root, context).values()
        context["secret_names"] = {item.key: item.name for item in objects if item.kind == "secret"}
        context["config_names"] = {item.key: item.name for item in objects if item.kind == "config"}
    return context


@dataclass(frozen=True)
class SwarmObject:
    """A Swarm secret or config of the stack: its name changes with its content (Swarm's are immutable)."""

    key: str
    name: str
    data: bytes
    kind: Literal["secret", "config"] = "secret"


def swarm_objects(root: Path, context: dict) -> dict[str, SwarmObject]:
    """key (as stack.yaml names it) → the secret or config ``ragctl up`` creates from .env, the
    certificate and redis.conf.  Each secret is a file in the services' /run/secrets (RAG_SECRETS_DIR)."""
    import hashlib

    name = context["name"]
    contents: dict[str, tuple[bytes, str]] = {
        POSTGRES_PASSWORD_KEY: (context["postgres_password"].encode(), "secret"),
        REDIS_PASSWORD_KEY: (context["redis_password"].encode(), "secret"),
        CHROMA_TOKEN_KEY: (context["chroma_token"].encode(), "secret"),
        "RAG_API_KEY": (context["api_key"].encode(), "secret"),
        **{service["key_var"]: (service["key"].encode(), "secret") for service in context["sync_services"]},
        "REDIS_URL": (redis_url("redis", 6379, context["redis_password"]).encode(), "secret"),
        "RAG_DATABASE_URL": (f"postgresql://ragctl:{context['postgres_password']}@postgres:5432/ragctl".encode(),
                             "secret"),
        "redis_conf": (context["redis_conf"].encode(), "config"),
        "nginx_conf": (context["nginx_conf"].encode(), "config"),
    }
    if context["https"]:
        for key, relative in (("tls_crt", CERT_FILE), ("tls_key", KEY_FILE)):
            path = root / relative
            contents[key] = (path.read_bytes() if path.is_file() else b"", "secret")
    objects = {}
    for key, (data, kind) in contents.items():
        digest = hashlib.sha256(name.encode() + b"\0" + key.encode() + b"\0" + data).hexdigest()[:12]
        objects[key] = SwarmObject(key, f"{name}_{key.lower()}_{digest}", data, kind)  # type: ignore[arg-type]
    return objects


@functools.cache  # one environment: jinja2 compiles each template once (its loader reloads a changed file)
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


def checked_secret(key: str, value: str) -> str:
    """A stack secret (STACK_SECRETS), when it is one we can put in a config file, a here-document,
    a header and a URL unescaped."""
    if not STACK_SECRET_RE.fullmatch(value or ""):
        raise ConfigError(f"{key} in .env must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ -.",
                          f"delete the {key} line from .env (ragctl render or ragctl up generates "
                          "a new one), then restart the stack")
    return value


def checked_redis_password(password: str) -> str:
    """The password, when it is one we can put in redis.conf, a here-document and a URL unescaped."""
    return checked_secret(REDIS_PASSWORD_KEY, password)


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


def write_rendered(root: Path, *, dry_run: bool = False, files: dict[str, str] | None = None,
                   placement: str | None = None) -> list[RenderedFile]:
    """Write the rendered files (and the host folders the compose file mounts); report changes
    (``placement``: see render_context)."""
    results = []
    if not dry_run:  # first: the swarm stack file names the certificate's secret by its content
        ensure_certificate(root, load_deploy_config(root))
    for name, content in render_files(root, files, placement=placement).items():
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


# -- TLS at the edge -----------------------------------------------------------------------------
def certificate_names(config: DeployConfig) -> list[str]:
    """subjectAltName entries of the self-signed certificate: ``DNS:…`` and ``IP:…``."""
    import ipaddress
    import socket

    hosts = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if config.edge_bind not in ("", "0.0.0.0", "::"):
        hosts.append(config.edge_bind)
    names = []
    for host in [*hosts, *config.tls_hosts]:
        host = host.strip()
        if not host:
            continue
        try:
            entry = f"IP:{ipaddress.ip_address(host)}"
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.*-]{0,252})", host):
                raise ConfigError(f"tls_hosts: {host!r} is neither a DNS name nor an IP address.",
                                  "fix tls_hosts under [stack] in ragctl.toml") from None
            entry = f"DNS:{host.lower()}"
        if entry not in names:
            names.append(entry)
    return names


def _openssl(args: list[str], *, what: str) -> str:
    if shutil.which("openssl") is None:
        raise ConfigError(f"{what} needs the openssl program, which is not installed here.",
                          "install openssl (apt-get install openssl), or put your own certificate in certs/ and "
                          "set tls = \"provided\" under [stack]")
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise ConfigError(f"{what} failed: openssl {args[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}",
                          "check the files in certs/ (or delete them: ragctl render makes new ones)")
    return done.stdout


def certificate_sans(path: Path) -> set[str]:
    """The subjectAltName entries of a PEM certificate (``DNS:…``, ``IP:…``)."""
    out = _openssl(["x509", "-in", str(path), "-noout", "-ext", "subjectAltName"], what=f"reading {path}")
    import ipaddress

    names = set()
    for line in out.splitlines()[1:]:
        for item in filter(None, (part.strip() for part in line.split(","))):
            if item.startswith("IP Address:"):  # openssl writes ::1 as 0:0:0:0:0:0:0:1
                item = f"IP:{ipaddress.ip_address(item.removeprefix('IP Address:'))}"
            names.add(item)
    return names


def ensure_certificate(root: Path, config: DeployConfig) -> Path | None:
    """The edge's certificate: with tls = "self-signed", generated into certs/ (key 0600) when it is
    missing, expires within 30 days or lacks one of :func:`certificate_names`; with "provided", the
    user's files checked.  None with tls = "off"."""
    cert, key = root / CERT_FILE, root / KEY_FILE
    if not config.https:
        return None
    if config.tls == "provided":
        missing = [str(p) for p in (cert, key) if not p.is_file()]
        if missing:
            raise ConfigError(f"tls = \"provided\" but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                              "missing.", f"copy your certificate (with its chain) to {cert} and its key to {key}, "
                              "or set tls = \"self-signed\" under [stack]")
        if key.stat().st_mode & 0o077:
            try:
                key.chmod(0o600)
            except OSError:
                pass
        return cert
    wanted = certificate_names(config)
    if not config.nginx:
        from ragctl.sync_services import load_sync_folders

        if load_sync_folders(root):
            wanted.append("DNS:api")  # the sync services reach the API by its service name, over TLS
    if cert.is_file() and key.is_file():
        fresh = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-checkend", str(30 * 86400)],
                               capture_output=True, timeout=60, check=False).returncode == 0
        if fresh and set(wanted) <= certificate_sans(cert):
            return cert
    cert.parent.mkdir(exist_ok=True)
    staged_cert, staged_key = cert.with_suffix(".crt.new"), key.with_suffix(".key.new")
    fd = os.open(staged_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the key never exists readable
    os.close(fd)
    os.chmod(staged_key, 0o600)
    name = ProjectConfig.load(root).name
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", str(staged_key), "-out", str(staged_cert), "-days", "825", "-subj",
              f"/O=ragctl/CN={name}", "-addext", "subjectAltName=" + ",".join(wanted)],
             what="making the self-signed certificate")
    os.chmod(staged_key, 0o600)
    staged_cert.chmod(0o644)
    os.replace(staged_key, key)
    os.replace(staged_cert, cert)
    return cert


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
