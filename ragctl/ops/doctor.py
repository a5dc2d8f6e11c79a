"""``ragctl doctor``: the guide's troubleshooting section, automated; and the check library that
``ragctl health`` shares (health runs the checks here that read the stack's state).

Each check reports ok / warn / fail with its evidence, the cause it points to and the command that
fixes it.  A few fixes are safe to apply (start or restart one of this project's services, resume
intake left paused); ``--fix`` offers only those, as a numbered plan.  Everything else is printed
for the operator.  Checks speak only to the project's :class:`~ragctl.runtime.base.Runtime`.

After the fixes, verification waits for the affected services' own readiness (a restarted worker:
a Celery ping answered by a worker that consumes the ingest queue; ``up``: every service ready and
the workers answering), up to ``FIX_WAIT_S`` (``RAGCTL_DOCTOR_FIX_WAIT_S``), then diagnoses again;
what it waited for, and how long, is part of the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ragctl.checks import Check, disk_check, memory_check, threshold
from ragctl.errors import RagctlError
from ragctl.runtime import Runtime, runtime_for
from stack.names import INGEST_QUEUE, INGEST_TASK

STUCK_QUEUE_S = 300
#: Where ``health --deep`` puts its canary document (and removes it): empty, it is not listed.
CANARY_COLLECTION = "ragctl-canary"
#: How long verification after --fix waits for the fixed services to be ready (a slow worker boot).
FIX_WAIT_S = 180


class Observed:
    """What the checks read from the runtime, each read once and only when a check needs it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @cached_property
    def status(self):
        """The runtime's status; None when it cannot be read (no Docker engine): the environment
        checks say why, and the checks of a running stack are skipped."""
        try:
            return self.runtime.status()
        except RagctlError as exc:
            self.status_error = exc
            return None

    @property
    def running(self) -> bool:
        return self.status is not None and self.status.running

    @cached_property
    def settings(self):
        return self.runtime.client_settings()

    @cached_property
    def probe(self) -> dict[str, Any]:
        if self.status is None:
            return {"error": self.status_error.message}
        return self.runtime.probe()


# -- checks on the host --------------------------------------------------------------------------
def check_host(seen: Observed) -> list[Check]:
    root = seen.runtime.root
    return [disk_check("project disk", root if root.exists() else Path("/")), *memory_check()]


def check_environment(seen: Observed) -> list[Check]:
    return seen.runtime.environment_checks(running=seen.running)


# -- checks on the stack's state (health runs these) ----------------------------------------------
def check_services(seen: Observed) -> list[Check]:
    if not seen.runtime.has_services or seen.status is None:
        return []
    if not seen.running:
        return [Check("stack", "warn", f"the {seen.runtime.kind} stack is not running", "the stack is down",
                      seen.runtime.start_command, ("up", ""))]
    return seen.runtime.service_checks()


def check_redis(seen: Observed) -> list[Check]:
    if not seen.running:
        return []
    redis = seen.probe.get("redis") or {}
    if redis.get("ok"):
        aof, paused = redis.get("aof_enabled"), redis.get("intake_paused")
        return [
            Check("redis connection", "ok", f"ping in {redis['ms']} ms", data=redis),
            Check("redis aof", "ok" if aof else "fail", f"aof_enabled={int(bool(aof))}",
                  None if aof else "appendonly is off: queued tasks are lost when Redis restarts",
                  None if aof else "ragctl render && ragctl restart redis   (redis.conf has appendonly yes)"),
            Check("intake", "fail" if paused else "ok",
                  f"uploads are refused with 503: paused for {paused}" if paused else "uploads accepted",
                  "a backup paused intake and the workers, and did not resume (it expires by itself within the "
                  "hour)" if paused else None,
                  "ragctl doctor --fix   (resumes intake and the workers)" if paused else None,
                  ("resume", "") if paused else None),
        ]
    error = redis.get("error") or seen.probe.get("error", "no answer")
    cause, fix, action = seen.runtime.diagnose_redis(seen.probe)
    return [Check("redis connection", "fail", f"Connection refused or timed out: {error}", cause, fix, action)]


