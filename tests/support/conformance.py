"""The runtime conformance suite: what the Runtime contract (ragctl/runtime/base.py) promises, written
once and run against every runtime (issue #24 item 7).

Given a Runtime instance of a project (running or not), :func:`check_runtime` checks:

- the registry: the runtime's ``kind`` is a registry entry whose implementation is this class, and
  every capability (ragctl/runtime/capabilities.py) is granted by ``require`` exactly when
  ``isinstance`` says the runtime has it (else a usage error with a hint, never an AttributeError);
- ``status()``: its fields and types, the :class:`ServiceView` members of every service,
  ``to_dict()`` JSON-serialisable and saying the same as the status, and ``ragctl status --json`` /
  ``ragctl ps --json`` listing the same services;
- where clients reach it: ``api_url()`` is the status's and answers ``/api/health`` while running,
  says NotRunning (with the start command) while stopped, and is None where nothing runs;
  ``client_settings`` is a Settings;
- ``logs`` of a named service yields text; ``restart`` of one service brings it back ready (when
  the caller can afford a restart); an unknown service is a RagctlError with a hint (its logs may
  instead be lines saying there are none), and the CLI says so with a documented exit code, never a
  traceback.

Runtimes are reached through the registry and ``ragctl.runtime.runtime_for``, never by their class,
so that this file holds for a runtime it has never heard of (tests/support/lifecycle_runtime.py)."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

from ragctl.errors import NotRunning, RagctlError
from ragctl.runtime import Runtime, runtime_for
from ragctl.runtimes import kind_of
from tests.support.cli import as_json, output, ragctl

#: Exit codes a command may end with (README "Exit codes").  The CLI runs in this process with
#: exceptions propagating, so an exit 1 here is the CLI's error, not an uncaught exception's.
DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 5}
NO_SUCH_SERVICE = "no-such-service"


def runtime_of(root: Path, kind: str | None = None) -> Runtime:
    """The project's runtime as every command gets it."""
    return runtime_for(root, kind)


def capabilities() -> list[type]:
    """Every capability a runtime may inherit: the classes ragctl/runtime/capabilities.py defines."""
    from ragctl.runtime import capabilities as module

    return [value for value in vars(module).values()
            if inspect.isclass(value) and value.__module__ == module.__name__]


def check_registry(runtime: Runtime) -> None:
    from ragctl.runtime.capabilities import require

    entry = kind_of(runtime.kind)
    assert entry.name == runtime.kind
    assert entry.load() is type(runtime), f"the registry's {runtime.kind} is {entry.implementation}"
    found = capabilities()
    assert found, "ragctl/runtime/capabilities.py defines no capability"
    for capability in found:
        if isinstance(runtime, capability):
            assert require(runtime, capability, "do this") is runtime
        else:
            error = _raised(lambda capability=capability: require(runtime, capability, "do this"))
            assert isinstance(error, RagctlError) and error.hint, (capability.__name__, error)
            assert runtime.kind in error.message


def check_status(runtime: Runtime) -> None:
    status = runtime.status()
    assert isinstance(status.running, bool)
    assert status.runtime == runtime.kind
    assert status.api_url is None or isinstance(status.api_url, str)
    for optional in ("flower_url", "flower_auth"):
        assert getattr(status, optional) is None or isinstance(getattr(status, optional), str), optional
    for service in status.services:
        check_service_view(service)
    as_dict = status.to_dict()
    json.dumps(as_dict)  # a status is what --json prints: JSON, nothing else
    assert as_dict["running"] is status.running and as_dict["runtime"] == runtime.kind
    assert as_dict.get("api_url") == status.api_url
    assert [row["service"] for row in as_dict["services"]] == [s.name for s in status.services]
    if not kind_of(runtime.kind).has_services:
        assert status.services == [] and not status.running


def check_service_view(service) -> None:
    assert isinstance(service.name, str) and service.name
    assert isinstance(service.state, str) and service.state
    assert service.ready is None or isinstance(service.ready, bool)
    assert isinstance(service.summary(), str) and isinstance(service.label(), str)
    columns = service.columns()
    assert columns and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()), columns
    row = service.ps_row()
    json.dumps(row)
    assert row["service"] == service.name


