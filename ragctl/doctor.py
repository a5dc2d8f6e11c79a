"""``ragctl doctor``: the guide's troubleshooting section, automated.

Each check reports ok / warn / fail with its evidence, the cause it points to and the command that
fixes it.  A few fixes are safe to apply (start or restart one of this project's services, resume
intake left paused); ``--fix`` offers only those, as a numbered plan.  Everything else is printed for the operator.

The checks read the same sources as ``ragctl health`` (Docker by label, the local runtime's state,
``stack.probe`` run where the services are), so a finding always names what it saw.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

GIB = 1 << 30
EXPECTED_REDIS_URL = "redis://redis:6379/0"  # what compose.yaml gives every service
STUCK_QUEUE_S = 300


def _limit(name: str, default: float) -> float:
    """Thresholds can be raised for a test or a big host (RAGCTL_DOCTOR_MIN_DISK_GB, …)."""
    return float(os.environ.get(f"RAGCTL_DOCTOR_{name}", default))


@dataclass
class Finding:
    check: str
    status: str  # ok | warn | fail
    evidence: str
    cause: str | None = None
    fix: str | None = None
    #: A safe fix ragctl can apply itself: ("restart", SERVICE), ("up", "") or ("resume", "") (intake).
    action: tuple[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = list(self.action) if self.action else None
        return data


class Context:
    """What the checks look at, each read once and only when a check needs it."""

    def __init__(self, root: Path) -> None:
        from ragctl.deploy import load_deploy_config
        from ragctl.project import project_runtime

        self.root = root
        self.runtime = project_runtime(root)
        self.config = load_deploy_config(root)

    @cached_property
    def settings(self):
        if self.runtime == "local":
            from ragctl.runtime.local import LocalRuntime

            return LocalRuntime(self.root).client_settings()
        from stack.settings import load_settings

        return load_settings(self.root)

    @cached_property
    def engine_error(self):
        from ragctl.engine import EngineUnavailable, engine

        try:
            self.client = engine(timeout_s=10)
            return None
        except EngineUnavailable as exc:
            return exc

    @cached_property
    def docker(self):
        from ragctl.runtime.docker import DockerRuntime

        return DockerRuntime(self.root)

    @cached_property
    def services(self):
        return self.docker.services(self.client)

    @cached_property
    def local_status(self):
        from ragctl.runtime.local import LocalRuntime

        return LocalRuntime(self.root).status()

    @cached_property
    def running(self) -> bool:
        if self.runtime == "docker":
            return self.engine_error is None and any(s.running for s in self.services)
        if self.runtime == "local":
            return self.local_status.running
        return False

    @cached_property
    def api_url(self) -> str | None:
        if not self.running:
            return None
        return self.docker.status().api_url if self.runtime == "docker" else self.local_status.api_url

    @cached_property
    def probe(self) -> dict[str, Any]:
        if self.runtime in ("docker", "local") and self.running:
            from ragctl.health import RunningStack

            return RunningStack(self.root).probe()
        from stack.probe import probe_chroma

        settings = self.settings.model_copy(update={"chroma_url": None})
        try:
            return {"chroma": {"ok": True, **probe_chroma(settings)}}
        except Exception as exc:  # noqa: BLE001 - reported by the checks
            return {"chroma": {"ok": False, "error": str(exc)}}


# -- checks ----------------------------------------------------------------------------------
def check_engine(ctx: Context) -> list[Finding]:
    if ctx.runtime != "docker":
        return []
    error = ctx.engine_error
    if error is None:
        return [Finding("docker engine", "ok", "the engine answers a ping")]
    denied = "Permission denied" in error.message
    return [Finding("docker socket" if denied else "docker engine", "fail", error.message,
                    "this user may not use the Docker socket" if denied else "the Docker engine is not running",
                    error.hint)]


def check_compose(ctx: Context) -> list[Finding]:
    if ctx.runtime != "docker":
        return []
    from ragctl.deploy import ComposeError, compose_command

    try:
        return [Finding("compose v2", "ok", " ".join(compose_command()))]
    except ComposeError as exc:
        return [Finding("compose v2", "fail", exc.message, "Compose v2 is not installed", exc.hint)]


def check_resources(ctx: Context) -> list[Finding]:
    findings = []
    places = [("project disk", ctx.root if ctx.root.exists() else Path("/"))]
    if ctx.runtime == "docker" and ctx.engine_error is None:
        places.append(("docker disk", Path(ctx.client.info().get("DockerRootDir") or "/var/lib/docker")))
    min_gb, warn_gb = _limit("MIN_DISK_GB", 2), _limit("WARN_DISK_GB", 10)
    for name, path in places:
        free = shutil.disk_usage(path if path.exists() else Path("/")).free / GIB
        status = "fail" if free < min_gb else "warn" if free < warn_gb else "ok"
        findings.append(Finding(name, status, f"{free:.1f} GiB free on {path}",
                                None if status == "ok" else "low disk: uploads, vectors and the AOF stop growing",
                                None if status == "ok" else "free space (docker image prune, old backups/)"))
    match = re.search(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text()) if Path("/proc/meminfo").exists() \
        else None
    if match:
        available = int(match.group(1)) * 1024 / GIB
        status = "fail" if available < _limit("MIN_MEMORY_GB", 1) else "warn" if available < 2 else "ok"
        findings.append(Finding("memory", status, f"{available:.1f} GiB available",
                                None if status == "ok" else "low memory: workers get killed loading the model",
                                None if status == "ok" else "stop other work, or lower workers / worker_memory"))
    return findings


def check_ports(ctx: Context) -> list[Finding]:
    if ctx.runtime != "docker" or ctx.engine_error is not None or ctx.running:
        return []  # a running stack holds its own ports; the local runtime picks free ones
    from ragctl.runtime.docker import DockerRuntime

    findings = []
    for check in DockerRuntime(ctx.root).port_checks(ctx.client):
        findings.append(Finding(check.name, check.status, check.detail,
                                None if check.status == "ok" else "another program holds a port the stack publishes",
                                check.hint))
    return findings


def check_services(ctx: Context) -> list[Finding]:
    findings = []
    if ctx.runtime == "docker" and ctx.engine_error is None:
        if not ctx.running:
            return [Finding("stack", "warn", f"no container of {ctx.docker.name} runs", "the stack is down",
                            "ragctl up", ("up", ""))]
        for service in ctx.services:
            if service.wanted == 0 and not service.containers:
                continue
            if service.ready:
                findings.append(Finding(f"service {service.service}", "ok", f"{service.state}, "
                                        f"{service.running}/{service.wanted}"))
                continue
            exits = [f"{c.name} exited {c.exit_code}" for c in service.containers if c.exit_code is not None]
            findings.append(Finding(
                f"service {service.service}", "fail",
                f"{service.state}, {service.running}/{service.wanted} running" + (f"; {', '.join(exits)}" if exits else ""),
                "the service is down or failing its healthcheck",
                f"ragctl restart {service.service}   (then ragctl logs {service.service})",
                ("up", "") if not service.containers else ("restart", service.service)))
        for service in ctx.services:
            for container in service.containers:
                attrs = ctx.client.containers.get(container.name).attrs["State"]
                if attrs.get("OOMKilled") or (container.exit_code == 137 and service.service == "worker"):
                    findings.append(Finding(
                        f"oom {container.name}", "fail", f"{container.name}: OOMKilled={attrs.get('OOMKilled')}, "
                        f"exit {attrs.get('ExitCode')}", "the container was killed for memory (its limit: "
                        f"{ctx.config.worker_memory if service.service == 'worker' else ctx.config.api_memory})",
                        f"raise {service.service}_memory under [stack] in ragctl.toml, then ragctl up"))
    elif ctx.runtime == "local":
        if not ctx.running:
            return [Finding("stack", "warn", "the local stack is not running", "the stack is down",
                            "ragctl up --runtime local", ("up", ""))]
        for service in ctx.local_status.services:
            ok = service.state == "running"
            findings.append(Finding(f"service {service.name}", "ok" if ok else "fail",
                                    f"{service.state}, pid {service.pid}, {service.restarts} restarts",
                                    None if ok else "the process is down or restarting",
                                    None if ok else f"ragctl restart {service.name}",
                                    None if ok else ("restart", service.name)))
    return findings


def check_redis(ctx: Context) -> list[Finding]:
    if not ctx.running:
        return []
    redis = ctx.probe.get("redis") or {}
    if redis.get("ok"):
        findings = [Finding("redis connection", "ok", f"ping in {redis['ms']} ms")]
        aof = redis.get("aof_enabled")
        findings.append(Finding("redis aof", "ok" if aof else "fail", f"aof_enabled={int(bool(aof))}",
                                None if aof else "appendonly is off: queued tasks are lost when Redis restarts",
                                None if aof else "ragctl render && ragctl restart redis   (redis.conf has "
                                "appendonly yes)"))
        paused = redis.get("intake_paused")
        findings.append(Finding("intake", "fail" if paused else "ok",
                                f"uploads are refused with 503: paused for {paused}" if paused else "uploads accepted",
                                "a backup paused intake and the workers, and did not resume (it expires by itself "
                                "within the hour)" if paused else None,
                                "ragctl doctor --fix   (resumes intake and the workers)" if paused else None,
                                ("resume", "") if paused else None))
        return findings
    error = redis.get("error") or ctx.probe.get("error", "no answer")
    cause, fix, action = "Redis is unreachable", "ragctl restart redis", ("restart", "redis")
    if ctx.runtime == "docker":
        states = {s.service: s for s in ctx.services}
        client_service = ctx.probe.get("probed_in", "worker")
        env = _container_env(ctx, client_service)
        if not states.get("redis") or not states["redis"].running:
            cause = "the redis service is down"
        elif env.get("REDIS_URL", EXPECTED_REDIS_URL) != EXPECTED_REDIS_URL:
            cause = (f"REDIS_URL is {env['REDIS_URL']!r} in the {client_service} container, not the redis service "
                     f"({EXPECTED_REDIS_URL})")
            fix, action = "ragctl render && ragctl up   (compose.yaml was edited, or .env overrides REDIS_URL)", None
        elif not _same_network(ctx, client_service, "redis"):
            cause = f"the {client_service} containers and Redis are not on the same network (rag-network)"
            fix, action = "ragctl down && ragctl up", None
        else:
            cause = "Redis is up but does not answer (overloaded, paused or still loading)"
    return [Finding("redis connection", "fail", f"Connection refused or timed out: {error}", cause, fix, action)]


def _container_env(ctx: Context, service: str) -> dict[str, str]:
    from ragctl.runtime.docker import SERVICE_LABEL

    for container in ctx.docker.containers(ctx.client):
        if container.labels.get(SERVICE_LABEL) == service:
            return dict(item.split("=", 1) for item in container.attrs["Config"].get("Env") or [] if "=" in item)
    return {}


def _same_network(ctx: Context, a: str, b: str) -> bool:
    from ragctl.runtime.docker import SERVICE_LABEL

    networks = {}
    for container in ctx.docker.containers(ctx.client):
        service = container.labels.get(SERVICE_LABEL)
        if service in (a, b) and container.status == "running":
            networks.setdefault(service, set()).update(container.attrs["NetworkSettings"]["Networks"])
    return bool(networks.get(a, set()) & networks.get(b, set()))


def check_tasks(ctx: Context) -> list[Finding]:
    """The guide's "tasks stuck in PENDING": Celery reports PENDING for any id it does not know."""
    if not ctx.running or not (ctx.probe.get("redis") or {}).get("ok"):
        return []
    from stack.worker.app import INGEST_QUEUE, INGEST_TASK

    celery, queue = ctx.probe.get("celery") or {}, ctx.probe.get("queue") or {}
    scale = "ragctl scale worker=2" if ctx.runtime == "docker" else "ragctl restart worker"
    if not celery.get("ok"):
        return [Finding("pending tasks", "fail", celery.get("error", "no answer"), "Celery cannot be asked",
                        "ragctl logs worker")]
    findings = []
    workers = celery["workers"]
    if not workers:
        findings.append(Finding("workers", "fail", "no worker answers a Celery ping", "no workers: tasks stay PENDING",
                                f"{scale}   (then ragctl logs worker)", ("restart", "worker")))
    else:
        findings.append(Finding("workers", "ok", f"{len(workers)} answer ping"))
        if not celery["consuming_ingest"]:
            findings.append(Finding("worker queues", "fail", f"no worker consumes the {INGEST_QUEUE!r} queue",
                                    "workers listen on other queues (-Q) or were paused (a backup that died)",
                                    "ragctl restart worker", ("restart", "worker")))
        lacking = [w for w in celery["consuming_ingest"] if INGEST_TASK not in celery["registered_by"].get(w, [])]
        if lacking:
            findings.append(Finding("task registered", "fail", f"{INGEST_TASK} is not registered on "
                                    f"{', '.join(lacking)}, which consume{'s' if len(lacking) == 1 else ''} the "
                                    f"{INGEST_QUEUE!r} queue", "a worker runs other code (an old image, or another "
                                    "app on the same Redis and queue): it takes tasks it cannot run",
                                    "ragctl build && ragctl up   (and stop any worker that is not ragctl's)"))
    no_backend = sorted(w for w, backend in celery.get("backends", {}).items()
                        if not backend or backend in ("disabled", "None"))
    if no_backend:
        findings.append(Finding("result backend", "fail", f"no result backend on {', '.join(no_backend)}",
                                "results go nowhere: their tasks look PENDING forever",
                                "ragctl up   (ragctl's workers use Redis as the backend; stop foreign workers)"))
    age = queue.get("oldest_queued_age_s")
    if age is not None and age > _limit("STUCK_QUEUE_S", STUCK_QUEUE_S):
        findings.append(Finding("queue age", "fail" if not workers else "warn",
                                f"{queue['queued']} documents queued, the oldest {age:.0f} s ago",
                                "tasks wait: no workers, too few, or a long document ahead", scale))
    elif not any(f.status == "fail" for f in findings):
        findings.append(Finding("pending tasks", "ok", f"{queue.get('queued', 0)} documents queued"))
    return findings


