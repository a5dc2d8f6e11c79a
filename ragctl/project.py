"""A ragctl project: a folder holding ragctl.toml (and .env), read once into a ProjectConfig.

ragctl.toml is parsed by one function, ``stack.contract.read_project_file``, which the services'
settings (``stack.settings``) use too; .env is parsed here and by pydantic-settings with the same
library (python-dotenv).  Edits go through ``set_config_value`` (tomlkit: comments kept).  This is
also the one redactor for what the two files hold.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ragctl.environment import cli_environment
from ragctl.errors import ConfigError, UsageError
from ragctl.runtimes import KINDS
from stack.contract import PROJECT_FILE, ProjectFileError, read_project_file

CONFIG_NAME = PROJECT_FILE
ENV_NAME = ".env"
#: .env keys whose values are secrets (the API key, Flower's login, a hosted LLM's key…).
SECRET_KEY = re.compile(r"(KEY|AUTH|SECRET|PASSWORD|TOKEN)", re.IGNORECASE)
#: Secrets written inline in logs and configuration: "Bearer …", "api_key=…", "password: …".
SECRET_VALUE = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+|password[\"'=:\s]+|token[\"'=:\s]+)"
                          r"([A-Za-z0-9._~+/=-]{8,})")
#: The password in a URL's user information: redis://:PASSWORD@host, http://user:PASSWORD@host.
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)@")


#: The .env key of the stack's Redis password (generated once, like RAG_API_KEY; docs/security.md).
REDIS_PASSWORD_KEY = "REDIS_PASSWORD"
#: The .env key of the token every Chroma client of a stack sends (X-Chroma-Token; docs/security.md).
CHROMA_TOKEN_KEY = "CHROMA_TOKEN"
#: The stack's generated secrets: created once into .env (mode 0600) by init, render and up, then
#: kept; each must match STACK_SECRET_RE (it goes into config files, here-documents and URLs unescaped).
#: The .env key of the password of the stack's PostgreSQL user (the swarm runtime's database; docs/swarm.md).
POSTGRES_PASSWORD_KEY = "POSTGRES_PASSWORD"
STACK_SECRETS = (REDIS_PASSWORD_KEY, CHROMA_TOKEN_KEY, POSTGRES_PASSWORD_KEY)
STACK_SECRET_RE = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def new_secret() -> str:
    """A fresh stack secret (43 URL-safe characters, 256 bits)."""
    import secrets

    return secrets.token_urlsafe(32)


new_redis_password = new_secret


def ensure_stack_secrets(root: Path) -> dict[str, str]:
    """Every STACK_SECRETS key of the project's .env, generated where missing (key → value)."""
    return {key: ensure_dotenv_value(root, key, new_secret)[0] for key in STACK_SECRETS}


# -- .env ------------------------------------------------------------------------------------
def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines, read by python-dotenv: the parser the services' settings use too
    (pydantic-settings), so ragctl and the stack never disagree on quoting."""
    import io

    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(stream=io.StringIO(text)).items() if value is not None}


def read_dotenv(path: Path) -> dict[str, str]:
    try:
        return parse_dotenv(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def ensure_dotenv_value(root: Path, key: str, make) -> tuple[str, bool]:
    """The value of ``key`` in the project's .env; when absent, append ``key=make()`` (the file is
    created with mode 0600, and tightened to 0600 when we add a secret).  Returns (value, created)."""
    path = root / ENV_NAME
    existing = read_dotenv(path)
    if existing.get(key):
        return existing[key], False
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            handle.write("\n")
        handle.write(f"{key}={value}\n")
    os.chmod(path, 0o600)
    return value, True


# -- redaction -------------------------------------------------------------------------------
def redact_dotenv(text: str) -> str:
    """.env text with every secret value replaced by ``***`` (keys and other lines kept)."""
    out = []
    for line in text.splitlines(True):
        key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
        ending = "\n" if line.endswith("\n") else ""
        out.append(f"{line.split('=', 1)[0]}=***{ending}" if "=" in line and SECRET_KEY.search(key) else line)
    return "".join(out)


def redact(text: str, secrets: list[str]) -> str:
    """Any text (logs, reports) with the given secret values and inline credentials replaced."""
    for secret in sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = URL_PASSWORD.sub(lambda m: m.group(1) + "***@", text)
    return SECRET_VALUE.sub(lambda m: m.group(1) + "***", text)


def redact_url(url: str | None) -> str | None:
    """A URL with the password of its user information replaced by ``***`` (redis://:***@host:port/0)."""
    return URL_PASSWORD.sub(lambda m: m.group(1) + "***@", url) if url else url


# -- ragctl.toml -----------------------------------------------------------------------------
@dataclass
class ProjectConfig:
    """ragctl.toml and .env of one project, as read once."""

    root: Path
    toml: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> ProjectConfig:
        root = Path(root)
        try:
            data = read_project_file(root)
        except ProjectFileError as exc:
            raise ConfigError(exc.message, exc.hint) from exc
        return cls(root, data, read_dotenv(root / ENV_NAME))

    @property
    def exists(self) -> bool:
        return (self.root / CONFIG_NAME).is_file()

    def table(self, name: str) -> dict[str, Any]:
        value = self.toml.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] in {self.root / CONFIG_NAME} is not a table.", f"fix {self.root / CONFIG_NAME}")
        return value

    @property
    def runtime(self) -> str:
        """How the project runs: a kind in the registry (ragctl/runtimes.py); "embedded" by default."""
        runtime = self.table("project").get("runtime", "embedded")
        if runtime not in KINDS:
            raise ConfigError(f"runtime = {runtime!r} in {self.root / CONFIG_NAME} is not one of "
                              f"{', '.join(KINDS)}.", f"set runtime under [project] in {self.root / CONFIG_NAME}")
        return runtime

    @property
    def name(self) -> str:
        """The project's name as Docker accepts it (Compose project, labels)."""
        raw = self.table("project").get("name") or self.root.name
        cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(raw).lower()).strip("-_")
        return cleaned or "ragctl"

    def secrets(self) -> list[str]:
        values = [v for k, v in self.env.items() if SECRET_KEY.search(k) and v]
        return values + [v.split(":", 1)[1] for v in values if ":" in v]  # user:password pairs


