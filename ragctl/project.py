"""Finding and creating a ragctl project: a folder holding ragctl.toml and the data it names."""

from __future__ import annotations

import os
from pathlib import Path

import tomli_w

CONFIG_NAME = "ragctl.toml"


def find_project_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    """The project to use: --project, else $RAGCTL_PROJECT, else the nearest folder upwards
    holding ragctl.toml, else the current folder (a new project, created on first write)."""
    if explicit is not None:
        return explicit.expanduser().resolve()
    if os.environ.get("RAGCTL_PROJECT"):
        return Path(os.environ["RAGCTL_PROJECT"]).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return here


def is_project(root: Path) -> bool:
    return (root / CONFIG_NAME).is_file()


def init_project(root: Path, settings: dict | None = None, *, runtime: str = "embedded",
                 stack: dict | None = None) -> Path:
    """Write ragctl.toml with the given settings and ``[stack]`` deployment values (defaults not
    given stay implicit, so upgrades apply)."""
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
    return path


def project_runtime(root: Path) -> str:
    """How the project runs: "embedded" (in the CLI process, the default), "local" or "docker"."""
    path = root / CONFIG_NAME
    if not path.is_file():
        return "embedded"
    import tomllib

    with path.open("rb") as handle:
        return tomllib.load(handle).get("project", {}).get("runtime", "embedded")


def set_config_value(root: Path, table: str, key: str, value: object) -> Path:
    """Set ``key = value`` under ``[table]`` in ragctl.toml, keeping every other line (comments
    included); create the project when there is none."""
    import re

    path = root / CONFIG_NAME
    if not path.is_file():
        init_project(root)
    text = path.read_text(encoding="utf-8")
    line = tomli_w.dumps({key: value}).strip()
    header = re.search(rf"(?m)^\[{re.escape(table)}\][ \t]*(#.*)?$", text)
    if header is None:
        text = text.rstrip("\n") + f"\n\n[{table}]\n{line}\n"
    else:
        start = header.end()
        following = re.search(r"(?m)^\[", text[start:])
        end = start + following.start() if following else len(text)
        body = text[start:end]
        pattern = rf"(?m)^{re.escape(key)}[ \t]*=.*$"
        body = re.sub(pattern, line.replace("\\", "\\\\"), body, count=1) if re.search(pattern, body) \
            else "\n" + line + body
        text = text[:start] + body + text[end:]
    path.write_text(text, encoding="utf-8")
    return path
