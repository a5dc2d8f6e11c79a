"""The swarm runtime from one host (issue #29): the path most users start on, on a real engine of its
own (tests/support/swarm_cluster.py: two dockerd engines in their own namespaces, started outside any swarm;
the host engine is only read from, by ``ragctl bundle save``).

In order, as a user goes: ``ragctl up`` before there is a swarm → its hint (``docker swarm init``);
the image missing → its hint (``ragctl bundle save`` where the image was built by the Docker suite's
``ragctl wheelhouse`` + ``ragctl build``, ``ragctl bundle load`` on the nodes); ``ragctl up`` on the
one-node swarm with no node labelled: it labels the node, says so, runs the workers with the data
services; an HWP and an HWPX ingested through Nginx, a question answered; every other pre-flight hint
of the swarm runtime followed on that swarm and its failure gone (worker_placement, gpu, flower,
uid/gid); a second engine joins with the command ``ragctl nodes join-command`` prints, and the next
``up`` moves the workers onto it, saying so; ``down``; then the data-node hints on the two-node swarm
(two nodes labelled, none, the data node drained, the data node down).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.docker_image import IMAGE_TAG, REPO, ragctl, ragctl_json, set_stack
from tests.support.suite import corpus_path, skip_or_fail
from tests.support.swarm_cluster import SwarmCluster, require_cluster

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]
NGINX_PORT = 8443
QUESTION = "연차 휴가는 며칠인가요?"


@pytest.fixture(scope="module")
def host(e2e_image, tmp_path_factory):
    """Two engines outside any swarm, and a swarm project pointed at the first (n1)."""
    require_cluster()
    hwp = corpus_path() and corpus_path() / "hwp" / "hwpjs" / "example.hwp"
    if not hwp or not hwp.is_file():
        skip_or_fail("the corpus (../shared/corpus) is missing: no HWP to ingest", "swarm")
    began = time.monotonic()
    with SwarmCluster(2, swarm=False) as cluster:
        env = cluster.env("n1")
        root = tmp_path_factory.mktemp("one-node") / "ragctl-one"
        ragctl("init", str(root), "--runtime", "swarm", "--workers", "1", "--no-gpu", "--yes", env=env)
        # This kernel has no ESP: an encrypted overlay would carry nothing (tests/support/swarm_cluster.py).
        set_stack(root, tag=IMAGE_TAG, api_cpus=1, worker_cpus=1, worker_memory="3g", nginx_port=NGINX_PORT,
                  nginx_http_port=0, swarm_encrypted=False)
        try:
            yield {"cluster": cluster, "root": root, "env": env, "hwp": hwp, "bundle": root.parent / "bundle.tar"}
        finally:
            ragctl("down", "--volumes", "--yes", root=root, timeout=600, check=False, env=env)
            print(f"\none-node swarm module: {time.monotonic() - began:.0f} s")


def preflight(host) -> dict[str, dict]:
    """``up``'s pre-flight rows by name, as ``up`` runs them (nothing is deployed)."""
    from ragctl.errors import PreflightFailed
    from ragctl.runtime.swarm import SwarmRuntime

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", host["env"]["DOCKER_HOST"])
        try:
            checks = SwarmRuntime(host["root"]).preflight()
        except PreflightFailed as exc:
            checks = exc.checks
    return {c.name: c.to_dict() for c in checks}


def failing(host, name: str) -> dict:
    rows = preflight(host)
    assert rows[name]["status"] == "fail", rows.get(name)
    return rows[name]


def run_hint(host, hint: str, command: str) -> None:
    """Run ``command``, which the hint must spell out: a ``ragctl`` command on the project, or a
    ``docker`` one on the engine ragctl talks to."""
    assert command in hint, (command, hint)
    words = shlex.split(command)
    if words[0] == "ragctl":
        ragctl(*words[1:], root=host["root"], env=host["env"], timeout=900)
    else:
        assert words[0] == "docker"
        host["cluster"].docker("n1", *words[1:], timeout=120)


def set_hint(host, hint: str, setting: str) -> None:
    """Apply ``set KEY = VALUE under [stack]`` as the hint words it."""
    assert f"set {setting} under [stack]" in hint, (setting, hint)
    set_stack(host["root"], **tomllib.loads(setting))


def unset_stack(root: Path, *keys: str) -> None:
    """Delete the ``KEY = …`` lines of ``keys`` from ragctl.toml (as a user would): their defaults again."""
    path = root / "ragctl.toml"
    text = path.read_text()
    for key in keys:
        text = re.sub(rf"(?m)^{re.escape(key)}[ \t]*=.*\n", "", text)
    path.write_text(text)
    assert not set(keys) & set(tomllib.loads(text).get("stack", {}))


