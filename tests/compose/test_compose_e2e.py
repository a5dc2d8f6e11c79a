"""The Compose stack end to end on a real Docker engine, driven only through the ragctl CLI.

A base image is made locally (debootstrap + docker import: there is no registry here), the stack's
image is built from a wheelhouse (the closed-network path: the build contacts no package index),
then: up --wait, ingest HWP/HWPX and a scanned PDF (OCR in the worker) through Nginx, ask, a file
copied into the folder of the stack's [[sync]] service ingested by it, scale worker=3 api=2 (Celery reports 3
workers, Nginx spreads over both API replicas), restart the worker service while questions keep
coming (failures are counted: the goal is 0), pre-flight that names who holds a port, down (volumes
kept), down --volumes, bundle save/load.  Locally the suite skips with its reason when no engine
answers; under CI=true that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.conformance import check_runtime, runtime_of
from tests.support.docker_image import (
    IMAGE_TAG,
    free_port,
    ragctl,
    ragctl_json,
    set_stack,
)
from tests.support.suite import REPO, SAMPLES, corpus_path

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def stack(e2e_wheels, e2e_image):
    """A built and running Compose stack behind Nginx; removed (volumes too) at the end."""
    work = Path(tempfile.mkdtemp(prefix="ragctl-compose-"))
    root = work / f"ragctl-e2e-{os.getpid()}"
    ragctl("init", str(root), "--runtime", "docker", "--workers", "1", "--nginx", "--no-gpu", "--yes")
    # A 2-CPU CI machine: Docker refuses limits above the host's CPUs (pre-flight says so first).
    set_stack(root, tag=IMAGE_TAG, api_cpus=1, worker_cpus=1, worker_memory="3g", nginx_port=free_port(),
              nginx_http_port=free_port(), nginx_bind="127.0.0.1")
    # Unattended sync (issue #26): a folder kept the same as the collection "shared" by a sync service.
    share = work / "share"
    share.mkdir(mode=0o755)
    share.chmod(0o755)  # the services' user (10001) reads it
    with (root / "ragctl.toml").open("a", encoding="utf-8") as handle:
        handle.write(f'\n[[sync]]\npath = "{share}"\ncollection = "shared"\ninterval = "2s"\n')
    try:
        # The session's image: the same Dockerfile, so the layer cache answers.
        built, _ = ragctl_json("build", "--wheelhouse", str(e2e_wheels), root=root, timeout=2400)
        assert built["image"] == f"ragctl:{IMAGE_TAG}" and built["wheelhouse"] == str(e2e_wheels)
        started = time.monotonic()
        up, code = ragctl_json("up", "--wait", "600", root=root, timeout=900, check=False)
        assert code == 0, json.dumps(up, ensure_ascii=False, indent=1)[-6000:]
        print(f"up: {time.monotonic() - started:.0f} s")
        yield root
    finally:
        ragctl("down", "--volumes", "--yes", root=root, timeout=300, check=False)
        shutil.rmtree(work, ignore_errors=True)


def cert(root: Path):
    """An SSL context trusting the project's self-signed certificate: what clients of the HTTPS edge
    use (never verify=False)."""
    import ssl

    from ragctl.deploy import CERT_FILE

    return ssl.create_default_context(cafile=str(root / CERT_FILE))


def api_key(root: Path) -> str:
    from ragctl.project import read_dotenv

    return read_dotenv(root / ".env")["RAG_API_KEY"]


def test_up_reports_every_service_healthy_and_the_api_behind_nginx(stack):
    status, _ = ragctl_json("status", root=stack)
    assert status["running"] and status["runtime"] == "docker"
    port = [line for line in (stack / "ragctl.toml").read_text().splitlines() if line.startswith("nginx_port")]
    assert status["api_url"] == f"https://127.0.0.1:{port[0].split('=')[1].strip()}"
    services = {s["service"]: s for s in status["services"]}
    assert set(services) == {"redis", "chroma", "postgres", "api", "worker", "beat", "nginx", "sync-shared"}
    for name, service in services.items():
        assert service["ready"] and service["replicas"] == service["wanted"], (name, service)
    assert services["redis"]["containers"][0]["name"] == "rag-redis"
    # Only Nginx is published (on loopback here); Redis, Chroma and the API stay internal.
    published = {s["service"] for s in status["services"] for c in s["containers"] if c["ports"]}
    assert published == {"nginx"}
    # Every container carries the project label (state is read from Docker by that label).
    from ragctl.deploy import LABEL_KEY
    from ragctl.engine import engine

    labelled = engine().containers.list(filters={"label": f"{LABEL_KEY}={stack.name}"})  # running ones
    assert len(labelled) == sum(len(s["containers"]) for s in status["services"])


def test_the_compose_runtime_conforms(stack):
    """The runtime conformance suite (tests/support/conformance.py) on this module's stack, in seconds:
    without its restart check (a Compose restart waits for the service's healthcheck, more than 30 s
    on two cores; test_restart_worker_while_the_api_keeps_answering restarts a service under load)."""
    runtime = runtime_of(stack)
    assert runtime.kind == "docker"
    check_runtime(runtime, logs_of="api")


def test_every_service_runs_unprivileged_on_a_read_only_root(stack):
    """Issue #14: a non-root uid in every service, no capabilities, no privilege gain, a read-only
    root filesystem (writes only to its volumes and /tmp); the one-shot fix-owner alone starts as
    root, with CHOWN and DAC_READ_SEARCH only and no network."""
    from ragctl.deploy import LABEL_KEY, SERVICE_LABEL
    from ragctl.engine import engine

    containers = engine().containers.list(all=True, filters={"label": f"{LABEL_KEY}={stack.name}"})
    by_service = {}
    for container in containers:
        by_service.setdefault(container.labels[SERVICE_LABEL], []).append(container)
    assert set(by_service) == {"fix-owner", "redis", "chroma", "postgres", "api", "worker", "beat", "nginx",
                               "sync-shared"}, \
        set(by_service)
    for service, members in by_service.items():
        for container in members:
            config, host = container.attrs["Config"], container.attrs["HostConfig"]
            assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"], service
            assert host["ReadonlyRootfs"] is True, service
            if service == "fix-owner":
                added = sorted(cap.removeprefix("CAP_") for cap in host["CapAdd"])
                assert config["User"] == "0:0" and added == ["CHOWN", "DAC_READ_SEARCH"], (config["User"], added)
                assert host["NetworkMode"] == "none" and container.attrs["State"]["ExitCode"] == 0
                continue
            assert config["User"] == "10001:10001", (service, config["User"])
            assert not host.get("CapAdd"), service
            code, out = container.exec_run(["id", "-u"])
            assert code == 0 and out.decode().strip() == "10001", (service, out)
            code, out = container.exec_run(["sh", "-c", "echo x > /probe-root"])
            assert code != 0 and b"Read-only file system" in out, (service, out)
            code, out = container.exec_run(["sh", "-c", "echo x > /tmp/probe && rm /tmp/probe"])
            assert code == 0, (service, out)
    # The folders the services write belong to that uid (the project folder is root's here).
    assert (stack / "data").stat().st_uid == 10001 and (stack / "logs").stat().st_uid == 10001
    # Redis and Chroma sit on the internal data network only; nothing there is published.
    client = engine()
    assert client.networks.get(f"{stack.name}_rag-network").attrs["Internal"] is True
    assert client.networks.get(f"{stack.name}_rag-edge").attrs["Internal"] is False
    for service in ("redis", "chroma", "postgres", "worker", "beat"):
        for container in by_service[service]:
            assert set(container.attrs["NetworkSettings"]["Networks"]) == {f"{stack.name}_rag-network"}, service
            assert not any(container.attrs["NetworkSettings"]["Ports"].values()), service


def test_https_edge_with_the_projects_certificate_and_http_redirects(stack):
    """Issue #14: Nginx serves HTTPS with the project's self-signed certificate (key 0600), which the
    CLI trusts as its CA; the system's trust store refuses it; plain HTTP only redirects."""
    import ssl

    from ragctl.runtime.docker import DockerRuntime

    runtime = DockerRuntime(stack)
    url = runtime.api_url()
    assert url.startswith("https://127.0.0.1:") and isinstance(runtime.api_verify(), ssl.SSLContext)
    assert ((stack / "certs" / "tls.key").stat().st_mode & 0o777) == 0o600
    answer = httpx.get(f"{url}/api/health", timeout=10, verify=cert(stack))
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(f"{url}/api/health", timeout=10)  # the system's CAs do not know this certificate
    assert isinstance(refused.value.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
        refused.value)
    http_port = runtime.config.nginx_http_port
    redirect = httpx.get(f"http://127.0.0.1:{http_port}/api/health?x=1", timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{runtime.config.nginx_port}/api/health?x=1"
    # The CLI itself goes through the HTTPS edge, trusting only the project's certificate.
    report, code = ragctl_json("health", root=stack, timeout=300, check=False)
    assert code == 0 and report["api_url"] == url, report
    assert {c["name"]: c["status"] for c in report["checks"]}["api live"] == "ok"


def test_up_gives_root_written_files_to_the_services_user(stack):
    """Upgrade path: files an older, root-run stack left in data/ (a 0700 folder too) are handed to
    the services' uid by the one-shot fix-owner on the next ``up``; the stack stays healthy."""
    legacy = stack / "data" / "written-by-root"
    legacy.mkdir()
    (legacy / "old.txt").write_text("from a root container")
    legacy.chmod(0o700)
    os.chown(legacy, 0, 0)
    up, code = ragctl_json("up", "--wait", "300", root=stack, timeout=600, check=False)
    assert code == 0, up
    assert legacy.stat().st_uid == 10001 and (legacy / "old.txt").stat().st_uid == 10001
    from ragctl.runtime.docker import DockerRuntime

    script = "cat /app/project/data/written-by-root/old.txt && touch /app/project/data/written-by-root/new"
    code, out = DockerRuntime(stack).exec("worker", ["sh", "-c", script])
    assert code == 0 and "from a root container" in out, out


def test_redis_refuses_a_client_without_the_password(stack):
    """Issue #14, Redis row of docs/security.md: requirepass from .env (on stdin), clients authenticated."""
    from ragctl.project import read_dotenv
    from ragctl.runtime.docker import DockerRuntime

    runtime = DockerRuntime(stack)
    password = read_dotenv(stack / ".env")["REDIS_PASSWORD"]
    assert len(password) >= 32 and password not in (stack / "compose.yaml").read_text()
    assert password not in (stack / "redis.conf").read_text()
    _, out = runtime.exec("redis", ["redis-cli", "ping"])
    assert "NOAUTH" in out, out
    _, out = runtime.exec("redis", ["sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning ping'])
    assert out.strip() == "PONG", out
    # The services connect with it (the probe runs in a worker with the compose REDIS_URL).
    report, _ = ragctl_json("doctor", root=stack, timeout=300, check=False)
    findings = {f["name"]: f for f in report["findings"]}
    assert findings["redis connection"]["status"] == "ok" and findings["redis auth"]["status"] == "ok", findings
    assert password not in json.dumps(report)


#: Run in a container of the stack: Chroma's answer without the token, with a wrong one, and with it.
_CHROMA_ASKS = """
import os, urllib.error, urllib.request as u
def ask(headers):
    try:
        return u.urlopen(u.Request("http://chroma:8000/api/v2/heartbeat", headers=headers), timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
print(ask({}), ask({"X-Chroma-Token": "not-the-token"}), ask({"X-Chroma-Token": os.environ["CHROMA_TOKEN"]}))
"""
#: Run in the chroma container: the port `chroma run` itself listens on (from its command line).
_CHROMA_INNER = """
import pathlib
for cmd in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
    argv = cmd.read_bytes().split(b"\\0")
    if b"run" in argv and any(a.endswith(b"chroma") for a in argv[:2]):
        print(argv[argv.index(b"--host") + 1].decode(), argv[argv.index(b"--port") + 1].decode())
"""


def test_chroma_refuses_a_client_without_the_token(stack):
    """Issue #14, Chroma row of docs/security.md: the chroma service answers only with CHROMA_TOKEN;
    `chroma run` itself listens on the container's loopback, out of the network's reach."""
    from ragctl.project import read_dotenv
    from ragctl.runtime.docker import DockerRuntime

    runtime = DockerRuntime(stack)
    token = read_dotenv(stack / ".env")["CHROMA_TOKEN"]
    assert len(token) >= 32 and token not in (stack / "compose.yaml").read_text()
    code, out = runtime.exec("api", ["python", "-c", _CHROMA_ASKS])
    assert code == 0 and out.split() == ["401", "401", "200"], out
    code, out = runtime.exec("chroma", ["python", "-c", _CHROMA_INNER])
    host, port = out.split()
    assert code == 0 and host == "127.0.0.1" and port != "8000", out
    probe = f"import socket; s = socket.socket(); s.settimeout(5); print(s.connect_ex(('chroma', {int(port)})))"
    code, out = runtime.exec("api", ["python", "-c", probe])
    assert out.strip() not in ("", "0"), f"chroma:{port} is reachable from the api container: {out}"
    from ragctl.engine import engine

    chroma = engine().containers.get("rag-chroma")
    assert token not in " ".join(chroma.attrs["Config"]["Cmd"] or [])
    published = [b for b in (chroma.attrs["NetworkSettings"]["Ports"] or {}).values() if b]
    assert not published, f"chroma publishes {published} on the host"
    # The services connect with it; doctor's security group sees the gate and no published store.
    report, _ = ragctl_json("doctor", root=stack, timeout=300, check=False)
    findings = {f["name"]: f for f in report["findings"]}
    for name in ("chroma", "chroma token", "store ports", "secret CHROMA_TOKEN"):
        assert findings[name]["status"] == "ok", findings[name]
    assert findings["chroma token"]["group"] == "security" and token not in json.dumps(report)


def scanned_pdf(folder: Path) -> Path:
    """An image-only PDF of one short page (a scanned rule), for the image's tesseract to read."""
    from tests.support import scans
    from tests.support.suite import skip_or_fail

    reason = scans.font_missing()
    if reason:
        skip_or_fail(f"the scanned page needs a Korean font: {reason} (scripts/setup-test-host.sh)", "docker")
    page = scans.render_pages(["제7조(주차 지원) 본사 직원의 월 주차 지원금은 85,000원으로 한다."])[0]
    # Cropped to the text: tesseract's time grows with the page's area.
    return scans.save_scan([page.crop((0, 0, page.width, 600))], folder / "주차규정_스캔.pdf")


def test_ingest_hwp_through_nginx_and_ask(stack, tmp_path):
    files = [SAMPLES / "휴가_규정.hwpx", scanned_pdf(tmp_path)]
    corpus = corpus_path()
    if corpus is not None:
        files.append(corpus / "hwp" / "hwpjs" / "example.hwp")
    report, _ = ragctl_json("ingest", *map(str, files), root=stack, timeout=900)
    assert report["mode"] == "stack"
    assert [r["status"] for r in report["results"]] == ["done"] * len(files), report
    assert all(r["chunks"] > 0 for r in report["results"])
    answer, _ = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=stack, timeout=300)
    assert answer["sources"] and answer["sources"][0]["file"] == "휴가_규정.hwpx"
    assert "15" in answer["answer"]
    # The scan was read by the tesseract built into the image (issue #27), and its answer says so.
    answer, _ = ragctl_json("ask", "월 주차 지원금은 얼마인가요?", root=stack, timeout=300)
    assert "85,000원" in answer["answer"], answer
    assert (answer["sources"][0]["file"], answer["sources"][0]["location"]) == ("주차규정_스캔.pdf", "p. 1 (OCR)")
    # The requests went through Nginx: its access log has the upload and the question.
    access = "\n".join(ragctl("logs", "nginx", "--lines", "200", root=stack).stdout.splitlines())
    assert "POST /api/documents" in access and "/api/ask" in access


def test_the_sync_service_picks_up_a_file_copied_into_its_folder(stack):
    """Issue #26: the stack's sync service (ragctl.toml [[sync]]: the folder share/, collection
    shared, every 2 s) ingests a file copied into the folder, with its own key: an editor of shared."""
    share = stack.parent / "share"
    status, _ = ragctl_json("status", root=stack)
    assert {s["service"]: s["ready"] for s in status["services"]}["sync-shared"]
    (share / "rules").mkdir(mode=0o755)
    (share / "rules").chmod(0o755)
    copied = share / "rules" / "휴가_규정.hwpx"
    shutil.copyfile(SAMPLES / "휴가_규정.hwpx", copied)
    copied.chmod(0o644)
    deadline = time.monotonic() + 300
    while True:
        documents, _ = ragctl_json("documents", "list", "--collection", "shared", root=stack)
        if [(d["file_name"], d["status"]) for d in documents] == [("rules/휴가_규정.hwpx", "done")]:
            break
        assert time.monotonic() < deadline, (documents, ragctl("logs", "sync-shared", "--lines", "40", root=stack).stdout)
        time.sleep(2)
    keys, _ = ragctl_json("keys", "list", root=stack)
    key = next(k for k in keys if k["name"] == "sync-shared")
    assert (key["role"], key["collections"], key["active"]) == ("editor", ["shared"], True)
    hits, _ = ragctl_json("search", "연차 휴가", "--collection", "shared", root=stack)
    assert hits["hits"][0]["file"] == "rules/휴가_규정.hwpx"


def test_scale_workers_and_api_live(stack):
    from ragctl.runtime.docker import DockerRuntime

    scaled, _ = ragctl_json("scale", "worker=3", "api=2", root=stack, timeout=900)
    assert {s["service"]: s["replicas"] for s in scaled} == {"worker": 3, "api": 2}
    assert 'workers = 3' in (stack / "ragctl.toml").read_text()
    runtime = DockerRuntime(stack)
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and len(workers) < 3:
        workers = runtime.celery_workers()
        time.sleep(2)
    assert len(workers) == 3, workers
    # Nginx balances over both API replicas (each names itself in /api/health).
    url = runtime.api_url()
    instances = {httpx.get(f"{url}/api/health", timeout=10, verify=cert(stack)).json()["instance"] for _ in range(20)}
    assert len(instances) == 2, instances


def test_restart_worker_while_the_api_keeps_answering(stack):
    from ragctl.runtime.docker import DockerRuntime

    url = DockerRuntime(stack).api_url()
    headers = {"Authorization": f"Bearer {api_key(stack)}"}
    stop, outcomes = threading.Event(), []  # (when it was answered, status or error)

    def ask_forever() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30, verify=cert(stack)) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/ask", json={"question": "연차 휴가는 며칠인가요?"})
                    outcomes.append((time.monotonic(), response.status_code))
                except httpx.HTTPError as exc:
                    outcomes.append((time.monotonic(), repr(exc)))
                time.sleep(0.05)

    asker = threading.Thread(target=ask_forever, daemon=True)
    asker.start()
    try:
        time.sleep(2)
        started = time.monotonic()
        restarted, _ = ragctl_json("restart", "worker", root=stack, timeout=600)
        ended = time.monotonic()
        time.sleep(2)
    finally:
        stop.set()
        asker.join(60)
    assert restarted[0]["service"] == "worker" and restarted[0]["replicas"] == 3
    failures = [outcome for _, outcome in outcomes if outcome != 200]
    during = [outcome for at, outcome in outcomes if started <= at <= ended]
    print(f"\nrestart worker: {len(outcomes)} questions, {len(during)} answered during the "
          f"{ended - started:.0f} s restart, {len(failures)} failed")
    # Answered while the workers restarted, every time: how many depends on the machine's load
    # (each answer is a search and an embedding on a shared CPU), so only "some" is asserted.
    assert len(during) >= 3 and failures == []


def test_health_deep_on_the_docker_stack(stack):
    report, code = ragctl_json("health", "--deep", root=stack, timeout=600, check=False)
    assert code == 0, json.dumps(report, ensure_ascii=False)[-4000:]
    checks = {c["name"]: c for c in report["checks"]}
    assert report["runtime"] == "docker" and report["probe"]["probed_in"] == "worker"
    assert len(checks["workers"]["data"]["workers"]) == 3
    assert checks["service nginx"]["status"] == "ok" and checks["canary"]["status"] == "ok"
    assert checks["chroma"]["data"]["collections"]["default"]["count"] > 0
    assert checks["gpu in worker"]["detail"].endswith("(CPU stack)")


def test_backup_and_restore_into_a_wiped_docker_deployment(stack, tmp_path):
    before = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=stack, timeout=300)[0]
    ids_before = sorted(d["id"] for d in ragctl_json("documents", "list", root=stack)[0])
    archive = tmp_path / "backup.tar.gz"
    made, _ = ragctl_json("backup", "--out", str(archive), root=stack, timeout=900)
    assert made["runtime"] == "docker" and made["vectors"]["default"] > 0
    ragctl("down", "--volumes", "--yes", root=stack, timeout=300)
    import shutil

    shutil.rmtree(stack / "data")
    restored, _ = ragctl_json("restore", str(archive), "--yes", root=stack, timeout=1200)
    assert restored["verified"] and restored["started"], restored
    assert sorted(d["id"] for d in ragctl_json("documents", "list", root=stack)[0]) == ids_before
    after = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=stack, timeout=300)[0]
    assert after["answer"] == before["answer"]