def check_tasks(seen: Observed) -> list[Check]:
    """The guide's "tasks stuck in PENDING": Celery reports PENDING for any id it does not know."""
    if not seen.running or not (seen.probe.get("redis") or {}).get("ok"):
        return []
    celery, queue = seen.probe.get("celery") or {}, seen.probe.get("queue") or {}
    scale = seen.runtime.more_workers_command
    if not celery.get("ok"):
        return [Check("pending tasks", "fail", celery.get("error", "no answer"), "Celery cannot be asked",
                      "ragctl logs worker")]
    checks = []
    workers = celery["workers"]
    if not workers:
        checks.append(Check("workers", "fail", "no worker answers a Celery ping", "no workers: tasks stay PENDING",
                            f"{scale}   (then ragctl logs worker)", ("restart", "worker"), celery))
    else:
        checks.append(Check("workers", "ok", f"{len(workers)} answer ping: {', '.join(workers)}", data=celery))
        if not celery["consuming_ingest"]:
            checks.append(Check("worker queues", "fail", f"no worker consumes the {INGEST_QUEUE!r} queue",
                                "workers listen on other queues (-Q) or were paused (a backup that died)",
                                "ragctl restart worker", ("restart", "worker")))
        lacking = [w for w in celery["consuming_ingest"] if INGEST_TASK not in celery["registered_by"].get(w, [])]
        if lacking:
            checks.append(Check("task registered", "fail", f"{INGEST_TASK} is not registered on "
                                f"{', '.join(lacking)}, which consume{'s' if len(lacking) == 1 else ''} the "
                                f"{INGEST_QUEUE!r} queue", "a worker runs other code (an old image, or another "
                                "app on the same Redis and queue): it takes tasks it cannot run",
                                "ragctl build && ragctl up   (and stop any worker that is not ragctl's)"))
    no_backend = sorted(w for w, backend in celery.get("backends", {}).items()
                        if not backend or backend in ("disabled", "None"))
    if no_backend:
        checks.append(Check("result backend", "fail", f"no result backend on {', '.join(no_backend)}",
                            "results go nowhere: their tasks look PENDING forever",
                            "ragctl up   (ragctl's workers use Redis as the backend; stop foreign workers)"))
    age = queue.get("oldest_queued_age_s")
    depth = (seen.probe.get("redis") or {}).get("queue_depth")
    summary = (f"{depth if depth is not None else '?'} messages, {queue.get('queued', 0)} documents queued"
               + (f", oldest {age:.0f} s ago" if age is not None else ""))
    if age is not None and age > threshold("STUCK_QUEUE_S", STUCK_QUEUE_S):
        checks.append(Check("queue age", "fail" if not workers else "warn", summary,
                            "tasks wait: no workers, too few, or a long document ahead", scale, data=queue))
    elif not any(c.status == "fail" for c in checks):
        checks.append(Check("pending tasks", "ok", summary, data=queue))
    return checks


def check_api(seen: Observed) -> list[Check]:
    if not seen.running:
        return []
    import httpx

    url = seen.status.api_url
    if url is None:
        return [Check("api reachable", "fail", "no published port for the API or Nginx",
                      "the port mapping is missing (api or nginx not running, or not published)",
                      "ragctl restart api", ("restart", "api"))]
    try:
        response = httpx.get(f"{url}/api/health", timeout=10)
        if response.status_code == 200:
            return [Check("api reachable", "ok", f"{url}/api/health answered 200")]
        evidence = f"{url}/api/health answered {response.status_code}"
    except httpx.HTTPError as exc:
        evidence = f"{url} does not answer: {exc}"
    errors = seen.runtime.recent_errors("api")
    return [Check("api reachable", "fail", evidence + ("; recent errors: " + " | ".join(errors) if errors else ""),
                  "the API process is down, hung, or its port mapping is wrong",
                  "ragctl restart api   (then ragctl logs api)", ("restart", "api"))]


def check_model(seen: Observed) -> list[Check]:
    chroma = seen.probe.get("chroma") or {}
    if not chroma.get("ok"):
        if seen.running:
            return [Check("chroma", "fail", chroma.get("error") or seen.probe.get("error", "no answer"),
                          "the Chroma server is down", "ragctl restart chroma", ("restart", "chroma"))]
        return []
    configured = seen.settings.embed_model
    collections = {name: info for name, info in chroma["collections"].items()
                   if not (name == CANARY_COLLECTION and not info.get("count"))}
    timing = f" in {chroma['ms']} ms" if "ms" in chroma else ""
    plural = "" if len(collections) == 1 else "s"
    checks = [Check("chroma", "ok", f"answers{timing}; {len(collections)} collection{plural}", data=chroma)]
    for name, info in collections.items():
        stored = info.get("embed_model")
        if stored and stored != configured and "embed_model" not in seen.settings.model_fields_set:
            # The packaged default changed after this collection was built: it keeps working.
            checks.append(Check(f"model {name}", "warn", f"collection {name!r} is still embedded with {stored}; "
                                f"the default is now {configured}", "an earlier default model",
                                f"ragctl reindex -c {name}   (multilingual: better Korean answers)"))
        elif stored and stored != configured:
            checks.append(Check(f"model {name}", "fail", f"collection {name!r} holds vectors of {stored}; "
                                f"the configuration says {configured}", "the embedding model was changed",
                                f"ragctl reindex -c {name}   (or set embed_model = \"{stored}\" back)"))
        else:
            checks.append(Check(f"model {name}", "ok", f"{info['count']} vectors of {stored or configured}",
                                data=info))
    return checks