def check_api(ctx: Context) -> list[Finding]:
    if not ctx.running:
        return []
    import httpx

    url = ctx.api_url
    if url is None:
        return [Finding("api reachable", "fail", "no published port for the API or Nginx",
                        "the port mapping is missing (api or nginx not running, or not published)",
                        "ragctl restart api", ("restart", "api"))]
    try:
        response = httpx.get(f"{url}/api/health", timeout=10)
        if response.status_code == 200:
            return [Finding("api reachable", "ok", f"{url}/api/health answered 200")]
        evidence = f"{url}/api/health answered {response.status_code}"
    except httpx.HTTPError as exc:
        evidence = f"{url} does not answer: {exc}"
    errors = []
    if ctx.runtime == "docker":
        errors = [line for line in ctx.docker.logs("api", lines=200) if "Traceback" in line or "ERROR" in line][-5:]
    else:
        log = ctx.root / "logs" / "api.log"
        if log.is_file():
            errors = [line for line in log.read_text(errors="replace").splitlines()
                      if "Traceback" in line or "ERROR" in line][-5:]
    return [Finding("api reachable", "fail", evidence + ("; recent errors: " + " | ".join(errors) if errors else ""),
                    "the API process is down, hung, or its port mapping is wrong",
                    "ragctl restart api   (then ragctl logs api)", ("restart", "api"))]


