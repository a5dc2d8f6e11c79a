"""Runtimes that run the stack's services: ``local`` (supervised processes on loopback) now, Docker later.

Importing this package is cheap: nothing heavy (torch, chromadb, celery) is imported here.
"""

from ragctl.runtime.local import (
    LocalRuntime,
    LocalRuntimeError,
    NotRunningError,
    PreflightError,
    RuntimeState,
    RuntimeStatus,
    ServiceState,
    StartTimeoutError,
    read_state,
)

__all__ = [
    "LocalRuntime",
    "LocalRuntimeError",
    "NotRunningError",
    "PreflightError",
    "RuntimeState",
    "RuntimeStatus",
    "ServiceState",
    "StartTimeoutError",
    "read_state",
]