def test_doctor_finds_a_stopped_redis_and_fixes_it(stack):
    from ragctl.engine import engine

    healthy, code = ragctl_json("doctor", root=stack, timeout=300, check=False)
    assert code == 0, [f for f in healthy["findings"] if f["status"] == "fail"]
    engine().containers.get("rag-redis").stop(timeout=10)
    report, code = ragctl_json("doctor", root=stack, timeout=300, check=False)
    findings = {f["name"]: f for f in report["findings"]}
    assert code == 3 and findings["service redis"]["status"] == "fail"
    assert findings["redis connection"]["cause"] == "the redis service is down"
    fixed, code = ragctl_json("doctor", "--fix", "--yes", root=stack, timeout=600, check=False)
    assert "restart redis" in fixed["applied"], fixed
    assert code == 0, [f for f in fixed["findings"] if f["status"] == "fail"]


def test_doctor_tells_a_wrong_redis_url_from_a_network_fault(stack):
    from ragctl.deploy import SERVICE_LABEL
    from ragctl.engine import compose, engine
    from ragctl.project import read_dotenv
    from ragctl.runtime.docker import DockerRuntime

    runtime = DockerRuntime(stack)
    compose_file = stack / "compose.yaml"
    rendered = compose_file.read_text()
    # The worker's own environment block is the second REDIS_URL line (the first is the API's anchor);
    # each is redis://:${REDIS_PASSWORD…}@redis:6379/0.
    first = rendered.index("REDIS_URL: redis://:")
    second = rendered.index("REDIS_URL: redis://:", first + 1)
    target = rendered.index("@redis:6379/0", second)
    compose_file.write_text(rendered[:target] + "@redis-typo:6379/0" + rendered[target + len("@redis:6379/0"):])
    try:
        compose(stack, ["up", "-d", "--no-deps", "worker"], profiles=runtime.profiles, timeout_s=300)
        report, code = ragctl_json("doctor", root=stack, timeout=300, check=False)
        redis = {f["name"]: f for f in report["findings"]}["redis connection"]
        assert code == 3 and "redis-typo" in redis["cause"] and "worker container" in redis["cause"]
        # The cause names the URL, never its password.
        assert read_dotenv(stack / ".env")["REDIS_PASSWORD"] not in json.dumps(report)
    finally:
        ragctl("up", "--wait", "300", root=stack, timeout=600)  # re-renders compose.yaml, recreates the workers
    client = engine()
    network = client.networks.get(f"{stack.name}_rag-network")
    workers = [c for c in runtime.containers(client) if c.labels.get(SERVICE_LABEL) == "worker"]
    for container in workers:
        network.disconnect(container)
    try:
        report, code = ragctl_json("doctor", root=stack, timeout=300, check=False)
        redis = {f["name"]: f for f in report["findings"]}["redis connection"]
        assert code == 3 and "not on the same network" in redis["cause"]
    finally:
        for container in workers:
            network.connect(container)