def check_upload_limit(ctx: Context) -> list[Finding]:
    if ctx.runtime != "docker" or not ctx.config.nginx or not (ctx.root / "nginx.conf").is_file():
        return []
    match = re.search(r"client_max_body_size\s+(\d+)m;", (ctx.root / "nginx.conf").read_text())
    nginx_mb = int(match.group(1)) if match else None
    api_mb = ctx.settings.max_upload_mb
    if nginx_mb == api_mb + 1:
        return [Finding("upload limit", "ok", f"nginx {nginx_mb}m = API {api_mb} MB + multipart")]
    return [Finding("upload limit", "fail", f"nginx.conf client_max_body_size {nginx_mb}m, API RAG_MAX_UPLOAD_MB "
                    f"{api_mb}", "Nginx and the API disagree: uploads fail with 413 from one of them",
                    "ragctl render && ragctl restart nginx")]


def check_model(ctx: Context) -> list[Finding]:
    chroma = ctx.probe.get("chroma") or {}
    if not chroma.get("ok"):
        if ctx.running:
            return [Finding("chroma", "fail", chroma.get("error", "no answer"), "the Chroma server is down",
                            "ragctl restart chroma", ("restart", "chroma"))]
        return []
    configured = ctx.settings.embed_model
    findings = []
    for name, info in chroma["collections"].items():
        stored = info.get("embed_model")
        if stored and stored != configured and "embed_model" not in ctx.settings.model_fields_set:
            # The packaged default changed after this collection was built: it keeps working.
            findings.append(Finding(f"model {name}", "warn", f"collection {name!r} is still embedded with "
                                    f"{stored}; the default is now {configured}", "an earlier default model",
                                    f"ragctl reindex -c {name}   (multilingual: better Korean answers)"))
        elif stored and stored != configured:
            findings.append(Finding(f"model {name}", "fail", f"collection {name!r} holds vectors of {stored}; "
                                    f"the configuration says {configured}", "the embedding model was changed",
                                    f"ragctl reindex -c {name}   (or set embed_model = \"{stored}\" back)"))
        else:
            findings.append(Finding(f"model {name}", "ok", f"{info['count']} vectors of {stored or configured}"))
    return findings


