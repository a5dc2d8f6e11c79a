"""One-shot tasks on the stack's network (a probe, ``stack.maintenance``, a check on every node), and
the Swarm secrets and configs they and the stack mount (created from .env under names that change
with their content)."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from ragctl.deploy import IMAGE_UID, LABEL_KEY, stack_swarm_objects
from ragctl.engine import docker_cli, engine
from ragctl.errors import DockerError, UsageError
from ragctl.runtime.swarm.nodes import list_nodes, node_names

if TYPE_CHECKING:
    from ragctl.runtime.swarm.runtime import SwarmRuntime

NAMESPACE_LABEL = "com.docker.stack.namespace"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
#: Task states that will not become running by waiting (the swarm gave up on the task).
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
#: How a one-shot task runs: a plain service whose tasks are never restarted, not a Swarm job
#: (replicated-job, global-job), whose ended task containers stay on the nodes after the service is
#: removed (moby/moby#42789); a plain service's go with it.
ONE_SHOT_MODES = {"replicated": ("--mode", "replicated", "--replicas", "1", "--restart-condition", "none"),
                  "global": ("--mode", "global", "--restart-condition", "none")}
#: The secrets a probe job mounts (the app services' own).
APP_SECRETS = ("REDIS_URL", "RAG_DATABASE_URL", "CHROMA_TOKEN")


def create_objects(runtime: SwarmRuntime) -> dict[str, Any]:
    """The secrets and configs the stack file names, created when missing."""
    from docker.errors import APIError

    client = engine()
    objects = stack_swarm_objects(runtime.root)
    have = {s.name for s in client.secrets.list(filters={"label": f"{LABEL_KEY}={runtime.name}"})}
    have |= {c.name for c in client.configs.list(filters={"label": f"{LABEL_KEY}={runtime.name}"})}
    created = []
    for item in objects.values():
        if item.name in have:
            continue
        if not item.data:
            raise UsageError(f"The {item.key} secret would be empty.", "ragctl render   (makes the certificate)")
        labels = {LABEL_KEY: runtime.name, NAMESPACE_LABEL: runtime.name}
        try:
            if item.kind == "config":
                client.configs.create(name=item.name, data=item.data, labels=labels)
            else:
                client.secrets.create(name=item.name, data=item.data, labels=labels)
        except APIError as exc:
            if exc.status_code != 409:  # made meanwhile by another ragctl: the same content
                raise DockerError(f"Could not create the swarm {item.kind} {item.name}.", stderr=str(exc),
                                  hint="ragctl doctor") from exc
        created.append(item.name)
    return {"created": created, "names": {k: o.name for k, o in objects.items()}}


def prune_objects(runtime: SwarmRuntime, keep: set[str]) -> list[str]:
    """Remove this stack's secrets and configs that the deployed stack no longer names (one still in
    use, by a task being replaced, stays for the next up)."""
    from docker.errors import APIError

    client = engine()
    removed = []
    found = [*client.secrets.list(filters={"label": f"{LABEL_KEY}={runtime.name}"}),
             *client.configs.list(filters={"label": f"{LABEL_KEY}={runtime.name}"})]
    for item in found:
        if item.name not in keep:
            try:
                item.remove()
                removed.append(item.name)
            except APIError:
                pass
    return removed


def job(runtime: SwarmRuntime, command: list[str], *, timeout_s: float = 180, secrets: tuple[str, ...] = APP_SECRETS,
        constraint: str | None = None) -> tuple[int, str]:
    """Run ``command`` once (one task, never restarted) on the stack's data network, with the app
    services' environment and secrets, wherever the swarm places it; (exit code, output)."""
    config = runtime.config
    objects = create_objects(runtime)["names"]
    name = f"{runtime.name}_job-{uuid.uuid4().hex[:8]}"
    uid = config.uid or IMAGE_UID
    args = ["service", "create", "--name", name, *ONE_SHOT_MODES["replicated"],
            "--network", f"{runtime.name}_rag-network", "--label", f"{LABEL_KEY}={runtime.name}",
            "--container-label", f"{LABEL_KEY}={runtime.name}", "--user", f"{uid}:{config.gid or uid}",
            "--read-only", "--cap-drop", "ALL", "--mount", "type=tmpfs,destination=/tmp",
            "--env", "RAG_PROJECT_ROOT=/app/project", "--env", "RAG_SECRETS_DIR=/run/secrets",
            "--env", "RAG_DATA_DIR=/tmp/data", "--env", "RAG_EXTRACTED_DIR=/tmp/extracted_results",
            "--env", "RAG_LOGS_DIR=/tmp/logs", "--env", "HOME=/tmp", "--env", "CHROMA_URL=http://chroma:8000",
            "--env", "HF_HUB_OFFLINE=1", "--detach"]
    for key in secrets:
        args += ["--secret", f"source={objects[key]},target={key},uid={uid},gid={config.gid or uid},mode=0400"]
    if constraint:
        args += ["--constraint", constraint]
    args += [f"{config.image}:{config.tag}", *command]
    docker_cli(args, timeout_s=60)
    client = engine()
    deadline = time.monotonic() + timeout_s
    try:
        exit_code = None
        while time.monotonic() < deadline:
            ended = [t for t in client.services.get(name).tasks() if (t.get("Status") or {}).get("State") in ENDED]
            if ended:
                status = ended[0].get("Status") or {}
                exit_code = int((status.get("ContainerStatus") or {}).get("ExitCode") or
                                (0 if status.get("State") == "complete" else 1))
                break
            time.sleep(1.0)
        output = docker_cli(["service", "logs", "--raw", "--no-trunc", name], timeout_s=60, check=False)
        text = output.stdout + output.stderr
        if exit_code is None:
            raise DockerError(f"The job {' '.join(command[:4])} did not finish within {timeout_s:.0f} s.",
                              stderr=text[-2000:], hint="ragctl ps; ragctl nodes")
        return exit_code, text
    finally:
        docker_cli(["service", "rm", name], timeout_s=60, check=False)