def test_doctor_names_a_worker_killed_for_memory(stack):
    from ragctl.deploy import SERVICE_LABEL
    from ragctl.engine import engine
    from ragctl.project import set_config_value
    from ragctl.runtime.docker import DockerRuntime

    set_config_value(stack, "stack", "worker_memory", "120m")  # the embedding model alone needs more
    try:
        starved, code = ragctl_json("up", "worker", "--wait", "45", root=stack, timeout=300, check=False)
        # The worker may pass its healthcheck before its warm-up loads the model (then up says ready,
        # exit 0) or be killed first (exit 3, the worker failing): either way it is killed for memory.
        assert code in (0, 3), starved
        if code == 3:
            assert "worker" in starved["error"]["failing"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            states = [c.attrs["State"] for c in DockerRuntime(stack).containers(engine(timeout_s=60))
                      if c.labels.get(SERVICE_LABEL) == "worker"]
            if any(state.get("OOMKilled") or state.get("ExitCode") == 137 for state in states):
                break
            time.sleep(2)
        report, _ = ragctl_json("doctor", root=stack, timeout=300, check=False)
        oom = [f for f in report["findings"] if f["name"].startswith("oom ")]
        assert oom and "killed for memory" in oom[0]["cause"] and "worker_memory" in oom[0]["hint"]
    finally:
        set_config_value(stack, "stack", "worker_memory", "3g")
        ragctl("up", "--wait", "300", root=stack, timeout=600)


def test_preflight_names_the_port_holder_and_never_touches_other_stacks(stack, tmp_path):
    other = tmp_path / "other"
    ragctl("init", str(other), "--runtime", "docker", "--workers", "1", "--no-nginx", "--no-gpu", "--yes")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        set_stack(other, tag=IMAGE_TAG, api_cpus=1, worker_cpus=1, worker_memory="3g", api_port=port,
                  api_bind="127.0.0.1")
        refused, code = ragctl_json("up", root=other, check=False)
    assert code == 4, refused
    checks = {c["name"]: c for c in refused["error"]["checks"]}
    assert checks[f"port {port}"]["status"] == "fail"
    assert f"pid {os.getpid()}" in checks[f"port {port}"]["detail"]
    # The running e2e stack owns rag-redis: another project is refused, and the stack is untouched.
    assert checks["name rag-redis"]["status"] == "fail" and stack.name in checks["name rag-redis"]["detail"]
    status, _ = ragctl_json("status", root=stack)
    assert all(s["ready"] for s in status["services"])


def test_down_keeps_volumes_and_down_volumes_asks(stack):
    from ragctl.deploy import LABEL_KEY
    from ragctl.engine import engine

    down, _ = ragctl_json("down", root=stack, timeout=300)
    assert any(name == "rag-redis" for name in down["stopped"])
    client = engine()
    assert client.containers.list(all=True, filters={"label": f"{LABEL_KEY}={stack.name}"}) == []
    volumes = client.volumes.list(filters={"label": f"{LABEL_KEY}={stack.name}"})
    assert {v.name for v in volumes} == {f"{stack.name}_redis_data", f"{stack.name}_chroma_data",
                                         f"{stack.name}_postgres_data"}
    not_running, code = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=stack, check=False)
    assert code == 5 and not_running["error"]["code"] == "not_running"
    _, code = ragctl_json("down", "--volumes", root=stack, check=False)
    assert code == 6  # no terminal to ask on, and no --yes
    ragctl("down", "--volumes", "--yes", root=stack, timeout=300)
    assert client.volumes.list(filters={"label": f"{LABEL_KEY}={stack.name}"}) == []


