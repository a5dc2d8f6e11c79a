"""doctor --fix verifies after waiting for what it fixed to be ready (a worker that boots slowly),
with a deadline that the report names; on a runtime that runs nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ragctl.ops.doctor import WORKERS_ANSWER, diagnose, fix, plan, wait_ready
from tests.support.fakes import FakeRuntime, FakeService, healthy_probe

NO_WORKER = {"ok": True, "workers": [], "consuming_ingest": [], "registered_by": {}, "backends": {}}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "ragctl.toml").write_text('[project]\nname = "fake"\nruntime = "embedded"\n')
    return tmp_path


def slow_worker(project, api_url, probes: int) -> FakeRuntime:
    """No worker answers; a restart brings one that answers a ping only ``probes`` probes later."""
    return FakeRuntime(project, probe=healthy_probe(celery=NO_WORKER), api_url=api_url,
                       after_fix=healthy_probe(), ready_after_probes=probes)


def failing(findings):
    return [f.name for f in findings if f.status == "fail"]


def test_verification_waits_for_a_slow_worker_to_answer_a_ping(project, api_url):
    runtime = slow_worker(project, api_url, probes=4)
    steps = plan(diagnose(project, runtime=runtime))
    assert [s.action for s in steps] == [("restart", "worker")]
    result = fix(runtime, steps, deadline_s=30, poll_s=0.01)
    assert result.applied == ["restart worker"]
    assert [(w.what, w.ready) for w in result.waited] == [("service worker running and ready", True),
                                                          (WORKERS_ANSWER, True)]
    assert failing(result.findings) == [] and not result.not_ready
    assert runtime.calls.index("restart worker") < len(runtime.calls) - 5  # it probed until the worker answered


def test_without_the_wait_the_same_fix_still_looks_broken(project, api_url):
    """What --fix did before: diagnose at once after the restart, while the worker still boots."""
    runtime = slow_worker(project, api_url, probes=4)
    result = fix(runtime, plan(diagnose(project, runtime=runtime)), deadline_s=0, poll_s=0.01)
    assert "workers" in failing(result.findings)


def test_a_worker_that_never_answers_is_reported_with_what_was_awaited_and_how_long(project, api_url):
    runtime = slow_worker(project, api_url, probes=10_000)
    result = fix(runtime, plan(diagnose(project, runtime=runtime)), deadline_s=0.3, poll_s=0.05)
    late = result.not_ready
    assert [w.what for w in late] == [WORKERS_ANSWER] and late[0].service == "worker"
    assert 0.3 <= late[0].seconds < 5 and late[0].deadline_s == 0.3
    text = late[0].describe()
    assert "Celery ping" in text and "not ready after waiting 0." in text and "deadline 0.3 s" in text
    assert "no worker answers a Celery ping" in text and "workers" in failing(result.findings)


def test_up_waits_for_every_service_and_the_workers(project, api_url):
    services = [FakeService("redis"), FakeService("api"), FakeService("worker-1")]
    runtime = FakeRuntime(project, running=False, services=services, probe=healthy_probe(celery=NO_WORKER),
                          api_url=api_url, after_fix=healthy_probe(), ready_after_probes=3)
    steps = plan(diagnose(project, runtime=runtime))
    assert [s.action for s in steps] == [("up", "")]
    result = fix(runtime, steps, deadline_s=30, poll_s=0.01)
    assert [(w.what, w.ready) for w in result.waited] == [("every service of the stack running and ready", True),
                                                          (WORKERS_ANSWER, True)]
    assert failing(result.findings) == []


def test_a_restarted_service_is_awaited_until_its_state_is_ready(project, api_url):
    worker = FakeService("worker-1", state="restarting", ready=False)
    runtime = FakeRuntime(project, services=[FakeService("redis"), worker], api_url=api_url)
    rounds = []

    def heard(what, seconds):
        rounds.append(what)
        if len(rounds) == 3:
            worker.state, worker.ready = "running", True

    steps = [s for s in plan(diagnose(project, runtime=runtime)) if s.action == ("restart", "worker-1")]
    waited = wait_ready(runtime, steps, deadline_s=30, poll_s=0.01, on_wait=heard)
    assert rounds == ["service worker-1 running and ready"] * 3
    assert [w.ready for w in waited] == [True, True]


def test_doctor_fix_json_reports_the_waits(project, api_url, monkeypatch):
    from ragctl.cli import app
    from ragctl.cli import ops as cli_ops

    runtime = slow_worker(project, api_url, probes=10_000)
    monkeypatch.setattr(cli_ops, "current_runtime", lambda *a, **k: runtime)
    monkeypatch.setenv("RAGCTL_DOCTOR_FIX_WAIT_S", "0.2")
    result = CliRunner().invoke(app, ["--project", str(project), "doctor", "--fix", "--yes", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 3 and report["applied"] == ["restart worker"]
    late = [w for w in report["waited"] if not w["ready"]]
    assert late and late[0]["what"] == WORKERS_ANSWER and late[0]["deadline_s"] == 0.2 and late[0]["seconds"] >= 0.2

    runtime = slow_worker(project, api_url, probes=2)
    monkeypatch.setenv("RAGCTL_DOCTOR_FIX_WAIT_S", "30")
    result = CliRunner().invoke(app, ["--project", str(project), "doctor", "--fix", "--yes", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["ok"] and all(w["ready"] for w in report["waited"])


def test_a_restarted_redis_is_fixed_when_the_workers_answer_again():
    """Celery workers reconnect to a restarted broker on a back-off: until they answer a ping, tasks
    stay PENDING, so the fix is not done when Redis alone answers (the Compose e2e saw it under load)."""
    from ragctl.checks import Check
    from ragctl.ops.doctor import readiness_for

    awaited = [ready.what for ready in readiness_for(Check("redis connection", "fail", "refused", "down", "fix",
                                                           ("restart", "redis")))]
    assert "Redis answering the services' ping" in awaited and WORKERS_ANSWER in awaited
    chroma = [ready.what for ready in readiness_for(Check("chroma", "fail", "x", "y", "z", ("restart", "chroma")))]
    assert WORKERS_ANSWER not in chroma
