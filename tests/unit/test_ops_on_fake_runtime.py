"""doctor's plan, health's verdicts and backup/restore's order, on a runtime that runs nothing."""

from __future__ import annotations

import pytest

from ragctl.errors import NotRunning
from ragctl.ops import backup as backups
from ragctl.ops.doctor import apply, diagnose, plan
from ragctl.ops.health import collect
from tests.support.fakes import FakeRuntime, FakeService, healthy_probe


def by_name(checks):
    return {c.name: c for c in checks}


# -- health ------------------------------------------------------------------------------------
def test_health_is_healthy_when_every_part_answers(project, api_url):
    report = collect(project, runtime=FakeRuntime(project, api_url=api_url))
    assert report.healthy, [c for c in report.checks if c.status == "fail"]
    names = by_name(report.checks)
    assert {"service redis", "service worker-1", "redis connection", "workers", "api live", "api ready"} <= set(names)


@pytest.mark.parametrize(("probe", "failing"), [
    (healthy_probe(redis={"ok": False, "error": "Connection refused"}), "redis connection"),
    (healthy_probe(redis={"ok": True, "ms": 1, "aof_enabled": False}), "redis aof"),
    (healthy_probe(celery={"ok": True, "workers": [], "consuming_ingest": [], "registered_by": {}, "backends": {}}),
     "workers"),
    (healthy_probe(chroma={"ok": False, "error": "Connection refused"}), "chroma"),
])
def test_health_fails_on_the_part_that_is_down(project, api_url, probe, failing):
    report = collect(project, runtime=FakeRuntime(project, probe=probe, api_url=api_url))
    assert not report.healthy and by_name(report.checks)[failing].status == "fail"
    assert [c.name for c in report.checks if c.status == "fail"] == [failing]


def test_health_fails_on_a_dead_service_and_an_api_that_does_not_answer(project):
    services = [FakeService("redis"), FakeService("worker-1", state="restarting", ready=False)]
    report = collect(project, runtime=FakeRuntime(project, services=services, api_url="http://127.0.0.1:9"))
    failing = {c.name for c in report.checks if c.status == "fail"}
    assert failing == {"service worker-1", "api live"}


def test_health_of_a_stopped_stack_is_not_running(project):
    with pytest.raises(NotRunning):
        collect(project, runtime=FakeRuntime(project, running=False))


# -- doctor's plan -------------------------------------------------------------------------------
def test_doctor_plans_nothing_for_a_healthy_stack(project, api_url):
    findings = diagnose(project, runtime=FakeRuntime(project, api_url=api_url))
    assert not [f for f in findings if f.status == "fail"] and plan(findings) == []


def test_doctor_plans_one_up_for_a_stopped_stack_and_applies_it(project):
    runtime = FakeRuntime(project, running=False)
    steps = plan(diagnose(project, runtime=runtime))
    assert [s.action for s in steps] == [("up", "")]
    assert apply(runtime, steps[0]) == "up" and runtime.calls[-1] == "up"


def test_doctor_restarts_each_failing_service_once(project, api_url):
    services = [FakeService("redis"), FakeService("api", state="exited", ready=False),
                FakeService("worker-1", state="restarting", ready=False)]
    probe = healthy_probe(celery={"ok": True, "workers": [], "consuming_ingest": [], "registered_by": {},
                                  "backends": {}})
    runtime = FakeRuntime(project, services=services, probe=probe, api_url=api_url)
    steps = plan(diagnose(project, runtime=runtime))
    # The dead worker shows twice (its service, no Celery worker): one restart.
    assert [s.action for s in steps] == [("restart", "api"), ("restart", "worker-1"), ("restart", "worker")]
    for step in steps:
        apply(runtime, step)
    assert [c for c in runtime.calls if c.startswith("restart")] == ["restart api", "restart worker-1",
                                                                      "restart worker"]


