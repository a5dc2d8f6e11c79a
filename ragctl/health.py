"""``ragctl health``: the state of every part of a running stack, local or Docker, as checks.

The services' own view (Redis, Celery, Chroma, the queue, the GPU) comes from ``stack.probe``, run
where the services are: inside a worker container on Docker (Redis and Chroma are not published),
in-process against the local runtime's loopback ports.  The API, Flower and the ``--deep`` canary are
asked from here, the way a client would.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragctl.output import EXIT_NOT_RUNNING, RagctlError

STALE_QUEUE_S = 300
CANARY_TIMEOUT_S = 180


@dataclass
class HealthCheck:
    name: str
    status: str  # ok | warn | fail
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class HealthReport:
    project: str
    runtime: str
    api_url: str | None
    checks: list[HealthCheck]
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "runtime": self.runtime, "healthy": self.healthy, "api_url": self.api_url,
                "checks": [asdict(c) for c in self.checks], "probe": self.probe}


class NotRunning(RagctlError):
    code = "not_running"
    exit_code = EXIT_NOT_RUNNING


def _api_key(root: Path) -> str | None:
    from stack.settings import load_settings

    key = load_settings(root).api_key
    return key.get_secret_value() if key else None


class RunningStack:
    """What health needs from a runtime: service states, where the API is, and the probe."""

    def __init__(self, root: Path) -> None:
        from ragctl.project import project_runtime

        self.root = root
        self.runtime = project_runtime(root)
        if self.runtime == "docker":
            from ragctl.runtime.docker import DockerRuntime

            self.docker = DockerRuntime(root)
            self.status = self.docker.status()
            self.gpu_wanted = self.docker.config.gpu
        else:
            from ragctl.runtime.local import LocalRuntime

            self.local = LocalRuntime(root)
            self.status = self.local.status()
            self.runtime = "local"
            self.gpu_wanted = False
        if not self.status.running:
            raise NotRunning(f"The {self.runtime} stack of {root} is not running.", f"ragctl -p {root} up")

    def service_checks(self) -> list[HealthCheck]:
        checks = []
        if self.runtime == "docker":
            for service in self.status.services:
                if service.wanted == 0 and not service.containers:
                    continue
                status = "ok" if service.ready else "fail"
                checks.append(HealthCheck(f"service {service.service}", status,
                                          f"{service.state}, {service.running}/{service.wanted} running",
                                          {"containers": [asdict(c) for c in service.containers]}))
        else:
            for service in self.status.services:
                status = "ok" if service.state == "running" else "fail"
                checks.append(HealthCheck(f"service {service.name}", status,
                                          f"{service.state}, pid {service.pid}, restarts {service.restarts}"))
        return checks

    def probe(self) -> dict[str, Any]:
        if self.runtime == "docker":
            running = {s.service for s in self.status.services if s.running}
            where = "worker" if "worker" in running else "api"
            code, output = self.docker.exec(where, ["python", "-m", "stack.probe",
                                                    *([] if where == "worker" else ["--no-gpu"])], timeout_s=120)
            try:
                report = json.loads(output.strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                return {"error": f"the probe in {where} failed (exit {code}): {output[-500:]}"}
            report["probed_in"] = where
            return report
        from stack.probe import probe

        report = probe(self.local.client_settings(), gpu=True)
        report["probed_in"] = "ragctl (local runtime)"
        return report


def _probe_checks(report: dict[str, Any], *, gpu_wanted: bool) -> list[HealthCheck]:
    from stack.worker.app import INGEST_TASK

    if "error" in report:
        return [HealthCheck("probe", "fail", report["error"])]
    checks = []
    redis = report["redis"]
    if redis["ok"]:
        checks.append(HealthCheck("redis", "ok", f"ping in {redis['ms']} ms, AOF {'on' if redis['aof_enabled'] else 'OFF'}",
                                  redis))
        if not redis["aof_enabled"]:
            checks.append(HealthCheck("redis aof", "warn", "appendonly is off: queued tasks are lost on restart"))
    else:
        checks.append(HealthCheck("redis", "fail", redis["error"], redis))
    celery = report["celery"]
    if not celery["ok"]:
        checks.append(HealthCheck("celery", "fail", celery["error"], celery))
    else:
        workers = celery["workers"]
        checks.append(HealthCheck("celery workers", "ok" if workers else "fail",
                                  f"{len(workers)} answer ping" + (f": {', '.join(workers)}" if workers else
                                                                   " (tasks stay queued)"), celery))
        registered = INGEST_TASK in celery["registered"]
        checks.append(HealthCheck("celery tasks", "ok" if registered or not workers else "fail",
                                  f"{INGEST_TASK} registered" if registered else f"{INGEST_TASK} is not registered",
                                  {"registered": celery["registered"]}))
    queue = report["queue"]
    if queue["ok"]:
        age = queue["oldest_queued_age_s"]
        depth = redis.get("queue_depth") if redis["ok"] else None
        stale = age is not None and age > STALE_QUEUE_S
        checks.append(HealthCheck("queue", "warn" if stale else "ok",
                                  f"{depth if depth is not None else '?'} messages, {queue['queued']} documents queued"
                                  + (f", oldest {age:.0f} s ago" if age is not None else ""),
                                  queue | {"depth": depth}))
    else:
        checks.append(HealthCheck("queue", "warn", queue["error"], queue))
    chroma = report["chroma"]
    if chroma["ok"]:
        counts = ", ".join(f"{name}: {c['count']}" for name, c in chroma["collections"].items()) or "no collections"
        checks.append(HealthCheck("chroma", "ok", f"heartbeat in {chroma['ms']} ms; {counts}", chroma))
    else:
        checks.append(HealthCheck("chroma", "fail", chroma["error"], chroma))
    gpu = report.get("gpu")
    if gpu is not None:
        if not gpu["ok"]:
            checks.append(HealthCheck("gpu", "fail" if gpu_wanted else "warn", gpu["error"], gpu))
        elif gpu["cuda_available"]:
            checks.append(HealthCheck("gpu", "ok", f"torch {gpu['torch']} sees {', '.join(gpu['devices'])}", gpu))
        else:
            checks.append(HealthCheck("gpu", "fail" if gpu_wanted else "ok",
                                      f"torch {gpu['torch']} sees no CUDA device"
                                      + (" but gpu = true" if gpu_wanted else " (CPU stack)"), gpu))
    return checks


def _http_checks(api_url: str, key: str | None, flower_url: str | None, flower_auth: str | None) -> list[HealthCheck]:
    import httpx

    checks = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        started = time.monotonic()
        live = httpx.get(f"{api_url}/api/health", timeout=10)
        ms = (time.monotonic() - started) * 1000
        checks.append(HealthCheck("api live", "ok" if live.status_code == 200 else "fail",
                                  f"HTTP {live.status_code} in {ms:.0f} ms from {api_url}"))
        ready = httpx.get(f"{api_url}/api/health/ready", headers=headers, timeout=15)
        body = ready.json() if ready.headers.get("content-type", "").startswith("application/json") else {}
        checks.append(HealthCheck("api ready", "ok" if ready.status_code == 200 else "fail",
                                  f"HTTP {ready.status_code}" + (f": {body.get('failing')}" if body.get("failing")
                                                                  else ""), body))
    except httpx.HTTPError as exc:
        checks.append(HealthCheck("api live", "fail", f"{api_url} does not answer: {exc}"))
    if flower_url:
        auth = tuple(flower_auth.split(":", 1)) if flower_auth and ":" in flower_auth else None
        try:
            answer = httpx.get(f"{flower_url}/healthcheck", auth=auth, timeout=10)
            checks.append(HealthCheck("flower", "ok" if answer.status_code == 200 else "fail",
                                      f"HTTP {answer.status_code} from {flower_url}"))
        except httpx.HTTPError as exc:
            checks.append(HealthCheck("flower", "fail", f"{flower_url} does not answer: {exc}"))
    return checks


def canary(api_url: str, key: str | None, *, timeout_s: float = CANARY_TIMEOUT_S) -> HealthCheck:
    """Push a tiny document end to end, ask a question only it answers, then remove it."""
    from ragctl.stack_client import StackClient, StackError

    token = uuid.uuid4().hex[:12]
    client = StackClient(api_url, key, timeout_s=30)
    started = time.monotonic()
    path = Path(f"/tmp/ragctl-canary-{token}.md")
    path.write_text(f"# ragctl canary\n\nThe canary code word of this health check is {token}.\n", encoding="utf-8")
    document_id = None
    try:
        entry = client.upload(path, collection="ragctl-canary")
        document_id = entry["document_id"]
        final = client.wait([entry["task_id"]], lambda _record: None, timeout_s=timeout_s)[entry["task_id"]]
        if final.status != "done":
            return HealthCheck("canary", "fail", f"the canary document ended {final.status}: {final.error}")
        hits = client.search(f"canary code word {token}", collection="ragctl-canary", top_k=1)
        found = bool(hits) and token in hits[0].text
        seconds = time.monotonic() - started
        return HealthCheck("canary", "ok" if found else "fail",
                           f"ingested, found and removed in {seconds:.1f} s" if found else
                           "ingested, but a search for its code word did not find it", {"seconds": round(seconds, 2)})
    except StackError as exc:
        return HealthCheck("canary", "fail", f"{exc.code}: {exc.message}")
    finally:
        path.unlink(missing_ok=True)
        if document_id:
            try:
                client.delete_document(document_id, collection="ragctl-canary")
            except StackError:
                pass


def collect(root: Path, *, deep: bool = False) -> HealthReport:
    """Every check for the project's running stack.  Raises NotRunning when there is none."""
    from ragctl.deploy import project_name

    stack = RunningStack(root)
    api_url = stack.status.api_url
    key = _api_key(root)
    checks = stack.service_checks()
    report = stack.probe()
    checks += _probe_checks(report, gpu_wanted=stack.gpu_wanted)
    checks += _http_checks(api_url, key, stack.status.flower_url, stack.status.flower_auth)
    if deep:
        checks.append(canary(api_url, key))
    return HealthReport(project_name(root), stack.runtime, api_url, checks, report)
