"""The control plane's own environment variables, read in one place into one typed object.

These set the ``ragctl`` process, not the services: the services' settings (``RAG_*``, ``REDIS_URL``,
``RAGCTL_WARM`` …) are fields of ``stack.settings.Settings``.  The rest of ragctl asks
:func:`cli_environment` and never reads ``os.environ`` for a setting of ours (a layer test,
``tests/unit/test_layers.py``, lists the few reads allowed elsewhere).

A plain dataclass, not pydantic-settings: nearly every command looks up its project here
(``RAGCTL_PROJECT``), and importing pydantic-settings costs about 0.16 s on a 2-core machine,
paid by ``ragctl ps`` as much as by ``ragctl ask``.  The values keep the meaning they always had: an
empty value is unset, any non-empty ``RAGCTL_DEBUG`` turns tracebacks on, an engine inactivity limit
that is not a positive number is ignored, a doctor threshold is a number read when its check runs.  Read at each call, not cached: it is a few dictionary lookups,
and a test's ``monkeypatch.setenv`` (or a long ``sync --watch``) sees the current value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: doctor's thresholds: RAGCTL_DOCTOR_<NAME> for NAME in MIN_DISK_GB, WARN_DISK_GB, MIN_MEMORY_GB,
#: STUCK_QUEUE_S, FIX_WAIT_S (ragctl/checks.py, ragctl/ops/doctor.py).
DOCTOR_PREFIX = "RAGCTL_DOCTOR_"
#: Engine calls that stream (builds, pulls, saves) fail after this long with nothing sent or taken (ragctl/engine/inactivity.py).
ENGINE_INACTIVITY_ENV = "RAGCTL_ENGINE_INACTIVITY_S"


@dataclass(frozen=True)
class CliEnvironment:
    """What the environment says to the ragctl process."""

    #: RAGCTL_PROJECT: the project to use when ``--project`` is not given.
    project: Path | None = None
    #: RAGCTL_API_URL: a running stack's API to talk to instead of the project's own.
    api_url: str | None = None
    #: RAGCTL_DEBUG: show the traceback of an unexpected error.
    debug: bool = False
    #: RAGCTL_ENGINE_INACTIVITY_S; None when unset, not a number or not positive (the default then holds).
    engine_inactivity_s: float | None = None
    #: RAGCTL_DOCTOR_<NAME> → its value as written.
    doctor: Mapping[str, str] = field(default_factory=dict)

    def doctor_threshold(self, name: str, default: float) -> float:
        """A doctor threshold (RAGCTL_DOCTOR_MIN_DISK_GB …), raised for a test or a big host."""
        return float(self.doctor.get(name, default))


def _positive(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def cli_environment(environ: Mapping[str, str] | None = None) -> CliEnvironment:
    """The ragctl process's environment variables, as they are now."""
    env = os.environ if environ is None else environ
    return CliEnvironment(
        project=Path(env["RAGCTL_PROJECT"]).expanduser() if env.get("RAGCTL_PROJECT") else None,
        api_url=env.get("RAGCTL_API_URL") or None,
        debug=bool(env.get("RAGCTL_DEBUG")),
        engine_inactivity_s=_positive(env.get(ENGINE_INACTIVITY_ENV, "")),
        doctor={key.removeprefix(DOCTOR_PREFIX): value for key, value in env.items() if key.startswith(DOCTOR_PREFIX)},
    )