def test_doctor_resumes_paused_intake_instead_of_restarting_workers(project, api_url):
    probe = healthy_probe(redis={"ok": True, "ms": 1, "aof_enabled": True, "intake_paused": "backup"},
                          celery={"ok": True, "workers": ["w@h"], "consuming_ingest": [],
                                  "registered_by": {"w@h": ["rag.ingest"]}, "backends": {"w@h": "redis://"}})
    runtime = FakeRuntime(project, probe=probe, api_url=api_url)
    findings = diagnose(project, runtime=runtime)
    assert by_name(findings)["intake"].status == "fail" and by_name(findings)["worker queues"].status == "fail"
    steps = plan(findings)
    assert [s.action for s in steps] == [("resume", "")]
    apply(runtime, steps[0])
    assert runtime.calls[-1] == "maintenance resume"


def test_doctor_leaves_what_it_cannot_fix_safely_to_the_operator(project, api_url):
    probe = healthy_probe(chroma={"ok": True, "collections": {"default": {"count": 3, "embed_model": "other"}}})
    (project / "ragctl.toml").write_text('[project]\nname = "fake"\n[settings]\nembed_model = "mine"\n')
    findings = diagnose(project, runtime=FakeRuntime(project, probe=probe, api_url=api_url))
    model = by_name(findings)["model default"]
    assert model.status == "fail" and model.action is None and "ragctl reindex" in model.hint
    assert plan(findings) == []


# -- backup and restore ---------------------------------------------------------------------------
def test_backup_pauses_copies_then_resumes_and_restore_runs_in_order(project, tmp_path):
    (project / "data" / "uploads").mkdir(parents=True)
    (project / "data" / "uploads" / "a.txt").write_text("hello")
    runtime = FakeRuntime(project)
    archive = tmp_path / "out" / "b.tar.gz"
    manifest = backups.backup(project, archive, runtime=runtime)
    assert runtime.calls == ["maintenance pause", "maintenance bgsave", "vector_counts", "store_members",
                             "maintenance resume"]
    assert set(manifest.files) == {"config/ragctl.toml", "data/uploads/a.txt", "chroma/chroma.sqlite3",
                                   "redis/dump.rdb"}
    assert manifest.vectors == {"default": 7} and manifest.runtime == "fake"

    (project / "data" / "uploads" / "a.txt").write_text("changed after the backup")
    runtime.calls.clear()
    result = backups.restore(project, archive, runtime=runtime)
    assert runtime.calls == ["stop_for_restore", "restore_stores", "start_after_restore", "maintenance resume",
                             "vector_counts"]
    assert result["verified"] and result["started"]
    assert (project / "data" / "uploads" / "a.txt").read_text() == "hello"
    assert runtime.restored == {"chroma/chroma.sqlite3": b"vectors", "redis/dump.rdb": b"REDIS0011"}


def test_a_stack_that_is_down_is_not_backed_up(project, tmp_path):
    runtime = FakeRuntime(project, running=False)
    with pytest.raises(NotRunning):
        backups.backup(project, tmp_path / "b.tar.gz", runtime=runtime)
    assert runtime.calls == [] and not (tmp_path / "b.tar.gz").exists()


def test_a_damaged_archive_changes_nothing(project, tmp_path):
    import io
    import tarfile

    (project / "data" / "uploads").mkdir(parents=True)
    (project / "data" / "uploads" / "a.txt").write_text("hello")
    runtime = FakeRuntime(project)
    archive, tampered = tmp_path / "b.tar.gz", tmp_path / "tampered.tar.gz"
    backups.backup(project, archive, runtime=runtime)
    with tarfile.open(archive, "r:gz") as source, tarfile.open(tampered, "w:gz") as out:
        for member in source:
            content = source.extractfile(member).read()
            if member.name == "data/uploads/a.txt":
                content = b"jello"  # same size, other bytes: only the manifest's checksum can tell
            member.size = len(content)
            out.addfile(member, io.BytesIO(content))
    runtime.calls.clear()
    with pytest.raises(backups.BackupError, match="checksum"):
        backups.restore(project, tampered, runtime=runtime)
    assert runtime.calls == []  # refused before anything was stopped
    assert (project / "data" / "uploads" / "a.txt").read_text() == "hello"
