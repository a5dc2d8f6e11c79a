"""Shared helpers for the benchmarks: a fresh temporary project and a machine description."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    return info


def temporary_pipeline(**overrides):
    """A Pipeline over a fresh temporary project folder; returns (pipeline, folder)."""
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    folder = Path(tempfile.mkdtemp(prefix="ragctl-bench-"))
    return Pipeline(load_settings(folder, overrides)), folder
