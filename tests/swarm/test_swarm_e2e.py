"""The swarm runtime end to end on a real three-engine Docker Swarm (issue #12), driven through the
ragctl CLI with ``DOCKER_HOST`` at the manager's engine (tests/support/swarm_cluster.py builds the cluster:
three engines in their own network, PID, mount and UTS namespaces, joined over a bridge).

n1 is the manager and the data node (Postgres, Redis, Chroma); the workers run on n2 and n3 only.
50 real documents go in through Nginx and the API; n3 loses power mid-ingest (its engine, containerd
and containers SIGKILLed at once) and every document still ends as a clean run ends it (status and
chunk count, from an embedded ingest of the same files), with exactly as many vectors in Chroma and
chunks in the Postgres postings as the documents hold.  Then: doctor across the nodes (a node holding
another build under the image's tag, a node down), scale workers 2 → 4 → 1 live, restart the API under
a question load with zero failed questions.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from tests.support.conformance import check_runtime, runtime_of
from tests.support.docker_image import IMAGE, IMAGE_TAG, ragctl, ragctl_json, set_stack
from tests.support.suite import corpus_documents
from tests.support.swarm_cluster import swarm_cluster  # noqa: F401 - the module's cluster fixture

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]
DOCUMENTS = 50
NGINX_PORT = 8443
POSTINGS_COUNT = ("import json; from stack.settings import service_settings; "
                  "from stack.pipeline.backends import open_lexical; "
                  "index = open_lexical(service_settings(), 'default'); "
                  "print(json.dumps({'chunks': index.count(), 'documents': len(index.document_ids())}))")


@pytest.fixture(scope="module")
def deployed(swarm_cluster, e2e_image, tmp_path_factory):  # noqa: F811 - the fixture above
    cluster = swarm_cluster
    loaded = cluster.load_image(IMAGE)
    print(f"\nimage loaded on the nodes in {max(loaded.values()):.0f} s")
    env = cluster.env("n1")
    root = tmp_path_factory.mktemp("swarm") / "ragctl-swarm"
    ragctl("init", str(root), "--runtime", "swarm", "--workers", "2", "--no-gpu", "--yes", env=env)
    # This kernel has no ESP: an encrypted overlay would carry nothing (tests/support/swarm_cluster.py).
    # Two API replicas (on two nodes): losing a node loses no API.
    set_stack(root, tag=IMAGE_TAG, api_replicas=2, api_cpus=1, worker_cpus=1, worker_memory="3g",
              nginx_port=NGINX_PORT, nginx_http_port=0, swarm_encrypted=False)
    labelled, _ = ragctl_json("nodes", "label", "n1", "data=true", root=root, env=env)
    assert labelled["data"] is True
    started = time.monotonic()
    up, code = ragctl_json("up", "--wait", "900", root=root, timeout=1200, check=False, env=env)
    assert code == 0, json.dumps(up, ensure_ascii=False, indent=1)[-6000:]
    print(f"up on 3 nodes: {time.monotonic() - started:.0f} s")
    try:
        yield cluster, root, env
    finally:
        ragctl("down", "--volumes", "--yes", root=root, timeout=600, check=False, env=env)


def ps(root: Path, env) -> dict[str, dict]:
    rows, _ = ragctl_json("ps", root=root, env=env)
    return {row["service"]: row for row in rows}


def test_data_services_on_the_data_node_and_workers_elsewhere(deployed):
    _, root, env = deployed
    services = ps(root, env)
    for name in ("postgres", "redis", "chroma"):
        assert services[name]["nodes"] == ["n1"], services[name]
    assert services["worker"]["replicas"] == 2 and set(services["worker"]["nodes"]) == {"n2", "n3"}
    assert services["nginx"]["replicas"] == 3  # one on every node
    nodes, _ = ragctl_json("nodes", "list", root=root, env=env)
    by_name = {n["hostname"]: n for n in nodes}
    assert by_name["n1"]["role"] == "manager" and by_name["n1"]["data"] is True
    assert by_name["n2"]["replicas"].get("worker") == 1 and by_name["n3"]["replicas"].get("worker") == 1
    joined, _ = ragctl_json("nodes", "join-command", root=root, env=env)
    assert joined["command"].startswith("docker swarm join --token SWMTKN-")


def test_the_swarm_runtime_conforms(deployed, monkeypatch):
    """The runtime conformance suite (tests/support/conformance.py) on the deployed cluster, in seconds:
    without its restart check (a swarm restart is a rolling update, a minute here;
    test_restart_the_api_under_questions_drops_none restarts the API under load)."""
    _, root, env = deployed
    monkeypatch.setenv("DOCKER_HOST", env["DOCKER_HOST"])
    for name in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    runtime = runtime_of(root)
    assert runtime.kind == "swarm"
    check_runtime(runtime, logs_of="api")


def reference_counts(tmp_path: Path, documents: list[Path]) -> dict[str, tuple[str, int]]:
    """file name → (status, chunks) of a clean embedded ingest of the same files."""
    root = tmp_path / "reference"
    ragctl("init", str(root), "--yes")
    folder = tmp_path / "reference-docs"
    folder.mkdir()
    for path in documents:
        (folder / path.name).symlink_to(path)
    ragctl("ingest", str(folder), "--json", root=root, timeout=1800, check=False)
    records, _ = ragctl_json("documents", "list", root=root)
    return {r["file_name"]: (r["status"], r["chunks"]) for r in records}


def test_ingest_through_both_worker_nodes_survives_a_node_lost_mid_ingest(deployed, tmp_path):
    cluster, root, env = deployed
    documents = corpus_documents(DOCUMENTS, suite="swarm")
    reference = reference_counts(tmp_path, documents)
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in documents:
        (folder / path.name).symlink_to(path)
    ragctl_json("ingest", str(folder), "--no-wait", root=root, timeout=900, env=env, check=False)
    # n3 loses power once both worker nodes hold documents.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        tasks, _ = ragctl_json("tasks", "list", "--limit", "200", root=root, env=env)
        workers = {t.get("worker") or "" for t in tasks
                   if t.get("status") not in ("queued", "done", "failed", "cancelled")}
        if any("n2" in w for w in workers) and any("n3" in w for w in workers):
            break
        time.sleep(2)
    else:
        pytest.fail(f"the documents never reached both worker nodes: {sorted(workers)}")
    killed_at = time.monotonic()
    cluster.kill_node("n3")
    assert cluster.node_processes("n3") == []
    try:
        # Every document ends, re-queued by the reaper when its worker's liveness key expires.
        deadline, refused, records = time.monotonic() + 1200, [], []
        while time.monotonic() < deadline:
            answer, code = ragctl_json("documents", "list", root=root, env=env, check=False)
            if code != 0:  # counted: the API must keep answering through the other replica
                refused.append(answer)
            elif len(answer) == len(reference) and all(r["status"] in ("done", "failed") for r in answer):
                records = answer
                break
            time.sleep(5)
        assert refused == [], refused[:3]
        print(f"all {len(records)} documents ended {time.monotonic() - killed_at:.0f} s after n3 went down")
        got = {r["file_name"]: (r["status"], r["chunks"]) for r in records}
        assert got == reference
        logs = [" ".join(ragctl_json("documents", "show", r["id"], root=root, env=env)[0]["log"]) for r in records]
        assert any("worker@n2" in log for log in logs) and any("worker@n3" in log for log in logs)
        assert any("re-queued" in log for log in logs), "no document was re-queued after n3 was lost"
        # No duplicate anywhere: Chroma holds exactly the documents' chunks, and so do the Postgres postings
        # (both counted from inside the stack, by a one-shot job on its network).
        total = sum(chunks for _, chunks in got.values())
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOCKER_HOST", env["DOCKER_HOST"])
            from ragctl.runtime.swarm import SwarmRuntime

            runtime = SwarmRuntime(root)
            assert runtime.vector_counts() == {"default": total}
            code, output = runtime.job(["python", "-c", POSTINGS_COUNT])
            assert code == 0, output[-2000:]
            assert json.loads(output.strip().splitlines()[-1]) == {"chunks": total, "documents": len(
                [1 for status, chunks in got.values() if chunks])}
    finally:  # the later tests need all three nodes, whatever this one found
        cluster.start_node("n3")


def image_rows(root: Path, env) -> tuple[dict[str, dict], int]:
    """doctor's ``image on NODE`` rows (waiting, once, for a node that has just rejoined to answer)."""
    for attempt in range(2):
        report, code = ragctl_json("doctor", root=root, env=env, timeout=600, check=False)
        rows = {f["name"]: f for f in report["findings"] if f["name"].startswith("image on ")}
        if len(rows) == 3 or attempt:
            return rows, code
        time.sleep(15)
    raise AssertionError("unreachable")