def test_up_without_a_swarm_says_docker_swarm_init_and_that_works(host):
    error, code = ragctl_json("up", root=host["root"], env=host["env"], check=False)
    assert code != 0 and "docker swarm init" in error["error"]["hint"], error
    run_hint(host, error["error"]["hint"], "docker swarm init")
    rows = preflight(host)
    assert rows["swarm"]["status"] == "ok" and rows["swarm"]["detail"].startswith("1 of 1 nodes"), rows["swarm"]


def test_the_image_hint_bundle_save_and_load_works(host):
    hint = failing(host, "image")["hint"]
    assert "ragctl bundle load FILE" in hint and "ragctl bundle save FILE" in hint
    bundle = host["bundle"]
    began = time.monotonic()
    # Saved from the engine the Docker suite built ragctl:e2e on (the host's: no DOCKER_HOST), then
    # loaded on both engines at once (n2 joins the swarm later).
    ragctl("bundle", "save", str(bundle), root=host["root"], timeout=1200)
    saved = time.monotonic() - began
    loads = [subprocess.Popen([sys.executable, "-m", "ragctl", "-p", str(host["root"]), "bundle", "load", str(bundle),
                               "--json"], env={**host["cluster"].env(node), "NO_COLOR": "1"}, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in ("n1", "n2")]
    outputs = [load.communicate(timeout=1200) for load in loads]
    assert [load.returncode for load in loads] == [0, 0], outputs
    print(f"\nbundle save {saved:.0f} s, load on 2 engines {time.monotonic() - began - saved:.0f} s")
    bundle.unlink()
    assert preflight(host)["image"]["status"] == "ok"


def test_up_on_one_node_labels_it_and_runs_everything_there(host):
    root, env = host["root"], host["env"]
    nodes, _ = ragctl_json("nodes", "list", root=root, env=env)
    assert [n["data"] for n in nodes] == [False]  # nothing labelled: up must do it
    assert preflight(host)["data node"]["status"] == "ok"  # says what up will do, not a failure
    began = time.monotonic()
    up, code = ragctl_json("up", "--wait", "900", root=root, timeout=1200, check=False, env=env)
    assert code == 0, json.dumps(up, ensure_ascii=False, indent=1)[-6000:]
    print(f"\nup on one node: {time.monotonic() - began:.0f} s; notes: {up['notes']}")
    notes = " ".join(up["notes"])
    assert "n1 is the swarm's only node: labelling it ragctl.data=true" in notes
    assert "workers can run on n1" in notes and "with the data services" in notes
    nodes, _ = ragctl_json("nodes", "list", root=root, env=env)
    assert nodes[0]["data"] is True
    services = {row["service"]: row for row in ragctl_json("ps", root=root, env=env)[0]}
    assert {name: row["nodes"] for name, row in services.items()} == {name: ["n1"] for name in services}
    assert services["worker"]["replicas"] == 1
    assert "placement" not in yaml.safe_load((root / "stack.yaml").read_text())["services"]["worker"]["deploy"]


def test_ingest_an_hwp_and_ask(host):
    root, env = host["root"], host["env"]
    files = [host["hwp"], REPO / "samples" / "휴가_규정.hwpx"]
    report, _ = ragctl_json("ingest", *map(str, files), root=root, env=env, timeout=900)
    assert [r["status"] for r in report["results"]] == ["done", "done"], report
    assert all(r["chunks"] > 0 for r in report["results"])
    answer, _ = ragctl_json("ask", QUESTION, root=root, env=env, timeout=300)
    assert answer["sources"] and answer["sources"][0]["file"] == "휴가_규정.hwpx" and "15" in answer["answer"]


def test_each_setting_hint_clears_its_failure(host):
    root = host["root"]
    # worker_placement = "apart" on one node: no node for the workers.
    set_stack(root, worker_placement="apart")
    set_hint(host, failing(host, "worker nodes")["hint"], 'worker_placement = "auto"')
    assert preflight(host)["worker nodes"]["status"] == "ok"
    # GPU workers without a GPU node: the label (then taken off again), or gpu = false.
    set_stack(root, gpu=True)
    run_hint(host, failing(host, "worker nodes")["hint"].replace("NODE", "n1"), "ragctl nodes label n1 gpu=true")
    assert preflight(host)["worker nodes"]["status"] == "ok"
    ragctl("nodes", "label", "n1", "gpu=false", root=root, env=host["env"])
    set_hint(host, failing(host, "worker nodes")["hint"], "gpu = false")
    assert preflight(host)["worker nodes"]["status"] == "ok"
    # Flower, and a uid/gid other than the image's.
    set_stack(root, flower=True)
    set_hint(host, failing(host, "flower")["hint"], "flower = false")
    set_stack(root, uid=1234, gid=1234)
    assert "remove the uid and gid lines under [stack]" in failing(host, "user")["hint"]
    unset_stack(root, "uid", "gid")
    rows = preflight(host)
    assert "flower" not in rows and "user" not in rows
    unset_stack(root, "worker_placement", "gpu", "flower")  # back to the defaults


def test_a_node_that_joins_takes_the_workers_on_the_next_up(host):
    cluster, root, env = host["cluster"], host["root"], host["env"]
    set_stack(root, worker_placement="apart")
    hint = failing(host, "worker nodes")["hint"]
    assert "add a node: ragctl nodes join-command" in hint
    joined, _ = ragctl_json("nodes", "join-command", root=root, env=env)
    command = shlex.split(joined["command"])
    assert command[:3] == ["docker", "swarm", "join"]
    cluster.docker("n2", *command[1:], timeout=120)  # on the new node, as printed
    cluster.wait_status("n2", "Ready", timeout=90)
    assert preflight(host)["worker nodes"]["status"] == "ok"
    unset_stack(root, "worker_placement")  # left at its default, "auto"
    rows = preflight(host)
    assert "workers can run on n2" in rows["worker nodes"]["detail"]
    assert "the workers now on n1 move there" in rows["worker nodes"]["detail"]
    began = time.monotonic()
    up, code = ragctl_json("up", "--wait", "900", root=root, timeout=1200, check=False, env=env)
    assert code == 0, json.dumps(up, ensure_ascii=False, indent=1)[-6000:]
    print(f"\nup after n2 joined: {time.monotonic() - began:.0f} s; notes: {up['notes']}")
    assert any("the workers now on n1 move there" in note for note in up["notes"]), up["notes"]
    services = {row["service"]: row for row in ragctl_json("ps", root=root, env=env)[0]}
    assert services["worker"]["nodes"] == ["n2"], services["worker"]
    for name in ("postgres", "redis", "chroma"):
        assert services[name]["nodes"] == ["n1"], services[name]
    assert services["nginx"]["replicas"] == 2  # one on every node
    answer, _ = ragctl_json("ask", QUESTION, root=root, env=env, timeout=300)
    assert "15" in answer["answer"]


def test_down_removes_the_stack(host):
    stopped, _ = ragctl_json("down", "--volumes", "--yes", root=host["root"], env=host["env"], timeout=600)
    assert "worker" in " ".join(stopped["stopped"])
    assert host["cluster"].docker("n1", "service", "ls", "-q").stdout.strip() == ""


def test_each_data_node_hint_clears_its_failure(host):
    cluster, root, env = host["cluster"], host["root"], host["env"]
    # Two data nodes: the hint takes the label off the one that is not n1.
    ragctl("nodes", "label", "n2", "data=true", root=root, env=env)
    hint = failing(host, "data node")["hint"]
    run_hint(host, hint, "ragctl nodes label n2 data=false")
    assert preflight(host)["data node"]["status"] == "ok"
    # None on a swarm of two: up cannot choose; the hint names the manager.
    ragctl("nodes", "label", "n1", "data=false", root=root, env=env)
    run_hint(host, failing(host, "data node")["hint"], "ragctl nodes label n1 data=true")
    assert preflight(host)["data node"]["status"] == "ok"
    # The data node drained.
    cluster.docker("n1", "node", "update", "--availability", "drain", "n1")
    run_hint(host, failing(host, "data node")["hint"], "docker node update --availability active n1")
    assert preflight(host)["data node"]["status"] == "ok"
    # The data node down: its engine started again (systemctl start docker, on a real host).
    ragctl("nodes", "label", "n1", "data=false", root=root, env=env)
    ragctl("nodes", "label", "n2", "data=true", root=root, env=env)
    cluster.stop_node("n2")
    cluster.wait_status("n2", "Down", timeout=120)
    hint = failing(host, "data node")["hint"]
    assert "bring n2's engine back (systemctl start docker on it)" in hint
    cluster.start_node("n2")
    assert preflight(host)["data node"]["status"] == "ok"
