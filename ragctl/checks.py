"""One check record for pre-flight, ``health`` and ``doctor``, and the checks they share.

A check names what it looked at, its verdict (ok / warn / fail) and the evidence; a failing one
says the likely cause and the command that fixes it, and, when ragctl can apply that fix itself
safely, the ``action`` (``("up", "")``, ``("restart", SERVICE)`` or ``("resume", "")``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragctl.environment import cli_environment

Status = Literal["ok", "warn", "fail"]
GIB = 1 << 30


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    cause: str | None = None
    hint: str | None = None
    action: tuple[str, str] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: The section doctor shows it under ("" for the general one; "security").
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["action"] = list(self.action) if self.action else None
        return out


def threshold(name: str, default: float) -> float:
    """Thresholds can be raised for a test or a big host (RAGCTL_DOCTOR_MIN_DISK_GB, …)."""
    return cli_environment().doctor_threshold(name, default)


def disk_check(name: str, path: Path) -> Check:
    path = path if path.exists() else Path("/")
    free = shutil.disk_usage(path).free / GIB
    min_gb, warn_gb = threshold("MIN_DISK_GB", 2), threshold("WARN_DISK_GB", 10)
    status: Status = "fail" if free < min_gb else "warn" if free < warn_gb else "ok"
    return Check(name, status, f"{free:.1f} GiB free on {path}",
                 None if status == "ok" else "low disk: uploads, vectors and the AOF stop growing",
                 None if status == "ok" else "free space (docker image prune, old backups/)")


def available_memory_gib() -> float | None:
    try:
        match = re.search(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 / GIB if match else None


def memory_check() -> list[Check]:
    available = available_memory_gib()
    if available is None:
        return []
    status: Status = "fail" if available < threshold("MIN_MEMORY_GB", 1) else "warn" if available < 2 else "ok"
    return [Check("memory", status, f"{available:.1f} GiB available",
                  None if status == "ok" else "low memory: workers get killed loading the model",
                  None if status == "ok" else "stop other work, or lower workers / worker_memory")]


def ocr_check(mode: str, languages: str) -> Check:
    """OCR where the pipeline runs on this host (embedded, local): tesseract and its language models.
    Missing is a warning, not a failure: text documents still ingest, scans fail with the same line."""
    from ragctl.backends.embedded import ocr_missing

    if mode == "off":
        return Check("ocr", "ok", 'off (ocr = "off"): scanned pages and images are not read')
    missing = ocr_missing(languages)
    if missing:
        reason, install_line = missing
        return Check("ocr", "warn", f"{reason}: scanned PDFs and image files cannot be read",
                     "tesseract (or its Korean/English model) is not installed on this host", install_line)
    return Check("ocr", "ok", f"tesseract reads {languages} (scanned PDF pages and image files)")