def check_gpu(ctx: Context) -> list[Finding]:
    if ctx.runtime != "docker" or not ctx.config.gpu:
        return []
    findings = []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        findings.append(Finding("gpu driver", "fail", "nvidia-smi is not on this host", "no NVIDIA driver on the host",
                                "install the NVIDIA driver for your GPU (nvidia-smi must list it)"))
    else:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
        findings.append(Finding("gpu driver", "ok" if out.returncode == 0 else "fail",
                                (out.stdout or out.stderr).strip()[:300],
                                None if out.returncode == 0 else "the driver does not see a GPU",
                                None if out.returncode == 0 else "check the driver: nvidia-smi"))
    if ctx.engine_error is None:
        runtimes = set(ctx.client.info().get("Runtimes") or {})
        findings.append(Finding("gpu container runtime", "ok" if "nvidia" in runtimes else "fail",
                                f"engine runtimes: {', '.join(sorted(runtimes))}",
                                None if "nvidia" in runtimes else "the NVIDIA container toolkit is not configured",
                                None if "nvidia" in runtimes else "install nvidia-container-toolkit; nvidia-ctk runtime "
                                "configure --runtime=docker; systemctl restart docker"))
    compose = (ctx.root / "compose.yaml").read_text() if (ctx.root / "compose.yaml").is_file() else ""
    reserved = "capabilities: [gpu]" in compose
    findings.append(Finding("gpu reservation", "ok" if reserved else "fail",
                            "compose.yaml reserves GPUs for the workers" if reserved else
                            "compose.yaml has no GPU device reservation", None if reserved else
                            "compose.yaml was rendered before gpu = true", None if reserved else "ragctl render && ragctl up"))
    gpu = ctx.probe.get("gpu") if ctx.running else None
    if gpu is not None:
        ok = bool(gpu.get("ok") and gpu.get("cuda_available"))
        findings.append(Finding("gpu in worker", "ok" if ok else "fail",
                                f"torch {gpu.get('torch')} (CUDA build {gpu.get('cuda_build')}): cuda_available="
                                f"{gpu.get('cuda_available')}", None if ok else
                                "torch inside the worker cannot use CUDA (a CPU build, or no device passed in)",
                                None if ok else "ragctl build --torch cuda && ragctl up"))
    return findings


