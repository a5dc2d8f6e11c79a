"""``ragctl support-bundle``: what a maintainer needs to help, with every secret redacted.

A tar.gz of: versions (ragctl, Python, platform, Docker and Compose when present), the rendered
configuration (ragctl.toml, compose.yaml, nginx.conf, redis.conf, .env with values redacted), ps,
health and doctor as JSON, and the last log lines of every service.
"""

from __future__ import annotations

import io
import json
import platform
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragctl import __version__
from ragctl.project import ProjectConfig, redact, redact_dotenv
from ragctl.runtime import Runtime, runtime_for
from ragctl.runtime.capabilities import Diagnosable

LOG_LINES = 300


def _versions() -> dict[str, Any]:
    from ragctl.engine import engine_versions

    return {"ragctl": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            **engine_versions()}


def _collect(name: str, produce: Callable[[], Any]) -> Any:
    try:
        return produce()
    except Exception as exc:  # noqa: BLE001 - the bundle says what could not be collected
        return {"error": f"{type(exc).__name__}: {exc}"}


def make_support_bundle(root: Path, out: Path, *, runtime: Runtime | None = None) -> dict[str, Any]:
    from ragctl.ops.doctor import diagnose
    from ragctl.ops.health import collect

    config = ProjectConfig.load(root)
    runtime = runtime or runtime_for(root, config=config)
    secrets = config.secrets()
    files: dict[str, str] = {}
    files["versions.json"] = json.dumps(_versions(), indent=2)
    for name in ("ragctl.toml", "compose.yaml", "nginx.conf", "redis.conf", "Dockerfile"):
        if (root / name).is_file():
            files[f"config/{name}"] = (root / name).read_text(errors="replace")
    if (root / ".env").is_file():
        files["config/.env"] = redact_dotenv((root / ".env").read_text(errors="replace"))
    files["ps.json"] = json.dumps(_collect("ps", lambda: [s.to_dict() for s in runtime.status().services]),
                                  indent=2, default=str)
    files["health.json"] = json.dumps(_collect("health", lambda: collect(root, runtime=runtime).to_dict()), indent=2,
                                      default=str, ensure_ascii=False)
    files["doctor.json"] = json.dumps(_collect("doctor", lambda: [c.to_dict() for c in diagnose(root, runtime=runtime)]),
                                      indent=2, default=str, ensure_ascii=False)
    recent = (lambda: runtime.recent_logs(LOG_LINES)) if isinstance(runtime, Diagnosable) else dict
    for service, text in _collect("logs", recent).items():
        files[f"logs/{service}.log"] = text
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for name, text in files.items():
            body = (text if name == "config/.env" else redact(text, secrets)).encode()
            info = tarfile.TarInfo(f"ragctl-support/{name}")
            info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(body))
    return {"file": str(out), "files": sorted(files), "runtime": runtime.kind}
