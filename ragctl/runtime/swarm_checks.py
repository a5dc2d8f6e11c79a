"""doctor across hosts (issue #12): what a swarm stack needs from its nodes.

One global job (a task on every active node) answers for each node at once: whether the node has the
image (a task rejected with "No such image" says it lacks it), whether its clock agrees with this
machine's (heartbeats and the reaper compare times written on different nodes), and whether it
reaches Redis on the data node over the overlay network (VXLAN between the hosts).  Nodes down or
drained come from the manager's node list.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ragctl.checks import Check
from ragctl.errors import RagctlError

if TYPE_CHECKING:
    from ragctl.runtime.swarm import SwarmRuntime

#: A node's clock further off than this (after the job's own latency) is reported.
CLOCK_SKEW_LIMIT_S = 10.0
NODE_PROBE = (
    "import json, os, socket, time\n"
    "t = time.time()\n"
    "try:\n"
    "    socket.create_connection(('redis', 6379), timeout=5).close(); reach = 'ok'\n"
    "except OSError as exc:\n"
    "    reach = str(exc)\n"
    "print(json.dumps({'node': os.environ.get('NODE'), 'time': t, 'redis': reach}))\n"
)


def swarm_checks(runtime: SwarmRuntime) -> list[Check]:
    try:
        nodes = runtime.nodes()
    except RagctlError as exc:
        return [Check("swarm", "fail", exc.message, hint=exc.hint)]
    checks = [_node_check(node) for node in nodes]
    data = [n for n in nodes if n.data]
    if len(data) != 1:
        checks.append(Check("data node", "fail", f"{len(data)} nodes carry ragctl.data=true (one must)",
                            hint="ragctl nodes label NODE data=true"))
    elif data[0].state != "ready":
        checks.append(Check("data node", "fail", f"{data[0].hostname}, which holds Postgres, Redis and Chroma, is "
                            f"{data[0].state}", "the stack cannot store or queue anything until it is back",
                            hint=f"bring {data[0].hostname}'s engine back (systemctl start docker on it)"))
    else:
        checks.append(Check("data node", "ok", f"{data[0].hostname} is ready"))
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
    image = f"{runtime.config.image}:{runtime.config.tag}"
    started = time.time()
    results = runtime.global_job(["python3", "-c", NODE_PROBE])
    finished = time.time()
    checks = []
    for result in results:
        node, error, report = result["node"], result["error"], result["output"]
        if "No such image" in error or "not found" in error.lower() and "image" in error.lower():
            checks.append(Check(f"image on {node}", "fail", f"{node} lacks {image}", error,
                                hint=f"on {node}: ragctl bundle load FILE   (or push to your registry: ragctl build "
                                "--push, with image = \"REGISTRY/ragctl\" under [stack])"))
            continue
        if report is None:
            checks.append(Check(f"node probe {node}", "warn", f"no answer from {node}: {error or 'the job did not run'}",
                                hint="ragctl nodes"))
            continue
        checks.append(Check(f"image on {node}", "ok", f"{image} runs on {node}"))
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