def test_migrate_from_the_single_container_layout(stack, tmp_path):
    """A legacy container built from this project's code (one process: ingest, store, answer) over
    host data/ and logs/; migrate, rollback, migrate again (resuming), finalize."""
    from ragctl.engine import engine

    client = engine()
    legacy = tmp_path / f"legacy-{os.getpid()}"
    ragctl("init", str(legacy), "--yes")
    (legacy / "logs").mkdir(exist_ok=True)
    port = free_port()
    name = f"legacy-rag-{os.getpid()}"
    container = client.containers.run(
        # user 0: the legacy layout ran as root (the image's default user is the unprivileged ragctl).
        f"ragctl:{IMAGE_TAG}", ["python", "/app/tests/legacy_app.py", "/samples"], name=name, detach=True, user="0",
        environment={"RAG_PROJECT_ROOT": "/app/project"}, ports={"8000/tcp": ("127.0.0.1", port)},
        volumes={str(legacy / "data"): {"bind": "/app/project/data", "mode": "rw"},
                 str(legacy / "logs"): {"bind": "/app/project/logs", "mode": "rw"},
                 str(legacy / "ragctl.toml"): {"bind": "/app/project/ragctl.toml", "mode": "ro"},
                 str(REPO / "tests"): {"bind": "/app/tests", "mode": "ro"},
                 str(SAMPLES): {"bind": "/samples", "mode": "ro"}})
    try:
        def legacy_answer():
            return httpx.get(f"http://127.0.0.1:{port}/ask", params={"q": "연차 휴가는 며칠인가요?"},
                             timeout=30).json()["answer"]

        deadline = time.monotonic() + 300
        while True:
            try:
                before = legacy_answer()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, container.logs().decode()[-3000:]
                time.sleep(2)
        assert "15일" in before
        set_stack(legacy, tag="missing-tag", api_cpus=1, worker_cpus=1, worker_memory="3g", workers=1,
                  nginx=True, nginx_port=free_port(), nginx_bind="127.0.0.1")

        planned, _ = ragctl_json("migrate", "--dry-run", root=legacy)
        assert planned["legacy"] == [name]
        assert [s["step"] for s in planned["steps"] if s["risky"]] == ["stop", "restore"]
        assert client.containers.get(name).status == "running"  # a dry run changes nothing

        # Interrupted: the image is missing; the ledger keeps the finished steps.
        stopped_early, code = ragctl_json("migrate", "--yes", root=legacy, timeout=900, check=False)
        assert code == 1 and "not on this engine" in stopped_early["error"]["message"]
        ledger = json.loads((legacy / "run" / "migrate.json").read_text())
        assert ledger["done"] == ["inventory", "stop", "backup", "configure"]
        assert client.containers.get(name).status == "exited"
        set_stack(legacy, tag=IMAGE_TAG)
        migrated, _ = ragctl_json("migrate", "--yes", root=legacy, timeout=1800)  # resumes at "image"
        assert migrated["state"] == "migrated" and migrated["steps"]["verify"]["vectors"] == ledger["before"]["vectors"]
        assert client.containers.get(name).status == "exited"  # stopped, not removed
        answer, _ = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=legacy, timeout=300)
        assert answer["answer"] == before

        rolled, _ = ragctl_json("migrate", "--rollback", "--yes", root=legacy, timeout=900)
        assert rolled["state"] == "rolled_back"
        assert client.containers.get(name).status == "running"
        deadline = time.monotonic() + 300
        while True:
            try:
                assert legacy_answer() == before
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(2)

        # Gated (issue #28): the set is asked of the old layout's data, then of the stack; the answers held.
        questions = tmp_path / "gate.jsonl"
        questions.write_text(json.dumps({"question": "연차 휴가는 며칠인가요?", "answer": "15일", "file": "휴가_규정.hwpx"},
                                        ensure_ascii=False) + "\n", encoding="utf-8")
        again, _ = ragctl_json("migrate", "--yes", "--eval", str(questions), root=legacy, timeout=1800)
        assert again["state"] == "migrated" and again["gate"]["passed"] and "eval_before" not in again, again
        final, _ = ragctl_json("migrate", "--finalize", "--yes", root=legacy, timeout=300)
        assert final["removed"] == [name]
        assert not [c for c in client.containers.list(all=True) if c.name == name]
    finally:
        ragctl("down", "--volumes", "--yes", root=legacy, timeout=300, check=False)
        for leftover in client.containers.list(all=True, filters={"name": name}):
            leftover.remove(force=True)