def global_job(runtime: SwarmRuntime, command: list[str], *, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Run ``command`` once on every active node (one task a node, on the stack's network); for each
    node that got a task: {"node", "state", "error", "output" (its last JSON line, or None)}.
    The command prints one JSON object carrying ``"node"`` (NODE in its environment)."""
    config = runtime.config
    name = f"{runtime.name}_nodecheck-{uuid.uuid4().hex[:8]}"
    uid = config.uid or IMAGE_UID
    docker_cli(["service", "create", "--name", name, *ONE_SHOT_MODES["global"],
                "--network", f"{runtime.name}_rag-network", "--label", f"{LABEL_KEY}={runtime.name}",
                "--container-label", f"{LABEL_KEY}={runtime.name}", "--user", f"{uid}:{uid}", "--read-only",
                "--cap-drop", "ALL", "--env", "NODE={{.Node.Hostname}}", "--detach",
                f"{config.image}:{config.tag}", *command], timeout_s=60)
    client = engine()
    names = node_names(client)
    expected = [n for n in list_nodes(runtime) if n.state == "ready" and n.availability == "active"]
    tasks: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            tasks = client.services.get(name).tasks()
            if len(tasks) >= len(expected) and all((t.get("Status") or {}).get("State") in ENDED for t in tasks):
                break
            time.sleep(1.0)
        output = docker_cli(["service", "logs", "--raw", "--no-trunc", name], timeout_s=60, check=False).stdout
    finally:
        docker_cli(["service", "rm", name], timeout_s=60, check=False)
    reports = {}
    for line in output.splitlines():
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(report, dict) and report.get("node"):
            reports[report["node"]] = report
    found = []
    for task in tasks:
        node = names.get(task.get("NodeID", ""), task.get("NodeID", "?")[:12])
        status = task.get("Status") or {}
        found.append({"node": node, "state": status.get("State"), "error": status.get("Err") or "",
                      "output": reports.get(node)})
    seen = {f["node"] for f in found}
    found += [{"node": n.hostname, "state": None, "error": "no task ran there", "output": None}
              for n in expected if n.hostname not in seen]
    return found
