"""The multi-engine Swarm harness (tests/support/swarm_cluster.py) proven on its own (issue #12).

Three real dockerd engines, each in its own network, PID, mount and UTS namespace with its own data root,
joined into one swarm over a bridge between the namespaces: nodes Ready, an overlay network carrying
HTTP between containers on different engines (VXLAN between the namespaces), published ports reachable
from the root namespace, a node killed like a host losing power and brought back, and a teardown that
leaves nothing behind on the host and changes nothing of the host engine's.

Run: ``python -m pytest -q -s tests/swarm`` (root, dockerd, the host engine with ragctl-base:bookworm;
``-s`` shows the measured times).  Skips with the reason when the machine cannot, fails under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.suite import skip_or_fail
from tests.support.swarm_cluster import (
    HOST_DOCKER,
    SwarmCluster,
    host_engine_events,
    host_engine_state,
    kernel_features,
    require_cluster,
    run_leftovers,
    swarm_cluster,  # noqa: F401 - the fixture
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

IMAGE = "ragctl-base:bookworm"
# each replica writes the name of its node into /srv/who and serves /srv on 8000
SERVE = ["sh", "-c", "hostname > /srv/who && cd /srv && exec python3 -m http.server 8000"]


def report(**figures) -> None:
    print("\nMEASURED " + json.dumps(figures, sort_keys=True))


@pytest.fixture(scope="module")
def host_before():
    """The host engine's containers, volumes, networks and swarm state before the cluster exists."""
    require_cluster()
    return time.time(), host_engine_state()


@pytest.fixture(scope="module")
def cluster(host_before, swarm_cluster):  # noqa: F811 - the fixture imported above
    return swarm_cluster


@pytest.fixture(scope="module")
def base_image(cluster):
    if cluster.docker(cluster.manager, "version", check=False).returncode != 0:
        pytest.fail("cluster engine not answering")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, env=HOST_DOCKER, timeout=60,
                      check=False).returncode != 0:
        skip_or_fail(f"the host engine has no {IMAGE} image (scripts/make-base-image.sh makes it)", "swarm")
    per_node = cluster.load_image(IMAGE)
    report(load_image=IMAGE, seconds_per_node=per_node)
    return IMAGE


def converge(cluster, service: str, replicas: int, timeout: float = 150) -> list[dict]:
    """Wait until ``replicas`` tasks of ``service`` run; returns their inspected task objects."""
    deadline = time.monotonic() + timeout
    tasks: list[dict] = []
    while time.monotonic() < deadline:
        ids = cluster.docker(cluster.manager, "service", "ps", service, "-q", "--filter", "desired-state=running"
                             ).stdout.split()
        tasks = json.loads(cluster.docker(cluster.manager, "inspect", *ids).stdout) if ids else []
        if sum(t["Status"]["State"] == "running" for t in tasks) == replicas:
            return [t for t in tasks if t["Status"]["State"] == "running"]
        time.sleep(1)
    raise TimeoutError(f"{service}: {[(t['NodeID'], t['Status']) for t in tasks]}")


@pytest.fixture(scope="module")
def web(cluster, base_image):
    """An attachable overlay network and a 2-replica HTTP service placed on n2 and n3 by node label,
    publishing port 8080 in host mode (the routing mesh needs IPVS: see test_routing_mesh)."""
    cluster.label("n2", tier="web")
    cluster.label("n3", tier="web")
    cluster.docker(cluster.manager, "network", "create", "-d", "overlay", "--attachable", "webnet")
    began = time.monotonic()
    cluster.docker(cluster.manager, "service", "create", "-d", "--name", "web", "--network", "webnet",
                   "--replicas", "2", "--replicas-max-per-node", "1", "--constraint", "node.labels.tier==web",
                   "--endpoint-mode", "dnsrr", "--hostname", "{{.Node.Hostname}}",
                   "--publish", "mode=host,target=8000,published=8080", base_image, *SERVE)
    tasks = converge(cluster, "web", 2)
    report(service_converge_s=round(time.monotonic() - began, 1))
    return tasks