def find_project_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    """The project to use: --project, else $RAGCTL_PROJECT, else the nearest folder upwards
    holding ragctl.toml, else the current folder (a new project, created on first write).

    The search stops at a repository's root (the folder holding ``.git``), which it still checks:
    a ragctl.toml committed there is a project on purpose, but one in a folder above a checkout
    (a home folder, a workspace) must not capture every command run inside the repository and
    write data/ and logs/ into it."""
    if explicit is not None:
        return explicit.expanduser().resolve()
    named = cli_environment().project
    if named is not None:
        return named.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
        if (folder / ".git").exists():
            break
    return here


def is_project(root: Path) -> bool:
    return (root / CONFIG_NAME).is_file()


def project_runtime(root: Path) -> str:
    return ProjectConfig.load(root).runtime


def project_name(root: Path) -> str:
    return ProjectConfig.load(root).name


def init_project(root: Path, settings: dict | None = None, *, runtime: str = "embedded",
                 stack: dict | None = None) -> Path:
    """Write ragctl.toml with the given settings and ``[stack]`` deployment values (defaults not
    given stay implicit, so upgrades apply).  A project with a stack (``stack`` given, even empty)
    gets its Redis password in .env."""
    if runtime not in KINDS:
        raise UsageError(f"Unknown runtime {runtime!r}.", f"use --runtime {'|'.join(KINDS)}")
    root.mkdir(parents=True, exist_ok=True)
    config = {"project": {"name": root.name, "runtime": runtime}, "settings": dict(settings or {})}
    if stack:
        config["stack"] = dict(stack)
    path = root / CONFIG_NAME
    path.write_text(
        "# ragctl project.  Every setting can also come from the environment; see docs/configuration.md.\n"
        + tomli_w.dumps(config),
        encoding="utf-8",
    )
    if stack is not None:  # a stack's Redis and Chroma never run without their secrets (docs/security.md)
        ensure_stack_secrets(root)
    return path


def set_config_value(root: Path, table: str, key: str, value: object) -> Path:
    """Set ``key = value`` under ``[table]`` in ragctl.toml, keeping every other line, comment and
    blank line as the user wrote them (tomlkit edits the document, not its text); create the
    project when there is none."""
    import tomlkit

    path = root / CONFIG_NAME
    if not path.is_file():
        init_project(root)
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    section = document.get(table)
    if section is None:
        section = tomlkit.table()
        document[table] = section
    section[key] = list(value) if isinstance(value, tuple) else value
    path.write_text(tomlkit.dumps(document), encoding="utf-8")
    return path


def record_runtime(root: Path, runtime: str) -> Path:
    """Record ``runtime = "<runtime>"`` under ``[project]`` in ragctl.toml (comments kept)."""
    return set_config_value(root, "project", "runtime", runtime)