def check_gpu(seen: Observed) -> list[Check]:
    gpu = seen.probe.get("gpu") if seen.running else None
    if gpu is None:
        return []
    wanted = seen.runtime.gpu_wanted
    if not gpu.get("ok"):
        return [Check("gpu in worker", "fail" if wanted else "warn", gpu.get("error", "no answer"), data=gpu)]
    available = bool(gpu.get("cuda_available"))
    ok = available or not wanted
    return [Check("gpu in worker", "ok" if ok else "fail",
                  f"torch {gpu.get('torch')} (CUDA build {gpu.get('cuda_build')}) sees "
                  + (", ".join(gpu.get("devices") or []) if available else "no CUDA device")
                  + ("" if available else " but gpu = true" if wanted else " (CPU stack)"),
                  None if ok else "torch inside the worker cannot use CUDA (a CPU build, or no device passed in)",
                  None if ok else "ragctl build --torch cuda && ragctl up", data=gpu)]


#: health = the checks that read the running stack's state; doctor adds the host and environment.
STATE_CHECKS = (check_services, check_redis, check_tasks, check_api, check_model, check_gpu)
DOCTOR_CHECKS = (check_environment, check_host, *STATE_CHECKS)


def run_checks(seen: Observed, checks) -> list[Check]:
    results: list[Check] = []
    for check in checks:
        try:
            results += check(seen)
        except Exception as exc:  # noqa: BLE001 - a broken check is itself a finding
            results.append(Check(check.__name__.removeprefix("check_"), "warn",
                                 f"the check could not run: {type(exc).__name__}: {exc}"))
    return results


def diagnose(root: Path, *, runtime: Runtime | None = None) -> list[Check]:
    return run_checks(Observed(runtime or runtime_for(root)), DOCTOR_CHECKS)


def plan(findings: list[Check]) -> list[Check]:
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
        steps = [s for s in steps if s.name != "worker queues"]
    return steps


def apply(runtime: Runtime, step: Check) -> str:
    """Apply one safe step of the plan to the runtime; what was done, in words."""
    kind, service = step.action
    if kind == "resume":
        runtime.maintenance("resume")
    elif kind == "up":
        runtime.up()
    else:
        runtime.restart(service)
    return f"{kind} {service}".strip()


# -- verification after the fixes: wait for the services' own readiness ---------------------------
@dataclass
class Readiness:
    """One thing a fixed service shows when it is ready; ``missing`` says what is still not there
    (None when ready)."""

    what: str
    missing: Callable[[Observed], str | None]
    service: str = ""


@dataclass
class Waited:
    what: str
    ready: bool
    seconds: float
    deadline_s: float
    detail: str = ""
    service: str = ""

    def describe(self) -> str:
        if self.ready:
            return f"{self.what}: ready after {_seconds(self.seconds)}"
        return (f"{self.what}: not ready after waiting {_seconds(self.seconds)} (deadline "
                f"{_seconds(self.deadline_s)}, RAGCTL_DOCTOR_FIX_WAIT_S); last seen: {self.detail}")

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "ready": self.ready, "seconds": round(self.seconds, 1),
                "deadline_s": self.deadline_s, "detail": self.detail, "service": self.service}


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _matches(service: str, name: str) -> bool:
    """``worker`` names every worker of the local runtime (worker-1, worker-2…)."""
    return name == service or name.startswith(f"{service}-")


def _service_ready(service: str) -> Readiness:
    def missing(seen: Observed) -> str | None:
        if not seen.running:
            return "the stack is not running"
        chosen = [s for s in seen.status.services if _matches(service, s.name)]
        waiting = [s for s in chosen if not (s.ready or (s.ready is None and s.state in ("running", "healthy")))]
        return "; ".join(f"{s.name} is {s.summary()}" for s in waiting) or None

    return Readiness(f"service {service} running and ready", missing, service)


def _stack_ready(seen: Observed) -> str | None:
    if not seen.running:
        return "the stack is not running"
    waiting = [s for s in seen.status.services if not (s.ready or (s.ready is None and s.state in ("running",
                                                                                                   "healthy")))]
    return "; ".join(f"{s.name} is {s.summary()}" for s in waiting) or None


def _workers_answer(seen: Observed) -> str | None:
    celery = seen.probe.get("celery") or {}
    if not celery.get("ok"):
        return f"Celery cannot be asked: {celery.get('error') or seen.probe.get('error', 'no answer')}"
    if not celery.get("workers"):
        return "no worker answers a Celery ping"
    if not celery.get("consuming_ingest"):
        return f"{', '.join(celery['workers'])} answer, but none consumes the {INGEST_QUEUE!r} queue"
    return None