def test_three_engines_form_one_swarm_with_one_manager(cluster):
    states = cluster.node_states()
    assert states == {"n1": ("Ready", "Active"), "n2": ("Ready", "Active"), "n3": ("Ready", "Active")}
    managers = cluster.docker(cluster.manager, "node", "ls", "--filter", "role=manager", "--format",
                              "{{.Hostname}} {{.ManagerStatus}}").stdout.split("\n")
    assert [m for m in managers if m] == ["n1 Leader"]
    roots, pids, memory = set(), {}, {}
    for name, node in cluster.nodes.items():
        info = json.loads(cluster.docker(name, "info", "--format", "{{json .}}").stdout)
        assert info["Name"] == name and info["Swarm"]["LocalNodeState"] == "active"
        assert info["Swarm"]["NodeAddr"] == node.ip
        assert info["DockerRootDir"] == str(node.dir / "data") and info["Driver"] == "overlay2"
        roots.add(info["DockerRootDir"])
        pids[name] = cluster.node_processes(name)
        commands = set()
        for pid in pids[name]:
            with contextlib.suppress(OSError):  # a short-lived helper (iptables, runc) may be gone already
                commands.add(Path(f"/proc/{pid}/comm").read_text().strip())
        assert {"dockerd", "containerd"} <= commands, commands
        memory[name] = round(cluster.node_memory(name) / 2**20, 1)
    assert len(roots) == 3
    assert not set(pids["n1"]) & set(pids["n2"]) and not set(pids["n2"]) & set(pids["n3"])
    host_engine = Path("/var/run/docker.pid")  # the host's own engine is none of the nodes'
    if host_engine.exists():
        assert int(host_engine.read_text()) not in {p for ps in pids.values() for p in ps}
    report(timings={k: round(v, 2) for k, v in cluster.timings.items()}, idle_engine_rss_mib=memory)


def test_overlay_carries_http_between_engines_by_task_ip(cluster, web, base_image):
    node_of = {cluster.nodes[n].node_id: n for n in cluster.nodes}
    ips = {}
    for task in web:
        (attachment,) = [a for a in task["NetworksAttachments"] if a["Network"]["Spec"]["Name"] == "webnet"]
        ips[node_of[task["NodeID"]]] = attachment["Addresses"][0].split("/")[0]
    assert set(ips) == {"n2", "n3"}
    probe = ("import sys, urllib.request\n"
             "for ip in sys.argv[1:]:\n"
             "    print(ip, urllib.request.urlopen(f'http://{ip}:8000/who', timeout=10).read().decode().strip())\n")
    began = time.monotonic()
    out = cluster.docker("n1", "run", "--rm", "--network", "webnet", base_image, "python3", "-c", probe,
                         *ips.values(), timeout=120).stdout
    answers = dict(line.split() for line in out.splitlines())
    assert answers == {ips["n2"]: "n2", ips["n3"]: "n3"}, out
    # the same by the service's DNS name (endpoint mode dnsrr: the task addresses)
    resolve = "import socket; print(' '.join(sorted(socket.gethostbyname_ex('tasks.web')[2])))"
    out = cluster.docker("n1", "run", "--rm", "--network", "webnet", base_image, "python3", "-c", resolve,
                         timeout=120).stdout.split()
    assert out == sorted(ips.values())
    report(one_shot_probe_s=round(time.monotonic() - began, 1))


def test_host_mode_published_port_reachable_from_root_namespace(cluster, web):
    for name in ("n2", "n3"):
        with urllib.request.urlopen(f"http://{cluster.node_ip(name)}:8080/who", timeout=10) as answer:
            assert answer.read().decode().strip() == name
    with pytest.raises(OSError):  # nothing published on n1: no task there, and no routing mesh in host mode
        urllib.request.urlopen(f"http://{cluster.node_ip('n1')}:8080/who", timeout=5)


def test_routing_mesh(cluster, web, base_image):
    if not kernel_features()["ipvs"]:
        pytest.skip("this kernel has no IPVS (CONFIG_IP_VS unset, no /proc/net/ip_vs): the swarm routing mesh "
                    "and service VIPs cannot work here; use endpoint_mode dnsrr and mode=host ports")
    cluster.docker(cluster.manager, "service", "create", "-d", "--name", "mesh", "--replicas", "1",
                   "--constraint", "node.labels.tier==web", "--publish", "published=8090,target=8000",
                   base_image, *SERVE)
    converge(cluster, "mesh", 1)
    for name in ("n1", "n2"):
        with urllib.request.urlopen(f"http://{cluster.node_ip(name)}:8090/who", timeout=10) as answer:
            assert answer.read().decode().strip() in ("n2", "n3")


