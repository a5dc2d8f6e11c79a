"""The control plane's errors: :class:`RagctlError` and its kinds, under the one root every error of
ragctl and its stack shares (``stack.contract.RagError``), with the documented exit codes.

An error says what happened (``message``), the next command to run (``hint``), a stable ``code``
for scripts and the exit code; ``command`` and ``stderr`` are set when an external program ran.
The CLI turns any of them into human output or one JSON document in one place
(``ragctl.output.fail``), so a new error needs a class here and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stack.contract import RagError

if TYPE_CHECKING:
    from ragctl.checks import Check

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNHEALTHY = 3
EXIT_PREFLIGHT = 4
EXIT_NOT_RUNNING = 5
EXIT_NEEDS_CONFIRMATION = 6


class RagctlError(RagError):
    """An operation of the control plane failed; see the module docstring."""

    code = "error"
    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None,
                 exit_code: int | None = None, command: list[str] | None = None, stderr: str = "") -> None:
        super().__init__(message, hint, code=code, exit_code=exit_code)
        self.command, self.stderr = command, stderr

    def detail(self) -> str:
        """The message, with the command and the tail of its stderr when there was one."""
        text = self.message
        if self.command:
            text += "\n$ " + " ".join(self.command)
        if self.stderr:
            text += "\n" + "\n".join(self.stderr.strip().splitlines()[-15:])
        return text

    def extra(self) -> dict[str, Any]:
        """What a subclass adds to the JSON error document (checks, failing services, logs)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        ran = {"command": self.command, "stderr": self.stderr[-4000:]} if self.command else {}
        return {"code": self.code, "message": self.message, "hint": self.hint, **ran, **self.extra()}


class UsageError(RagctlError):
    """The command line asks for something that cannot be done as asked."""

    code = "usage"
    exit_code = EXIT_USAGE


class ConfigError(RagctlError):
    """ragctl.toml or .env cannot be read, or holds a value that is not allowed."""

    code = "config_invalid"
    exit_code = EXIT_USAGE


class NotRunning(RagctlError):
    """The command needs the project's stack (or one of its services), and it is not running."""

    code = "not_running"
    exit_code = EXIT_NOT_RUNNING


class PreflightFailed(RagctlError):
    """A check before starting anything failed (a port is taken, no engine, redis-server missing)."""

    code = "preflight_failed"
    exit_code = EXIT_PREFLIGHT

    def __init__(self, message: str | None = None, hint: str | None = None, *,
                 checks: list[Check] | None = None, **kwargs: Any) -> None:
        self.checks = list(checks or [])
        failed = [c for c in self.checks if c.status == "fail"]
        if message is None:
            message = "Pre-flight failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        if hint is None and failed:
            hint = failed[0].hint
        super().__init__(message, hint, **kwargs)

    def extra(self) -> dict[str, Any]:
        return {"checks": [c.to_dict() for c in self.checks]} if self.checks else {}


class StartTimeout(RagctlError):
    """``up`` (or a restart) gave up waiting; what started is kept for inspection."""

    code = "start_timeout"
    exit_code = EXIT_UNHEALTHY

    def __init__(self, message: str, hint: str | None = None, *, failing: list[str] | None = None,
                 logs: dict[str, list[str]] | None = None, **kwargs: Any) -> None:
        super().__init__(message, hint, **kwargs)
        self.failing, self.logs = list(failing or []), dict(logs or {})

    def extra(self) -> dict[str, Any]:
        return {"failing": self.failing, "logs": self.logs}


class DockerError(RagctlError):
    """A Docker operation failed."""

    code = "docker_error"


class EngineUnavailable(DockerError):
    code = "engine_unavailable"
    exit_code = EXIT_PREFLIGHT


class EngineStalled(DockerError):
    """A long engine call (image save, load, build, pull) sent or took nothing for too long."""

    code = "engine_stalled"


class UpgradeFailed(RagctlError):
    """The move into PostgreSQL did not happen (rolled back inside the database)."""

    code = "upgrade_failed"

    def __init__(self, result: dict) -> None:
        differences = result.get("differences") or []
        hints = {"target_not_empty": "if that state is an earlier, abandoned upgrade of this project: ragctl upgrade "
                                     "--replace --yes   (it is deleted first; the SQLite files stay as they are)",
                 "move_mismatch": "fix the cause named above, then ragctl upgrade again"}
        super().__init__(result.get("error") or "the move into PostgreSQL failed",
                         hints.get(result.get("code"), "ragctl doctor   (then ragctl upgrade again)"))
        self.move_code = result.get("code")
        self.differences = differences


class NeedsConfirmation(RagctlError):
    code = "confirmation_needed"
    exit_code = EXIT_NEEDS_CONFIRMATION
