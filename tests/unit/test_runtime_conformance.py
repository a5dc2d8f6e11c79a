"""A runtime with only the lifecycle works with every command (issue #24 items 1 and 7).

tests/support/lifecycle_runtime.py implements :class:`~ragctl.runtime.base.Runtime` and nothing else,
with one registry entry: the project file accepts it, ``up``/``status``/``ps``/``restart``/``logs``/
``down`` drive it, doctor and health answer from its status alone, and what needs a capability it
lacks (backup, upgrade, nodes) says so plainly, with exit 2 and no traceback.

The conformance suite (tests/support/conformance.py) runs here against the lifecycle-only runtime
and the embedded one; tests/integration/test_doctor.py runs it against a local stack, and the
Compose and Swarm e2e modules against theirs."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import as_json, output, ragctl
from tests.support.conformance import check_errors, check_runtime, check_status, runtime_of
from tests.support.lifecycle_runtime import KIND, SERVICES, LifecycleOnlyRuntime

#: Exit codes a command may end with (README "Exit codes"); 1 is also an uncaught exception's.
DOCUMENTED = {0, 2, 3, 4, 5}


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "minimal"
    root.mkdir()
    (root / "ragctl.toml").write_text(f'[project]\nname = "minimal"\nruntime = "{KIND}"\n')
    return root


def test_the_lifecycle_drives_the_stack(project):
    up = ragctl(project, "up", "--json")
    assert up.exit_code == 0, output(up)
    assert json.loads(up.stdout)["runtime"] == KIND
    status = as_json(ragctl(project, "status", "--json"))
    assert status["running"] is True and status["runtime"] == KIND
    rows = as_json(ragctl(project, "ps", "--json"))
    assert [row["service"] for row in rows] == list(SERVICES)
    assert ragctl(project, "restart", "worker-1").exit_code == 0
    logs = ragctl(project, "logs", "api")
    assert logs.exit_code == 0 and "api: running" in logs.stdout
    down = ragctl(project, "down", "--yes", "--json")
    assert down.exit_code == 0, output(down)
    assert as_json(ragctl(project, "status", "--json"))["running"] is False


def test_doctor_and_health_answer_from_the_status_alone(project):
    assert ragctl(project, "up", "--json").exit_code == 0
    doctor = ragctl(project, "doctor", "--json")
    assert doctor.exit_code in DOCUMENTED, output(doctor)
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["findings"]}
    assert {f"service {name}" for name in SERVICES} <= set(checks)
    assert all(checks[f"service {name}"]["status"] == "ok" for name in SERVICES)
    assert checks["probe"]["status"] == "warn" and "not checked" in checks["probe"]["detail"]
    assert "redis connection" not in checks  # not a failure it could not observe
    health = ragctl(project, "health", "--json")
    assert health.exit_code in DOCUMENTED, output(health)
    assert "Traceback" not in output(doctor) + output(health)


@pytest.mark.parametrize(("args", "says"), [
    (["backup"], "cannot back up its data"),
    (["upgrade", "--yes"], "cannot move its state into PostgreSQL"),
    (["nodes", "list"], "ragctl nodes is for a swarm project"),
])
def test_what_it_cannot_do_is_said_plainly(project, args, says):
    assert ragctl(project, "up", "--json").exit_code == 0
    result = ragctl(project, *args)
    assert result.exit_code == 2, output(result)
    assert says in output(result) and "Traceback" not in output(result)


def test_the_lifecycle_only_runtime_conforms_running_and_stopped(project):
    runtime = runtime_of(project)
    check_runtime(runtime)  # stopped: nothing runs, every promise still holds
    assert ragctl(project, "up", "--json").exit_code == 0
    check_runtime(runtime, logs_of="api", restart="worker-1")


def test_the_embedded_runtime_conforms(tmp_path):
    root = tmp_path / "embedded"
    root.mkdir()
    (root / "ragctl.toml").write_text('[project]\nname = "embedded"\nruntime = "embedded"\n')
    runtime = runtime_of(root)
    assert runtime.kind == "embedded"
    check_runtime(runtime)


def test_the_suite_catches_a_runtime_that_breaks_the_contract(project):
    """The checks can fail: a status whose JSON disagrees with it, a restart that raises a bare KeyError."""

    class Misreports(LifecycleOnlyRuntime):
        def status(self):
            status = super().status()
            status.to_dict = lambda: {"running": not status.running, "runtime": KIND, "services": []}
            return status

    class Crashes(LifecycleOnlyRuntime):
        def restart(self, service):
            return {"worker-1": []}[service]

    assert ragctl(project, "up", "--json").exit_code == 0
    with pytest.raises(AssertionError):
        check_status(Misreports(project))
    with pytest.raises(AssertionError):
        check_errors(Crashes(project))