def test_encrypted_overlay(cluster, web, base_image):
    if not kernel_features()["esp"]:
        pytest.skip("this kernel has no ESP (CONFIG_INET_ESP unset): dockerd logs 'Failed Adding rSA{... Proto: "
                    "esp ...}: function not implemented' and an --opt encrypted overlay carries no traffic")
    cluster.docker(cluster.manager, "network", "create", "-d", "overlay", "--attachable", "--opt", "encrypted",
                   "secnet")
    cluster.docker(cluster.manager, "service", "create", "-d", "--name", "secweb", "--network", "secnet",
                   "--constraint", "node.hostname==n2", "--endpoint-mode", "dnsrr", "--hostname",
                   "{{.Node.Hostname}}", base_image, *SERVE)
    converge(cluster, "secweb", 1)
    probe = "import urllib.request; print(urllib.request.urlopen('http://tasks.secweb:8000/who', timeout=10).read())"
    assert "n2" in cluster.docker("n1", "run", "--rm", "--network", "secnet", base_image, "python3", "-c", probe,
                                  timeout=120).stdout


def test_killed_node_goes_down_with_all_its_processes_and_comes_back(cluster, web):
    before = cluster.node_processes("n3")
    in_containers = [p for p in before if f"/{cluster.nodes['n3'].netns}/" in Path(f"/proc/{p}/cgroup").read_text()]
    assert in_containers, "the web replica on n3 has no process under n3's cgroup parent"
    gone_s = cluster.kill_node("n3")
    assert cluster.node_processes("n3") == []
    survivors = []
    for pid in before:  # none of the pids seen before the kill is still that process
        try:
            if str(cluster.nodes["n3"].dir) in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") or \
                    f"/{cluster.nodes['n3'].netns}/" in Path(f"/proc/{pid}/cgroup").read_text():
                survivors.append(pid)
        except OSError:
            pass
    assert survivors == []
    down_s = cluster.wait_status("n3", "Down", timeout=30)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{cluster.node_ip('n3')}:8080/who", timeout=3)
    assert cluster.node_states()["n2"][0] == "Ready"

    began = time.monotonic()
    cluster.start_node("n3")
    ready_s = time.monotonic() - began
    assert cluster.node_states()["n3"] == ("Ready", "Active")
    began = time.monotonic()
    tasks = converge(cluster, "web", 2)
    node_of = {cluster.nodes[n].node_id: n for n in cluster.nodes}
    assert sorted(node_of[t["NodeID"]] for t in tasks) == ["n2", "n3"]
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{cluster.node_ip('n3')}:8080/who", timeout=5) as answer:
                assert answer.read().decode().strip() == "n3"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    report(kill_processes_gone_s=round(gone_s, 2), kill_to_down_s=round(down_s, 1),
           restart_to_ready_s=round(ready_s, 1), replica_back_s=round(time.monotonic() - began, 1))


def test_teardown_leaves_nothing_and_host_engine_unchanged(cluster, host_before):
    prefix, folder = cluster.prefix, cluster.dir
    assert any(run_leftovers(prefix).values())
    began = time.monotonic()
    cluster.teardown()
    took = time.monotonic() - began
    assert run_leftovers(prefix) == {"links": [], "netns": [], "mounts": [], "folders": [], "cgroups": [],
                                     "processes": []}
    assert not folder.exists()
    since, before = host_before
    after = host_engine_state()
    assert after["swarm"] == before["swarm"]
    ours = ("webnet", "secnet", "web.", "mesh.", "secweb.", prefix)
    events = host_engine_events(since, time.time())
    if not events:  # a quiet host engine: exactly as it was
        assert after == before
    else:  # other suites used the host engine meanwhile: every change is theirs, explicit, and not ours
        print(f"\nhost engine: {len(events)} events of other suites during the run")
        removed = {a.get("ID") for e in events if e["Action"] == "destroy" for a in [e["Actor"]]}
        for kind in ("containers", "volumes", "networks"):
            for key in before[kind].keys() - after[kind].keys():
                assert key in removed, f"{kind} {before[kind][key]} vanished without a destroy event"
            for key, name in {**before[kind], **after[kind]}.items():
                assert not any(mark in name for mark in ours), (kind, name)
    report(teardown_s=round(took, 1))


def test_a_second_cluster_takes_another_prefix():
    """Two runs never collide: a prefix whose folder a live process owns is not taken again."""
    require_cluster()
    first = SwarmCluster(1)
    first.dir.mkdir(parents=True, exist_ok=True)
    (first.dir / "owner.pid").write_text(str(os.getppid()))  # a live process that is not this one
    try:
        second = SwarmCluster(1)
        assert second.prefix != first.prefix
        assert second.nodes["n1"].netns != first.nodes["n1"].netns
        assert not second.dir.exists()
        second.teardown()
    finally:
        (first.dir / "owner.pid").unlink()
        first.teardown()
    assert not first.dir.exists()
