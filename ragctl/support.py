"""``ragctl support-bundle``: what a maintainer needs to help, with every secret redacted.

A tar.gz of: versions (ragctl, Python, platform, Docker and Compose when present), the rendered
configuration (ragctl.toml, compose.yaml, nginx.conf, redis.conf, .env with values redacted), ps,
health and doctor as JSON, and the last log lines of every service.
"""

from __future__ import annotations

import io
import json
import platform
import re
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragctl import __version__

LOG_LINES = 300
SECRET_KEY = re.compile(r"(KEY|AUTH|SECRET|PASSWORD|TOKEN)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+|password[\"'=:\s]+|token[\"'=:\s]+)([A-Za-z0-9._~+/=-]{8,})")


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True):
        text = text.replace(secret, "***")
    return SECRET_VALUE.sub(lambda m: m.group(1) + "***", text)


def redact_env(text: str) -> str:
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}=***" if "=" in line and SECRET_KEY.search(key) else line)
    return "\n".join(lines) + "\n"


def _secrets(root: Path) -> list[str]:
    from ragctl.runtime.local import read_dotenv

    values = [v for k, v in read_dotenv(root / ".env").items() if SECRET_KEY.search(k)]
    return values + [v.split(":", 1)[1] for v in values if ":" in v]  # user:password pairs


def _versions() -> dict[str, Any]:
    import shutil
    import subprocess

    versions: dict[str, Any] = {"ragctl": __version__, "python": sys.version.split()[0],
                                "platform": platform.platform()}
    for name, command in (("docker", ["docker", "version", "--format", "{{.Server.Version}}"]),
                          ("compose", ["docker", "compose", "version", "--short"])):
        if shutil.which(command[0]):
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
                versions[name] = out.stdout.strip() or out.stderr.strip()[:200]
            except subprocess.TimeoutExpired:
                versions[name] = "timed out"
    return versions


def _collect(name: str, produce: Callable[[], Any]) -> Any:
    try:
        return produce()
    except Exception as exc:  # noqa: BLE001 - the bundle says what could not be collected
        return {"error": f"{type(exc).__name__}: {exc}"}


def _logs(root: Path, runtime: str) -> dict[str, str]:
    if runtime == "docker":
        from ragctl.runtime.docker import DockerRuntime

        docker = DockerRuntime(root)
        return {service.service: "\n".join(docker.logs(service.service, lines=LOG_LINES))
                for service in docker.services() if service.containers}
    logs = {}
    for path in sorted((root / "logs").glob("*.log")) if (root / "logs").is_dir() else []:
        logs[path.stem] = "\n".join(path.read_text(errors="replace").splitlines()[-LOG_LINES:])
    return logs


def make_support_bundle(root: Path, out: Path) -> dict[str, Any]:
    from dataclasses import asdict

    from ragctl.doctor import diagnose
    from ragctl.project import project_runtime

    runtime = project_runtime(root)
    secrets = _secrets(root)
    files: dict[str, str] = {}

    def ps() -> Any:
        if runtime == "docker":
            from ragctl.runtime.docker import DockerRuntime

            return [s.to_dict() for s in DockerRuntime(root).services()]
        from ragctl.runtime.local import LocalRuntime

        return [asdict(s) for s in LocalRuntime(root).ps()]

    def health() -> Any:
        from ragctl.health import collect

        return collect(root).to_dict()

    files["versions.json"] = json.dumps(_versions(), indent=2)
    for name in ("ragctl.toml", "compose.yaml", "nginx.conf", "redis.conf", "Dockerfile"):
        if (root / name).is_file():
            files[f"config/{name}"] = (root / name).read_text(errors="replace")
    if (root / ".env").is_file():
        files["config/.env"] = redact_env((root / ".env").read_text(errors="replace"))
    files["ps.json"] = json.dumps(_collect("ps", ps), indent=2, default=str)
    files["health.json"] = json.dumps(_collect("health", health), indent=2, default=str, ensure_ascii=False)
    files["doctor.json"] = json.dumps(_collect("doctor", lambda: [f.to_dict() for f in diagnose(root)]), indent=2,
                                      ensure_ascii=False)
    for service, text in _collect("logs", lambda: _logs(root, runtime)).items():
        files[f"logs/{service}.log"] = text
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for name, text in files.items():
            body = (text if name == "config/.env" else redact_text(text, secrets)).encode()
            info = tarfile.TarInfo(f"ragctl-support/{name}")
            info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(body))
    return {"file": str(out), "files": sorted(files), "runtime": runtime}
