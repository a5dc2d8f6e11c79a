"""doctor across hosts (issue #12): what a swarm stack needs from its nodes.

One global job (a task on every active node) answers for each node at once: whether the node has the
image (a task rejected with "No such image" says it lacks it), which build of it (``RAGCTL_BUILD_ID``,
baked in by ``ragctl build``: without a registry the swarm names the image by its tag only, so two nodes
can hold different images under one tag), whether its clock agrees with this
machine's (heartbeats and the reaper compare times written on different nodes), and whether it
reaches Redis on the data node over the overlay network (VXLAN between the hosts).  Nodes down or
drained come from the manager's node list.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from ragctl.checks import Check
from ragctl.errors import RagctlError
from ragctl.runtime.swarm.preflight import data_node_check

if TYPE_CHECKING:
    from ragctl.runtime.swarm.runtime import SwarmRuntime

#: A node's clock further off than this (after the job's own latency) is reported.
CLOCK_SKEW_LIMIT_S = 10.0
NODE_PROBE = (
    "import json, os, socket, time\n"
    "t = time.time()\n"
    "try:\n"
    "    socket.create_connection(('redis', 6379), timeout=5).close(); reach = 'ok'\n"
    "except OSError as exc:\n"
    "    reach = str(exc)\n"
    "print(json.dumps({'node': os.environ.get('NODE'), 'time': t, 'redis': reach,\n"
    "                  'build': os.environ.get('RAGCTL_BUILD_ID')}))\n"
)
#: Build ids are SHA-256 hex digests; rows show this many characters of them.
SHORT_BUILD = 12


def swarm_checks(runtime: SwarmRuntime) -> list[Check]:
    try:
        nodes = runtime.nodes()
    except RagctlError as exc:
        return [Check("swarm", "fail", exc.message, hint=exc.hint)]
    checks = [_node_check(node) for node in nodes]
    checks.append(data_node_check(nodes))
    if any(s.running for s in runtime.services()):
        checks += node_probe_checks(runtime)
    return checks


def _node_check(node) -> Check:
    name = f"node {node.hostname}"
    if node.state != "ready":
        return Check(name, "fail", f"{node.role}, {node.state} (last address {node.address})",
                     "its replicas were moved to other nodes; the ones pinned to it wait",
                     hint=f"start its engine again; if it is gone for good: docker node rm {node.hostname}")
    if node.availability != "active":
        return Check(name, "warn", f"{node.role}, ready but {node.availability}: it takes no new tasks",
                     hint=f"docker node update --availability active {node.hostname}")
    return Check(name, "ok", f"{node.role}, ready, {node.address}"
                 + (f", {', '.join(f'{k}×{v}' for k, v in sorted(node.replicas.items()))}" if node.replicas else ""))


def node_probe_checks(runtime: SwarmRuntime) -> list[Check]:
    """Run NODE_PROBE once on every active node; a check per node and concern."""
    from ragctl.images import image_build

    image = f"{runtime.config.image}:{runtime.config.tag}"
    try:
        reference = image_build(image)
    except RagctlError:
        reference = None
    started = time.time()
    results = runtime.global_job(["python3", "-c", NODE_PROBE])
    finished = time.time()
    return probe_checks(image, reference, results, started=started, finished=finished)


def probe_checks(image: str, reference: str | None, results: list[dict], *, started: float,
                 finished: float) -> list[Check]:
    """The rows of NODE_PROBE's ``results`` (``SwarmRuntime.global_job``'s, run between ``started`` and
    ``finished``); ``reference`` is the build id of ``image`` on the engine ragctl talks to (see
    build_checks)."""
    checks = []
    builds = {r["node"]: r["output"].get("build") or "" for r in results
              if r["output"] is not None and not _lacks_image(r["error"])}
    rows = build_checks(image, reference, builds)
    for result in results:
        node, error, report = result["node"], result["error"], result["output"]
        if _lacks_image(error):
            checks.append(Check(f"image on {node}", "fail", f"{node} lacks {image}", error,
                                hint=f"on {node}: ragctl bundle load FILE   (or push to your registry: ragctl build "
                                "--push, with image = \"REGISTRY/ragctl\" under [stack])"))
            continue
        if report is None:
            checks.append(Check(f"node probe {node}", "warn", f"no answer from {node}: {error or 'the job did not run'}",
                                hint="ragctl nodes"))
            continue
        checks.append(rows[node])
        skew = max(0.0, started - CLOCK_SKEW_LIMIT_S - report["time"], report["time"] - finished - CLOCK_SKEW_LIMIT_S)
        if skew > 0:
            checks.append(Check(f"clock on {node}", "fail", f"{node}'s clock is off by more than "
                                f"{CLOCK_SKEW_LIMIT_S + skew:.0f} s", "heartbeats from it look stale (or fresh) to the "
                                "reaper", hint=f"enable NTP on {node} (timedatectl set-ntp true)"))
        else:
            checks.append(Check(f"clock on {node}", "ok", f"within {CLOCK_SKEW_LIMIT_S:.0f} s of this machine"))
        if report.get("redis") == "ok":
            checks.append(Check(f"overlay from {node}", "ok", "reaches Redis on the data node"))
        else:
            checks.append(Check(f"overlay from {node}", "fail", f"{node} cannot reach Redis over the overlay network: "
                                f"{report.get('redis')}", "VXLAN (UDP 4789) or the swarm's gossip (7946) is blocked "
                                "between the hosts", hint="open UDP 4789 and TCP/UDP 7946 between the nodes"))
    return checks


def _lacks_image(error: str) -> bool:
    return "No such image" in error or "not found" in error.lower() and "image" in error.lower()


def build_checks(image: str, reference: str | None, builds: dict[str, str]) -> dict[str, Check]:
    """An ``image on NODE`` row for each node of ``builds`` (node → the build id of the ``image`` it
    holds, "" for an image built before ragctl recorded one).  ``reference`` is the build id of
    ``image`` on the engine ragctl talks to ("" when that image carries none, None when that engine
    does not hold it); without one, the build most nodes hold is the reference, and a tie has none.
    Same build: ok, naming it; another build: fail, naming both; no build id: warn (rebuild)."""
    counts = Counter(b for b in builds.values() if b).most_common()
    where = "this engine's"
    if not reference:
        where = "the other nodes'"
        reference = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else None
    rows = {}
    for node, build in builds.items():
        name = f"image on {node}"
        data = {"build": build, "reference": reference}
        if not build:
            rows[node] = Check(name, "warn", f"{node}'s {image} carries no build id (built before ragctl recorded "
                               "one): doctor cannot tell whether every node holds the same build",
                               hint="rebuild: ragctl build, then ragctl build --push (with a registry) or ragctl "
                                    "bundle load FILE on every node; then ragctl up", data=data)
        elif reference is None:
            held = ", ".join(f"{n} {b[:SHORT_BUILD]}" for n, b in builds.items() if b)
            rows[node] = Check(name, "fail", f"{node}'s {image} is build {build[:SHORT_BUILD]}: the nodes hold "
                               f"{len(counts)} different builds under this tag ({held})",
                               "the same tag names different images: replicas on different nodes run different "
                               "code", hint=_copy_hint(node), data=data)
        elif build != reference:
            rows[node] = Check(name, "fail", f"{node}'s {image} is build {build[:SHORT_BUILD]}, {where} is build "
                               f"{reference[:SHORT_BUILD]}",
                               "the same tag names different images: replicas on different nodes run different "
                               "code", hint=_copy_hint(node), data=data)
        else:
            rows[node] = Check(name, "ok", f"{image} runs on {node}, build {build[:SHORT_BUILD]}", data=data)
    return rows


def _copy_hint(node: str) -> str:
    return (f"one build on every node: ragctl build --push (with a registry), or ragctl bundle save FILE here "
            f"and ragctl bundle load FILE on {node}; then ragctl up (without a registry also ragctl restart "
            "SERVICE for the services with replicas there)")


def service_checks(runtime: SwarmRuntime) -> list[Check]:
    """One check per service: its wanted replicas running, else the swarm's own reason."""
    checks = []
    for service in runtime.status().services:
        if service.ready:
            checks.append(Check(f"service {service.name}", "ok", service.summary()))
        else:
            cause = service.problems[0] if service.problems else "replicas are not running"
            checks.append(Check(f"service {service.name}", "fail", service.summary(), cause,
                                f"ragctl restart {service.name}   (then ragctl logs {service.name}; ragctl nodes)",
                                ("restart", service.name)))
    return checks


def store_ports(runtime: SwarmRuntime) -> list[tuple[str, str, int]]:
    """Published ports of this stack's data containers on this engine (stack.yaml publishes none)."""
    from ragctl.engine import port_bindings
    from ragctl.runtime.container_stack import STORE_SERVICES
    from ragctl.runtime.swarm.jobs import SWARM_SERVICE_LABEL

    found = set()
    for container in runtime.containers():
        service = container.labels.get(SWARM_SERVICE_LABEL, "").removeprefix(f"{runtime.name}_")
        if service in STORE_SERVICES and container.status == "running":
            found.update((service, b.host_ip, int(b.host_port)) for b in port_bindings(container))
    return sorted(found)