CHECKS = (check_engine, check_compose, check_resources, check_ports, check_services, check_redis, check_tasks,
          check_api, check_upload_limit, check_model, check_gpu)


def diagnose(root: Path) -> list[Finding]:
    ctx = Context(root)
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings += check(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken check is itself a finding
            findings.append(Finding(check.__name__.removeprefix("check_"), "warn",
                                    f"the check could not run: {type(exc).__name__}: {exc}"))
    return findings


def plan(findings: list[Finding]) -> list[Finding]:
    """The safe fixes, one per service, in the order found."""
    seen, steps = set(), []
    for finding in findings:
        wanted = finding.status == "fail" or (finding.status == "warn" and finding.action == ("up", ""))
        if wanted and finding.action and finding.action not in seen:
            seen.add(finding.action)
            steps.append(finding)
    if ("up", "") in seen:  # up starts every service: restarts would be redundant
        steps = [s for s in steps if s.action == ("up", "")]
    if ("resume", "") in seen:  # resuming makes the workers consume the ingest queue again
        steps = [s for s in steps if s.check != "worker queues"]
    return steps


def apply(root: Path, step: Finding) -> str:
    from ragctl.project import project_runtime

    kind, service = step.action
    if kind == "resume":
        from ragctl.backup import Site

        Site(root).maintenance("resume")
        return "resume"
    if project_runtime(root) == "docker":
        from ragctl.runtime.docker import DockerRuntime

        runtime = DockerRuntime(root)
        if kind == "up":
            runtime.up(wait_s=300)
        else:
            runtime.restart(service)
    else:
        from ragctl.runtime.local import LocalRuntime

        runtime = LocalRuntime(root)
        if kind == "up":
            runtime.up(wait_s=120)
        else:
            runtime.restart(service)
    return f"{kind} {service}".strip()