def check_cli_agrees(runtime: Runtime) -> None:
    """``ragctl status --json`` and ``ragctl ps --json`` say what the runtime says."""
    status = runtime.status()
    shown = ragctl(runtime.root, "status", "--json")
    assert shown.exit_code == 0, output(shown)
    shown = as_json(shown)
    assert shown["running"] is status.running and shown["runtime"] == runtime.kind
    assert shown["api_url"] == status.api_url
    rows = ragctl(runtime.root, "ps", "--json")
    # A stack that is down and has nothing to list: exit 5 (not running), still with its JSON.
    expected_exit = 5 if status.services == [] and not status.running and kind_of(runtime.kind).has_services else 0
    assert rows.exit_code == expected_exit, output(rows)
    assert [row["service"] for row in as_json(rows)] == [s.name for s in status.services]


def check_reachable(runtime: Runtime) -> None:
    import httpx

    from ragctl.runtime.capabilities import api_verify, client_settings
    from stack.settings import Settings

    assert isinstance(client_settings(runtime), Settings)
    status = runtime.status()
    if not kind_of(runtime.kind).has_services:
        assert runtime.api_url() is None
    elif not status.running:
        error = _raised(runtime.api_url)
        assert isinstance(error, NotRunning) and error.hint, error
    else:
        assert runtime.api_url() == status.api_url
        if status.api_url:  # a runtime may run services with no API (lifecycle-only)
            answer = httpx.get(f"{status.api_url}/api/health", verify=api_verify(runtime), timeout=30)
            assert answer.status_code == 200, answer.text


def check_logs(runtime: Runtime, service: str) -> None:
    lines = list(runtime.logs(service, lines=20))
    assert all(isinstance(line, str) for line in lines)
    assert lines, f"no log line of {service}"


def check_restart(runtime: Runtime, service: str, *, wait_s: float = 180) -> None:
    """Restart one service: the runtime answers with that service, and the status shows it ready
    again (polled for up to ``wait_s``: a wait, not a timing assertion)."""
    restarted = runtime.restart(service)
    assert restarted and all(isinstance(s.name, str) for s in restarted)
    deadline = time.monotonic() + wait_s
    while True:
        current = {s.name: s for s in runtime.status().services}
        named = [s for name, s in current.items() if name == service or name.startswith(f"{service}-")]
        if named and all(s.ready or s.state in ("running", "healthy") for s in named):
            return
        assert time.monotonic() < deadline, f"{service} not back after {wait_s} s: {[s.summary() for s in named]}"
        time.sleep(1)


def check_errors(runtime: Runtime) -> None:
    """An unknown service is a RagctlError with a hint, in the library and through the CLI."""
    error = _raised(lambda: runtime.restart(NO_SUCH_SERVICE))
    assert isinstance(error, RagctlError) and error.hint, error
    # Its logs: a RagctlError with a hint, or lines that say there are none (Compose's "(no logs: …)").
    try:
        assert all(isinstance(line, str) for line in runtime.logs(NO_SUCH_SERVICE, lines=5))
    except RagctlError as exc:
        assert exc.hint, exc
    result = ragctl(runtime.root, "restart", NO_SUCH_SERVICE)
    assert result.exit_code in DOCUMENTED_EXITS - {0}, output(result)
    assert "Traceback" not in output(result) and output(result).strip()


def check_runtime(runtime: Runtime, *, logs_of: str | None = None, restart: str | None = None) -> None:
    """Every check above.  ``logs_of``: a service whose log has lines (running stacks); ``restart``:
    a service to restart (skipped where a restart costs more than the caller can spend)."""
    check_registry(runtime)
    check_status(runtime)
    check_cli_agrees(runtime)
    check_reachable(runtime)
    check_errors(runtime)
    if logs_of is not None:
        check_logs(runtime, logs_of)
    if restart is not None:
        check_restart(runtime, restart)


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the check says which kind it must be
        return exc
    raise AssertionError(f"{call} raised nothing")