def test_doctor_finds_a_node_holding_another_build_under_the_tag(deployed):
    """Without a registry the swarm names the image by its tag only; doctor reads the build id that
    ragctl build baked into it on every node.  A node whose tag names another image fails, by name."""
    cluster, root, env = deployed
    inspect = ["image", "inspect", "--format"]
    built = cluster.docker("n1", *inspect, '{{index .Config.Labels "io.ragctl.build"}}', IMAGE).stdout.strip()
    assert len(built) == 64, built
    rows, _ = image_rows(root, env)
    assert set(rows) == {"image on n1", "image on n2", "image on n3"}, rows
    for row in rows.values():
        assert row["status"] == "ok" and row["data"]["build"] == built and built[:12] in row["detail"], row
    # On n2 only: the same name:tag for another image (FROM the real one, another RAGCTL_BUILD_ID).
    original = cluster.docker("n2", *inspect, "{{.Id}}", IMAGE).stdout.strip()
    made = subprocess.run(["docker", "build", "--quiet", "--tag", IMAGE, "-"], capture_output=True, text=True,
                          input=f"FROM {IMAGE}\nENV RAGCTL_BUILD_ID=different\n", timeout=300, check=False,
                          env={**cluster.env("n2"), "DOCKER_BUILDKIT": "0"})
    other = made.stdout.strip().splitlines()[-1] if made.stdout.strip() else ""
    try:
        assert made.returncode == 0 and other.startswith("sha256:") and other != original, made.stderr[-2000:]
        rows, code = image_rows(root, env)
        print(f"\nimage on n2: {rows['image on n2']['detail']}")
        assert code != 0 and rows["image on n2"]["status"] == "fail", rows
        assert "n2" in rows["image on n2"]["detail"] and "different" in rows["image on n2"]["detail"]
        assert built[:12] in rows["image on n2"]["detail"] and "ragctl bundle load FILE on n2" in rows[
            "image on n2"]["hint"]
        assert rows["image on n1"]["status"] == rows["image on n3"]["status"] == "ok"
    finally:  # the real image back under the tag on n2, the other one gone: later tests see one build
        cluster.docker("n2", "tag", original, IMAGE, check=False)
        # doctor's one-shot jobs (its probe, its checks) that the swarm placed on n2 ran that image: their
        # ended containers stay after the job's service is removed; remove those (ragctl's jobs only).
        users = refused = ""
        for _ in range(30) if other.startswith("sha256:") else ():
            removed = cluster.docker("n2", "image", "rm", other, check=False)
            if removed.returncode == 0:
                break
            refused = removed.stderr
            users = cluster.docker("n2", "ps", "-a", "--filter", f"ancestor={other}", "--format",
                                   '{{.ID}} {{.State}} {{.Label "com.docker.swarm.service.name"}}').stdout
            for container, state, service in ((line.split() + ["", ""])[:3] for line in users.splitlines()):
                if state != "running" and ("_nodecheck-" in service or "_job-" in service):
                    cluster.docker("n2", "rm", container, check=False)
            time.sleep(3)
    assert cluster.docker("n2", *inspect, "{{.Id}}", IMAGE).stdout.strip() == original
    assert cluster.docker("n2", "image", "inspect", other, check=False).returncode != 0, (refused, users)
    # The one-shot tasks doctor ran (its probes, its checks) left no container on any node.
    deadline = time.monotonic() + 90
    while (left := one_shot_containers(cluster)) and time.monotonic() < deadline:
        time.sleep(3)
    assert not left, left


