"""The local runtime with real processes on loopback: redis-server, the Chroma server, the uvicorn
API, a Celery worker and beat, supervised by ``python -m ragctl.runtime.supervisor``.

Every wait is bounded; every stack is stopped by a fixture finalizer.  Ports are ``0`` (free ones)
except where a test takes a port on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from ragctl.runtime.local import LocalRuntime, load_state_file, read_state
from ragctl.runtime.processes import is_our_process, pid_alive
from tests.support.cli import make_project, output, ragctl
from tests.support.suite import skip_or_fail

pytestmark = pytest.mark.timeout(300)

if shutil.which("redis-server") is None:
    reason = "redis-server not installed (apt-get install redis-server)"
    skip_or_fail(reason, "local runtime", module=True)

def our_pids(project: Path) -> list[int]:
    raw = load_state_file(project) or {}
    pids = [raw.get("supervisor_pid")] + [s.get("pid") for s in raw.get("services", [])]
    return [pid for pid in pids if pid]


def wait_until(predicate, timeout_s: float, step_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    return predicate()


@pytest.fixture(scope="module")
def stack_project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("local-runtime") / "proj")
    result = ragctl(project, "up", "--runtime", "local", "--workers", "1", "--wait", "120", "--json")
    pids = our_pids(project)
    try:
        assert result.exit_code == 0, output(result) + _logs(project)
        yield project
    finally:
        LocalRuntime(project).down()
        for pid in pids:
            assert not pid_alive(pid), f"pid {pid} survived down"


def _logs(project: Path) -> str:
    text = ""
    for log in sorted((project / "logs").glob("*.log")):
        text += f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    return text


def services(project: Path) -> dict[str, dict]:
    result = ragctl(project, "ps", "--json")
    assert result.exit_code == 0, output(result)
    return {row["service"]: row for row in json.loads(result.stdout)}


# -- one stack, in order: up, status, restart, crash, down -----------------------------------
def test_up_starts_every_service_and_the_api_answers(stack_project):
    rows = services(stack_project)
    assert set(rows) == {"redis", "chroma", "api", "worker-1", "beat"}
    for row in rows.values():
        assert row["state"] == "running" and pid_alive(row["pid"]), row

    status = ragctl(stack_project, "status", "--json")
    assert status.exit_code == 0, output(status)
    data = json.loads(status.stdout)
    assert data["running"] is True and data["mode"] == "stack"
    assert data["api_url"].startswith("http://127.0.0.1:")
    assert httpx.get(data["api_url"] + "/api/health", timeout=5).status_code == 200
    # Where each worker encodes (issue #25), from its heartbeat: the worker learns it as it starts.
    deadline = time.monotonic() + 120
    while not all((data.get("workers") or {"": None}).values()) and time.monotonic() < deadline:
        time.sleep(1)
        data = json.loads(ragctl(stack_project, "status", "--json").stdout)
    [(worker, where)] = data["workers"].items()
    assert worker.startswith("worker-1@") and where["backend"] == "e5-torch" and where["device"] == "cpu", data
    human = ragctl(stack_project, "status")
    assert f"Worker   {worker}: e5-torch (" in human.stdout and " on cpu, " in human.stdout, output(human)

    toml = (stack_project / "ragctl.toml").read_text()
    assert 'runtime = "local"' in toml and "# test project" in toml and "api_port = 0" in toml
    env = (stack_project / ".env").read_text()
    assert "RAG_API_KEY=" in env and len(env.split("RAG_API_KEY=")[1].split()[0]) >= 32
    assert (stack_project / ".env").stat().st_mode & 0o077 == 0
    assert "appendonly yes" in (stack_project / "run" / "redis.conf").read_text()


def test_up_again_is_idempotent(stack_project):
    before = {name: row["pid"] for name, row in services(stack_project).items()}
    result = ragctl(stack_project, "up", "--runtime", "local", "--json")
    assert result.exit_code == 0, output(result)
    assert json.loads(result.stdout)["already_running"] is True
    assert {name: row["pid"] for name, row in services(stack_project).items()} == before


def test_health_checks_every_part_and_the_deep_canary(stack_project):
    result = ragctl(stack_project, "health", "--deep", "--json")
    assert result.exit_code == 0, output(result)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["healthy"] and report["runtime"] == "local"
    for name in ("service api", "service worker-1", "redis connection", "redis aof", "workers", "pending tasks",
                 "chroma", "api live", "api ready", "canary"):
        assert checks[name]["status"] == "ok", checks[name]
    assert len(checks["workers"]["data"]["workers"]) == 1
    assert report["probe"]["redis"]["aof_enabled"] is True
    # The canary was removed again.
    documents = ragctl(stack_project, "documents", "list", "--collection", "ragctl-canary", "--json")
    assert json.loads(documents.stdout) == []


def test_redis_refuses_a_client_without_the_password(stack_project, tmp_path):
    """Issue #14, the Redis row of docs/security.md: Redis runs with the project's generated password
    (requirepass in run/redis.conf, 0600); a client without it gets NOAUTH, while the services and the
    CLI, which get it in their REDIS_URL, work; nothing the CLI prints or the services log shows it."""
    import subprocess

    import redis

    from ragctl.project import read_dotenv
    from ragctl.runtime.local.facts import redis_ping
    from ragctl.runtime.ports import pick_free_port
    from tests.support.suite import SAMPLES

    password = read_dotenv(stack_project / ".env")["REDIS_PASSWORD"]
    assert len(password) >= 32
    port = services(stack_project)["redis"]["port"]
    # redis-py says NOAUTH (or, when it opens with HELLO, "HELLO must be called with the client already
    # authenticated"): an AuthenticationError either way.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, password="not-the-password", socket_timeout=5).ping()
    assert redis_ping(port).startswith(b"-NOAUTH")
    assert redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5).ping()
    run = stack_project / "run"
    assert f'requirepass "{password}"' in (run / "redis.conf").read_text()
    for path in (run, run / "redis.conf", run / "plan.json", run / "state.json", stack_project / ".env"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert password not in " ".join(json.loads((run / "plan.json").read_text())["services"][0]["argv"])

    # The stack works through the password: health, and an ingest through the API and a worker.
    health = ragctl(stack_project, "health", "--json")
    assert health.exit_code == 0 and json.loads(health.stdout)["healthy"], output(health)
    ingest = ragctl(stack_project, "ingest", str(SAMPLES / "deployment-notes.md"), "--json")
    assert ingest.exit_code == 0, output(ingest)
    report = json.loads(ingest.stdout)
    assert report["mode"] == "stack" and [r["status"] for r in report["results"]] == ["done"], report
    doctor = ragctl(stack_project, "doctor", "--json")
    found = {f["name"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert found["redis password"]["status"] == "ok" and found["redis auth"]["status"] == "ok", found

    # Nothing shows the password: status/ps/doctor/health, and the services' logs (Celery masks it).
    status = ragctl(stack_project, "status", "--json")
    assert json.loads(status.stdout)["redis_url"] == f"redis://:***@127.0.0.1:{port}/0"
    for result in (status, ragctl(stack_project, "status"), ragctl(stack_project, "ps", "--json"), health, ingest,
                   doctor):
        assert password not in output(result)
    for log in (stack_project / "logs").glob("*.log"):
        assert password not in log.read_text(errors="replace"), log

    # The probe doctor relies on tells an open Redis from a protected one (doctor's fault test is in
    # tests/unit/test_redis_auth.py).
    open_port = pick_free_port(set())
    server = subprocess.Popen(["redis-server", "--port", str(open_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        def answered():
            try:
                return redis_ping(open_port)
            except OSError:
                return None

        assert wait_until(answered, 10) == b"+PONG"
    finally:
        server.terminate()
        server.wait(10)


def test_chroma_refuses_a_client_without_the_token(stack_project):
    """Issue #14: the local Chroma answers only with CHROMA_TOKEN (stack/chroma_gate.py), and its own
    port lives in the gate's network namespace, where no other process of the host reaches it."""
    import chromadb

    from ragctl.project import read_dotenv

    token = read_dotenv(stack_project / ".env")["CHROMA_TOKEN"]
    assert len(token) >= 32
    port = services(stack_project)["chroma"]["port"]
    base = f"http://127.0.0.1:{port}/api/v2"
    for headers in ({}, {"X-Chroma-Token": "not-the-token"}, {"Authorization": "Bearer not-the-token"}):
        response = httpx.get(f"{base}/tenants/default_tenant/databases/default_database/collections",
                             headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"] == "Unauthorized", headers
    assert httpx.get(f"{base}/heartbeat", timeout=10).status_code == 401
    assert httpx.get(f"{base}/heartbeat", headers={"X-Chroma-Token": token}, timeout=10).status_code == 200
    assert httpx.get(f"{base}/heartbeat", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    settings = chromadb.Settings(anonymized_telemetry=False)
    with pytest.raises(Exception, match="Unauthorized"):
        chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings).list_collections()
    client = chromadb.HttpClient(host="127.0.0.1", port=port, headers={"X-Chroma-Token": token}, settings=settings)
    collection = client.get_or_create_collection("token-check")
    collection.add(ids=["a"], embeddings=[[0.1, 0.2, 0.3]], documents=["x"])
    assert collection.count() == 1
    client.delete_collection("token-check")

    # Chroma itself: a child of the gate, in another network namespace (when the kernel allows it;
    # doctor warns otherwise, and this test checks that it does).
    gate = json.loads((stack_project / "run" / "chroma-gate.json").read_text())
    assert gate["listen"] == f"127.0.0.1:{port}" and pid_alive(gate["chroma_pid"])
    own = os.readlink("/proc/self/ns/net")
    doctor = ragctl(stack_project, "doctor", "--json")
    found = {f["name"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert all(found[name]["group"] == "security" for name in ("chroma token", "store ports", "secret CHROMA_TOKEN"))
    assert found["store ports"]["status"] == "ok" and found["secret CHROMA_TOKEN"]["status"] == "ok", found
    if gate["isolated"]:
        assert os.readlink(f"/proc/{gate['chroma_pid']}/ns/net") != own
        assert found["chroma token"]["status"] == "ok", found["chroma token"]
    else:
        print(f"this kernel refused the gate a network namespace: {(stack_project / 'logs' / 'chroma.log').read_text()}")
        assert os.readlink(f"/proc/{gate['chroma_pid']}/ns/net") == own
        assert found["chroma token"]["status"] == "warn" and gate["inner"] in found["chroma token"]["detail"]

    # Never on a command line, never shown.
    assert token not in Path(f"/proc/{gate['gate_pid']}/cmdline").read_bytes().decode(errors="replace")
    assert token not in Path(f"/proc/{gate['chroma_pid']}/cmdline").read_bytes().decode(errors="replace")
    for result in (ragctl(stack_project, "status", "--json"), ragctl(stack_project, "ps", "--json"), doctor,
                   ragctl(stack_project, "doctor")):
        assert token not in output(result)
    for log in (stack_project / "logs").glob("*.log"):
        assert token not in log.read_text(errors="replace"), log

    # A restart (or a crash) of the gate takes its Chroma with it: no orphan holds the data folder.
    restarted = ragctl(stack_project, "restart", "chroma", "--json")
    assert restarted.exit_code == 0, output(restarted)
    assert wait_until(lambda: not pid_alive(gate["chroma_pid"]), 20), "the old Chroma outlived its gate"
    again = json.loads((stack_project / "run" / "chroma-gate.json").read_text())
    assert again["gate_pid"] != gate["gate_pid"] and pid_alive(again["chroma_pid"])
    assert wait_until(lambda: httpx.get(f"{base}/heartbeat", headers={"X-Chroma-Token": token},
                                        timeout=5).status_code == 200, 60)


def test_restart_gives_the_service_a_new_pid_and_keeps_the_others(stack_project):
    before = {name: row["pid"] for name, row in services(stack_project).items()}
    result = ragctl(stack_project, "restart", "worker-1", "--json")
    assert result.exit_code == 0, output(result)
    after = {name: row["pid"] for name, row in services(stack_project).items()}
    assert after["worker-1"] != before["worker-1"] and pid_alive(after["worker-1"])
    assert not pid_alive(before["worker-1"])
    assert {k: v for k, v in after.items() if k != "worker-1"} == {
        k: v for k, v in before.items() if k != "worker-1"}


def test_a_killed_service_is_restarted_by_the_supervisor(stack_project):
    before = services(stack_project)["api"]
    os.kill(before["pid"], signal.SIGKILL)

    def back():
        row = services(stack_project)["api"]
        return row if row["pid"] and row["pid"] != before["pid"] and row["state"] == "running" else None

    row = wait_until(back, 15)
    assert row, services(stack_project)
    assert row["restarts"] == before["restarts"] + 1 == 1
    api_url = read_state(stack_project).api_url
    assert wait_until(lambda: _health(api_url), 30), _logs(stack_project)


def _health(url: str) -> bool:
    try:
        return httpx.get(url + "/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_logs_show_the_service_output(stack_project):
    result = ragctl(stack_project, "logs", "api", "-n", "50")
    assert result.exit_code == 0
    assert "ragctl: starting api" in result.stdout
    assert ragctl(stack_project, "logs", "nosuch").exit_code == 1


def test_down_stops_everything_then_volumes_empty_data(stack_project):
    pids = our_pids(stack_project)
    assert len(pids) == 6
    result = ragctl(stack_project, "down", "--json")
    assert result.exit_code == 0, output(result)
    assert all(not pid_alive(pid) for pid in pids)
    assert read_state(stack_project) is None
    assert ragctl(stack_project, "ps", "--json").exit_code == 5
    assert json.loads(ragctl(stack_project, "status", "--json").stdout)["running"] is False
    assert any((stack_project / "data").iterdir())  # data kept by a plain down

    assert ragctl(stack_project, "down", "--volumes").exit_code == 6  # no TTY, no --yes
    assert any((stack_project / "data").iterdir())
    result = ragctl(stack_project, "down", "--volumes", "--yes", "--json")
    assert result.exit_code == 0, output(result)
    assert list((stack_project / "data").iterdir()) == []


# -- pre-flight ------------------------------------------------------------------------------
def test_a_taken_port_fails_preflight_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project = make_project(tmp_path / "proj", "")
        toml = project / "ragctl.toml"
        toml.write_text(toml.read_text().replace("api_port = 0", f"api_port = {port}"))
        try:
            result = ragctl(project, "up", "--runtime", "local", "--workers", "1")
        finally:
            LocalRuntime(project).down()
    assert result.exit_code == 4, output(result)
    text = " ".join(output(result).split())
    assert f"Port {port}" in text and "api_port" in text
    assert f"pid {os.getpid()}" in text  # who holds it
    assert read_state(project) is None and not our_pids(project)


def test_missing_redis_server_names_the_debian_package(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    project = make_project(tmp_path / "proj")
    try:
        result = ragctl(project, "up", "--runtime", "local")
    finally:
        LocalRuntime(project).down()
    assert result.exit_code == 4, output(result)
    assert "apt-get install redis-server" in " ".join(output(result).split())


def test_docker_runtime_fails_preflight_without_its_image(tmp_path):
    project = make_project(tmp_path / "proj", '\n[stack]\ntag = "no-such-tag"\napi_cpus = 1\nworker_cpus = 1\n')
    result = ragctl(project, "up", "--runtime", "docker", "--json")
    assert result.exit_code == 4, output(result)
    error = json.loads(result.stdout)["error"]
    if error["code"] == "engine_unavailable":  # no engine on this machine: that is the pre-flight failure
        assert "docker" in error["hint"]
    else:
        checks = {c["name"]: c for c in error["checks"]}
        assert checks["image"]["status"] == "fail" and "ragctl build" in checks["image"]["hint"]
    assert 'runtime = "docker"' not in (project / "ragctl.toml").read_text()  # recorded only once it is up


def test_only_our_processes_are_ever_signalled(tmp_path):
    project = make_project(tmp_path / "proj")
    (project / "run").mkdir()
    # A state file naming this test process (not a supervisor, not a service of ours).
    (project / "run" / "state.json").write_text(json.dumps({
        "supervisor_pid": os.getpid(), "project_root": str(project), "urls": {},
        "services": [{"name": "api", "pid": os.getpid(), "markers": ["uvicorn"], "group": 2}],
    }))
    assert read_state(project) is None
    assert not is_our_process(os.getpid(), ["uvicorn"])
    LocalRuntime(project).down()  # must not signal us
    assert pid_alive(os.getpid())
