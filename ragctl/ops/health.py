"""``ragctl health``: the state of every part of a running stack, whatever its runtime, as checks.

The services' own view (Redis, Celery, Chroma, the queue, the GPU) comes from ``stack.probe`` run
where the services are (``Runtime.probe``), read by the same checks ``doctor`` runs.  The API,
Flower and the ``--deep`` canary are asked from here, the way a client would.
"""

from __future__ import annotations

import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.checks import Check
from ragctl.ops.doctor import CANARY_COLLECTION, STATE_CHECKS, Observed, run_checks
from ragctl.runtime import Runtime, runtime_for
from ragctl.runtime.base import require_running
from ragctl.runtime.capabilities import api_verify, client_settings

CANARY_TIMEOUT_S = 180


@dataclass
class HealthReport:
    project: str
    runtime: str
    api_url: str | None
    checks: list[Check]
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "runtime": self.runtime, "healthy": self.healthy, "api_url": self.api_url,
                "checks": [c.to_dict() for c in self.checks], "probe": self.probe}


def _api_key(runtime: Runtime) -> str | None:
    key = client_settings(runtime).api_key
    return key.get_secret_value() if key else None


def _http_checks(api_url: str, key: str | None, flower_url: str | None, flower_auth: str | None,
                 verify: ssl.SSLContext | bool = True) -> list[Check]:
    import httpx

    checks = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        started = time.monotonic()
        live = httpx.get(f"{api_url}/api/health", timeout=10, verify=verify)
        ms = (time.monotonic() - started) * 1000
        checks.append(Check("api live", "ok" if live.status_code == 200 else "fail",
                                  f"HTTP {live.status_code} in {ms:.0f} ms from {api_url}"))
        ready = httpx.get(f"{api_url}/api/health/ready", headers=headers, timeout=15, verify=verify)
        body = ready.json() if ready.headers.get("content-type", "").startswith("application/json") else {}
        checks.append(Check("api ready", "ok" if ready.status_code == 200 else "fail",
                                  f"HTTP {ready.status_code}" + (f": {body.get('failing')}" if body.get("failing")
                                                            else ""), data=body))
    except httpx.HTTPError as exc:
        checks.append(Check("api live", "fail", f"{api_url} does not answer: {exc}"))
    if flower_url:
        auth = tuple(flower_auth.split(":", 1)) if flower_auth and ":" in flower_auth else None
        try:
            answer = httpx.get(f"{flower_url}/healthcheck", auth=auth, timeout=10)
            checks.append(Check("flower", "ok" if answer.status_code == 200 else "fail",
                                      f"HTTP {answer.status_code} from {flower_url}"))
        except httpx.HTTPError as exc:
            checks.append(Check("flower", "fail", f"{flower_url} does not answer: {exc}"))
    return checks


def canary(api_url: str, key: str | None, *, timeout_s: float = CANARY_TIMEOUT_S, client=None,
           verify: ssl.SSLContext | bool = True) -> Check:
    """Push a tiny document end to end, ask a question only it answers, then remove it: the document,
    its vectors and lexical entries go, and the emptied canary collection is not listed by doctor."""
    from ragctl.client import StackClient, StackError

    token = uuid.uuid4().hex[:12]
    client = client or StackClient(api_url, key, timeout_s=30, verify=verify)
    started = time.monotonic()
    path = Path(tempfile.gettempdir()) / f"ragctl-canary-{token}.md"
    path.write_text(f"# ragctl canary\n\nThe canary code word of this health check is {token}.\n", encoding="utf-8")
    document_id = None
    try:
        entry = client.upload(path, collection=CANARY_COLLECTION)
        document_id = entry["document_id"]
        final = client.wait([entry["task_id"]], lambda _record: None, timeout_s=timeout_s)[entry["task_id"]]
        if final.status != "done":
            check = Check("canary", "fail", f"the canary document ended {final.status}: {final.error}")
        else:
            hits = client.search(f"canary code word {token}", collection=CANARY_COLLECTION, top_k=1)
            found = bool(hits) and token in hits[0].text
            seconds = time.monotonic() - started
            check = Check("canary", "ok" if found else "fail",
                          f"ingested, found and removed in {seconds:.1f} s" if found else
                          "ingested, but a search for its code word did not find it",
                          data={"seconds": round(seconds, 2)})
    except StackError as exc:
        check = Check("canary", "fail", f"{exc.code}: {exc.message}")
    finally:
        path.unlink(missing_ok=True)
    left = _remove_canary(client, document_id) if document_id else None
    if left:
        check = Check("canary", "fail" if check.status == "fail" else "warn", f"{check.detail}; {left}",
                      "the canary could not clean up after itself",
                      f"ragctl documents delete {document_id[:12]} --collection {CANARY_COLLECTION} --yes",
                      data=check.data)
    return check


def _remove_canary(client, document_id: str) -> str | None:
    """Delete the canary document (a cancelled or failed one too), and check that it is gone; what
    was left behind, or None."""
    from ragctl.client import StackError

    try:
        client.delete_document(document_id, collection=CANARY_COLLECTION)
    except StackError as exc:
        if exc.code != "not_found":
            return f"its document {document_id[:12]} was left in {CANARY_COLLECTION!r}: {exc.message}"
    try:
        left = [r.id for r in client.documents(collection=CANARY_COLLECTION) if r.id == document_id]
    except StackError:
        return None  # the listing is not the canary's verdict
    return f"its document {document_id[:12]} is still listed in {CANARY_COLLECTION!r}" if left else None


def collect(root: Path, *, deep: bool = False, runtime: Runtime | None = None) -> HealthReport:
    """Every check for the project's running stack.  Raises NotRunning when there is none."""
    runtime = runtime or runtime_for(root)
    status = require_running(runtime)
    seen = Observed(runtime)
    seen.status = status
    key = _api_key(runtime)
    checks = [c for c in run_checks(seen, STATE_CHECKS) if c.name != "api reachable"]
    verify = api_verify(runtime)
    checks += _http_checks(status.api_url, key, status.flower_url, status.flower_auth, verify)
    if deep:
        checks.append(canary(status.api_url, key, verify=verify))
    return HealthReport(runtime.project_config.name, runtime.kind, status.api_url, checks, seen.probe)