def one_shot_containers(cluster) -> dict[str, list[str]]:
    """Node → the containers of ragctl's one-shot tasks (``job``, ``global_job``) still on it."""
    found = {}
    for node in ("n1", "n2", "n3"):
        names = cluster.docker(node, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        found[node] = [name for name in names if "_job-" in name or "_nodecheck-" in name]
    return {node: names for node, names in found.items() if names}


def test_doctor_names_a_node_that_is_down(deployed):
    cluster, root, env = deployed
    cluster.stop_node("n2")
    try:
        cluster.wait_status("n2", "Down", timeout=120)
        report, code = ragctl_json("doctor", root=root, env=env, timeout=600, check=False)
        text = json.dumps(report)
        assert code != 0 and "node n2" in text and "down" in text.lower()
    finally:
        cluster.start_node("n2")


def test_scale_workers_live(deployed):
    _, root, env = deployed
    for count in (4, 1):
        ragctl_json("scale", f"worker={count}", root=root, env=env, timeout=900)
        assert ps(root, env)["worker"]["replicas"] == count


def test_restart_the_api_under_questions_drops_none(deployed):
    _, root, env = deployed
    ragctl_json("scale", "api=2", root=root, env=env, timeout=900)
    failures, answered, stop = [], [], threading.Event()

    def ask_forever() -> None:
        while not stop.is_set():
            done = ragctl("ask", "연차 휴가는 며칠인가요?", "--json", root=root, env=env, timeout=120, check=False)
            (answered if done.returncode == 0 else failures).append(done.stdout[-300:] + done.stderr[-300:])

    asker = threading.Thread(target=ask_forever, daemon=True)
    asker.start()
    try:
        time.sleep(5)
        ragctl_json("restart", "api", root=root, env=env, timeout=900)
        time.sleep(5)
    finally:
        stop.set()
        asker.join(timeout=180)
    assert answered and failures == [], failures[:3]


def test_backup_and_restore_the_cluster(deployed, tmp_path):
    """A backup through the data node's engine (a PostgreSQL dump, Chroma's and Redis's files); the
    stack removed with its volumes; the restore brings back the same documents and vectors."""
    _, root, env = deployed
    ids_before = sorted(d["id"] for d in ragctl_json("documents", "list", root=root, env=env)[0])
    assert ids_before
    archive = tmp_path / "swarm-backup.tar.gz"
    made, _ = ragctl_json("backup", "--out", str(archive), root=root, env=env, timeout=1200)
    assert made["runtime"] == "swarm" and made["vectors"]["default"] > 0
    assert sum(made["documents"].values()) == len(ids_before)
    with tarfile.open(archive) as tar:
        assert tar.getmember("postgres/ragctl.dump").size > 0
    ragctl("down", "--volumes", "--yes", root=root, env=env, timeout=600)
    restored, _ = ragctl_json("restore", str(archive), "--yes", root=root, env=env, timeout=2400)
    assert restored["verified"] and restored["started"], restored
    assert sorted(d["id"] for d in ragctl_json("documents", "list", root=root, env=env)[0]) == ids_before
    answer, _ = ragctl_json("search", "휴가", root=root, env=env, timeout=300)
    assert answer