def _store_answers(part: str) -> Callable[[Observed], str | None]:
    def missing(seen: Observed) -> str | None:
        answer = seen.probe.get(part) or {}
        return None if answer.get("ok") else f"{part}: {answer.get('error') or seen.probe.get('error', 'no answer')}"

    return missing


def _api_answers(seen: Observed) -> str | None:
    import httpx

    url = seen.status.api_url if seen.running else None
    if url is None:
        return "no published port for the API"
    try:
        code = httpx.get(f"{url}/api/health", timeout=5).status_code
    except httpx.HTTPError as exc:
        return f"{url} does not answer: {exc}"
    return None if code == 200 else f"{url}/api/health answered {code}"


def _intake_resumed(seen: Observed) -> str | None:
    paused = (seen.probe.get("redis") or {}).get("intake_paused")
    return f"intake still paused for {paused}" if paused else _workers_answer(seen)


WORKERS_ANSWER = f"a Celery ping answered by a worker that consumes the {INGEST_QUEUE!r} queue"


def readiness_for(step: Check) -> list[Readiness]:
    """What the service a step fixed shows when it is ready again."""
    kind, service = step.action or ("", "")
    if kind == "up":
        return [Readiness("every service of the stack running and ready", _stack_ready),
                Readiness(WORKERS_ANSWER, _workers_answer, "worker")]
    if kind == "resume":
        return [Readiness(f"intake resumed and {WORKERS_ANSWER}", _intake_resumed, "worker")]
    if kind != "restart":
        return []
    own = {"redis": Readiness("Redis answering the services' ping", _store_answers("redis"), "redis"),
           "chroma": Readiness("Chroma answering the services", _store_answers("chroma"), "chroma"),
           "api": Readiness("the API answering /api/health", _api_answers, "api")}
    ready = [_service_ready(service)]
    if service == "worker" or service.startswith("worker-"):
        ready.append(Readiness(WORKERS_ANSWER, _workers_answer, service))
    elif service in own:
        ready.append(own[service])
    return ready


def wait_ready(runtime: Runtime, steps: list[Check], *, deadline_s: float | None = None, poll_s: float = 2.0,
               on_wait: Callable[[str, float], None] | None = None) -> list[Waited]:
    """Wait until what the applied ``steps`` fixed is ready, or the deadline passes: one status and
    one probe per round, shared by every readiness test.  ``on_wait(what, seconds)`` hears each round."""
    deadline = threshold("FIX_WAIT_S", FIX_WAIT_S) if deadline_s is None else deadline_s
    pending: dict[str, Readiness] = {}
    for step in steps:
        for ready in readiness_for(step):
            pending.setdefault(ready.what, ready)
    order = list(pending)
    done: dict[str, Waited] = {}
    last: dict[str, str] = {}
    started = time.monotonic()
    while pending:
        seen = Observed(runtime)
        elapsed = time.monotonic() - started
        for what, ready in list(pending.items()):
            try:
                missing = ready.missing(seen)
            except Exception as exc:  # noqa: BLE001 - a service that cannot be asked yet is not ready
                missing = f"{type(exc).__name__}: {exc}"
            if missing is None:
                done[what] = Waited(what, True, elapsed, deadline, service=ready.service)
                del pending[what]
            else:
                last[what] = missing
        elapsed = time.monotonic() - started
        if not pending or elapsed >= deadline:
            break
        if on_wait:
            on_wait(next(iter(pending)), elapsed)
        time.sleep(max(0.0, min(poll_s, deadline - elapsed)))
    for what, ready in pending.items():
        done[what] = Waited(what, False, time.monotonic() - started, deadline, last.get(what, ""), ready.service)
    return [done[what] for what in order]


@dataclass
class FixResult:
    applied: list[str]
    waited: list[Waited]
    findings: list[Check]

    @property
    def not_ready(self) -> list[Waited]:
        return [w for w in self.waited if not w.ready]


def fix(runtime: Runtime, steps: list[Check], *, deadline_s: float | None = None, poll_s: float = 2.0,
        rediagnose: Callable[[], list[Check]] | None = None,
        on_wait: Callable[[str, float], None] | None = None) -> FixResult:
    """Apply the plan, wait for what it fixed to be ready (with a deadline), then diagnose again."""
    applied, succeeded = [], []
    for step in steps:
        try:
            applied.append(apply(runtime, step))
            succeeded.append(step)
        except Exception as exc:  # noqa: BLE001 - reported, then the diagnosis is run again
            applied.append(f"{step.action[0]} {step.action[1]} failed: {exc}")
    waited = wait_ready(runtime, succeeded, deadline_s=deadline_s, poll_s=poll_s, on_wait=on_wait)
    findings = rediagnose() if rediagnose else diagnose(runtime.root, runtime=runtime)
    return FixResult(applied, waited, findings)