def sqlite_contents(data: Path) -> dict[str, list[str]]:
    """Every SQLite file under ``data`` as SQL statements (what it holds, WAL included), without the
    AUTOINCREMENT counters (the running stack's catalog upserts move them without changing a row)."""
    import sqlite3
    from contextlib import closing

    contents = {}
    for path in sorted(data.rglob("*.sqlite")):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            contents[str(path.relative_to(data))] = [line for line in db.iterdump() if "sqlite_sequence" not in line]
    return contents


def test_upgrade_moves_a_sqlite_stack_into_postgres_in_place(stack, tmp_path):
    """A Compose stack from before PostgreSQL (database = "sqlite": its state in data/) is upgraded in
    place: documents, answers and API keys are the same after; a second upgrade into a database that
    already holds state is refused and rolled back (the stack answers on SQLite again), and
    --replace then moves it."""
    from ragctl.deploy import LABEL_KEY, load_deploy_config
    from ragctl.engine import engine

    client = engine()
    old = tmp_path / f"pre-pg-{os.getpid()}"
    ragctl("init", str(old), "--runtime", "docker", "--workers", "1", "--no-gpu", "--yes")
    set_stack(old, tag=IMAGE_TAG, database="sqlite", api_cpus=1, worker_cpus=1, worker_memory="3g",
              api_port=free_port(), api_bind="127.0.0.1")
    try:
        ragctl("up", "--wait", "600", root=old, timeout=900)
        assert "rag-postgres" not in {c.name for c in client.containers.list()}
        files = [SAMPLES / "휴가_규정.hwpx", SAMPLES / "expense-policy.docx"]
        report, _ = ragctl_json("ingest", *map(str, files), root=old, timeout=900)
        assert [r["status"] for r in report["results"]] == ["done", "done"], report
        assert (old / "data" / "catalog.sqlite").is_file()
        key, _ = ragctl_json("keys", "create", "--role", "ask", "--name", "reader", root=old)
        ids = sorted(d["id"] for d in ragctl_json("documents", "list", root=old)[0])
        before = ragctl_json("ask", "연차 휴가는 며칠인가요?", root=old, timeout=300)[0]["answer"]
        sqlite_rows = sqlite_contents(old / "data")

        # Gated (issue #28): the set is asked before and once the stack runs on PostgreSQL; the answers held.
        questions = tmp_path / "gate.jsonl"
        questions.write_text(json.dumps({"question": "연차 휴가는 며칠인가요?", "answer": "15일", "file": "휴가_규정.hwpx"},
                                        ensure_ascii=False) + "\n", encoding="utf-8")
        upgraded, _ = ragctl_json("upgrade", "--yes", "--eval", str(questions), root=old, timeout=1800)
        assert upgraded["upgraded"] and upgraded["documents"] == 2 and upgraded["running"], upgraded
        assert upgraded["applied"] and upgraded["gate"]["passed"] and upgraded["gate"]["after"], upgraded
        assert upgraded["move"]["verified"] and upgraded["move"]["keys"] == 1
        assert load_deploy_config(old).database == "postgres"
        assert client.containers.get("rag-postgres").status == "running"
        assert sorted(d["id"] for d in ragctl_json("documents", "list", root=old)[0]) == ids
        assert ragctl_json("ask", "연차 휴가는 며칠인가요?", root=old, timeout=300)[0]["answer"] == before
        url = ragctl_json("status", root=old)[0]["api_url"]
        asked = httpx.post(f"{url}/api/search", json={"query": "연차 휴가"}, timeout=60, verify=cert(old),
                           headers={"Authorization": f"Bearer {key['key']}"})
        assert asked.status_code == 200 and asked.json()["hits"], asked.text[:500]
        # The SQLite files were only read (their bytes change when the stopping stack checkpoints its WAL).
        assert sqlite_contents(old / "data") == sqlite_rows
        again, _ = ragctl_json("upgrade", "--yes", root=old)
        assert again["upgraded"] is False and "already" in again["reason"]

        # Back on SQLite by hand, then upgraded again: the database holds the first move's state.
        set_stack(old, database="sqlite")
        ragctl("up", "--wait", "600", root=old, timeout=900)
        refused, code = ragctl_json("upgrade", "--yes", root=old, timeout=1800, check=False)
        assert code != 0 and refused["error"]["code"] == "upgrade_failed", refused
        assert "rolled back" in refused["error"]["message"] and "--replace" in refused["error"]["hint"]
        assert load_deploy_config(old).database == "sqlite"
        assert "rag-postgres" not in {c.name for c in client.containers.list(all=True)}
        assert client.volumes.list(filters={"name": f"{old.name}_postgres_data", "label": f"{LABEL_KEY}={old.name}"})
        assert ragctl_json("ask", "연차 휴가는 며칠인가요?", root=old, timeout=300)[0]["answer"] == before

        replaced, _ = ragctl_json("upgrade", "--replace", "--yes", root=old, timeout=1800)
        assert replaced["upgraded"] and replaced["documents"] == 2
        assert sorted(d["id"] for d in ragctl_json("documents", "list", root=old)[0]) == ids
    finally:
        ragctl("down", "--volumes", "--yes", root=old, timeout=300, check=False)


def test_bundle_save_and_load_round_trip(stack, tmp_path):
    from ragctl.engine import engine

    bundle = tmp_path / "ragctl-images.tar"
    saved, _ = ragctl_json("bundle", "save", str(bundle), root=stack, timeout=1200)
    image = f"ragctl:{IMAGE_TAG}"
    assert [i["name"] for i in saved["images"]] == [image] and bundle.stat().st_size > 100e6
    client = engine(timeout_s=300)  # removing a 2 GB image on a busy disk takes longer than the default 30 s
    recorded = saved["images"][0]["id"]
    client.images.remove(image)
    loaded, _ = ragctl_json("bundle", "load", str(bundle), root=stack, timeout=1200)
    assert loaded["verified"] and client.images.get(image).id == recorded
    broken = tmp_path / "not-a-bundle.tar"
    broken.write_bytes(b"x" * 1024)
    refused, code = ragctl_json("bundle", "load", str(broken), root=stack, check=False)
    assert code == 1 and "not a ragctl bundle" in refused["error"]["message"]
