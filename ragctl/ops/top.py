"""``ragctl top``: a live view of a running stack, from the API's own ``/metrics``.

Three parts, each usable alone:

- :func:`snapshot` turns the Prometheus text of ``/metrics`` into a :class:`TopSnapshot` (pure: no
  I/O), so the view shows exactly the numbers a Prometheus scraping the same page sees;
- :func:`render` turns a snapshot into a rich renderable (every string from the stack, such as file
  names and error messages, is a ``Text``: ``[bold]`` in a name is printed as it is);
- :func:`watch` is the loop: one scrape a second into ``rich.live.Live``, keys read in cbreak mode
  (``q`` quits; so does Ctrl-C), the terminal restored on the way out.  A stack that stops
  answering is shown as such, and asked again every second.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from ragctl.views import cell, line
from stack.contract import RagError

#: The route whose requests are the view's own polling: left out of the API's p95 and request rate.
OWN_ROUTE = "/metrics"
#: The order stages and statuses are shown in (others follow, by name).
STATUS_ORDER = ("queued", "parsing", "chunking", "embedding", "storing", "done", "failed", "cancelled")
REFRESH_S = 1.0


@dataclass
class HeldDocument:
    collection: str
    document: str
    name: str
    stage: str
    started: float  # Unix time the worker took it


@dataclass
class WorkerRow:
    name: str
    host: str
    heartbeat_at: float
    chunks_per_s: float
    chunks_total: float
    documents: list[HeldDocument] = field(default_factory=list)


@dataclass
class SyncRow:
    """A sync service (ragctl.toml [[sync]]), seen through its key: when it last called the API."""

    key: str
    collection: str
    last_call: float  # Unix time, to the minute; 0: never


@dataclass
class Failure:
    collection: str
    document: str
    name: str
    code: str
    message: str
    at: float


@dataclass
class TopSnapshot:
    taken_at: float
    #: None when /metrics had no queue figures: the API could not reach Redis.
    queue_depth: int | None
    oldest_queued_s: float
    documents: dict[str, int]
    workers: list[WorkerRow]
    failures: list[Failure]
    #: API requests (all routes but /metrics) since the API started, and their p95 latency.
    api_requests: int
    api_p95_s: float | None
    #: Requests per second since the previous snapshot (None for the first one).
    api_requests_per_s: float | None = None
    #: Bucket counts (upper bound → cumulative count), kept to compute the next rate.
    api_buckets: dict[float, float] = field(default_factory=dict, repr=False)
    syncs: list[SyncRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_buckets")
        return data


def _samples(metrics_text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative bucket counts (upper bound → count):
    linear within the bucket the rank falls in; the highest finite bound when it falls in +Inf."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def snapshot(metrics_text: str, previous: TopSnapshot | None = None, *, now: float | None = None) -> TopSnapshot:
    """The view's figures from the text of ``/metrics``; with ``previous``, also the request rate."""
    now = time.time() if now is None else now
    documents: dict[str, int] = {}
    workers: dict[str, WorkerRow] = {}
    failures: list[Failure] = []
    syncs: list[SyncRow] = []
    buckets: dict[float, float] = {}
    requests = 0.0
    queue_depth: int | None = None
    oldest = 0.0

    def worker(name: str) -> WorkerRow:
        return workers.setdefault(name, WorkerRow(name, "", 0.0, 0.0, 0.0))

    for name, labels, value in _samples(metrics_text):
        if name == "rag_documents":
            documents[labels["status"]] = int(value)
        elif name == "rag_queue_depth":
            queue_depth = int(value)
        elif name == "rag_queue_oldest_age_seconds":
            oldest = value
        elif name == "rag_worker_heartbeat_timestamp_seconds":
            row = worker(labels["worker"])
            row.host, row.heartbeat_at = labels.get("host", ""), value
        elif name == "rag_worker_chunks_per_second":
            worker(labels["worker"]).chunks_per_s = value
        elif name == "rag_worker_chunks_total":
            worker(labels["worker"]).chunks_total = value
        elif name == "rag_worker_document_started_timestamp_seconds":
            worker(labels["worker"]).documents.append(HeldDocument(
                labels.get("collection", ""), labels.get("document", ""), labels.get("name", ""),
                labels.get("stage", ""), value))
        elif name == "rag_recent_failure_timestamp_seconds":
            failures.append(Failure(labels.get("collection", ""), labels.get("document", ""), labels.get("name", ""),
                                    labels.get("code", ""), labels.get("message", ""), value))
        elif name == "rag_sync_last_call_timestamp_seconds":
            syncs.append(SyncRow(labels.get("key", ""), labels.get("collection", ""), value))
        elif name == "rag_api_request_seconds_bucket" and labels.get("route") != OWN_ROUTE:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name == "rag_api_request_seconds_count" and labels.get("route") != OWN_ROUTE:
            requests += value
    failures.sort(key=lambda f: f.at, reverse=True)
    rate = None
    if previous is not None and now > previous.taken_at:
        # A restarted API starts its counters again: no rate for that one step.
        rate = max(0.0, (requests - previous.api_requests) / (now - previous.taken_at)) \
            if requests >= previous.api_requests else None
    return TopSnapshot(
        taken_at=now, queue_depth=queue_depth, oldest_queued_s=oldest, documents=documents,
        workers=sorted(workers.values(), key=lambda w: w.name), failures=failures, api_requests=int(requests),
        api_p95_s=histogram_quantile(0.95, buckets), api_requests_per_s=rate, api_buckets=buckets,
        syncs=sorted(syncs, key=lambda s: s.key),
    )


# -- the view -----------------------------------------------------------------------------------------
def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


def _latency(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _statuses(counts: dict[str, int]) -> list[str]:
    known = [s for s in STATUS_ORDER if s in counts]
    return known + sorted(s for s in counts if s not in STATUS_ORDER)


def render(snap: TopSnapshot | None, *, source: str = "", problem: str | None = None, hint: str | None = None):
    """The view of one snapshot (``None`` with ``problem``: the stack did not answer)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.taken_at if snap else time.time()))
    header = line(("ragctl top", "bold"), "  ", (source, "cyan"), "  ", (stamp, "dim"),
                  ("   q or Ctrl-C quits", "dim"))
    parts: list[Any] = [header]
    if problem:
        parts.append(line(("stack down: ", "bold red"), (problem, "red")))
        parts.append(line(("retrying every second", "dim"), (f"   Next: {hint}" if hint else "", "dim")))
    if snap is None:
        return Group(*parts)
    now = snap.taken_at
    queue = Table.grid(padding=(0, 3))
    for _ in range(4):
        queue.add_column()
    depth = "–" if snap.queue_depth is None else str(snap.queue_depth)
    queue.add_row(line(("queue ", "bold"), depth),
                  line(("oldest queued ", "bold"), _age(snap.oldest_queued_s) if snap.queue_depth else "–"),
                  line(("API p95 ", "bold"), _latency(snap.api_p95_s)),
                  line(("requests ", "bold"), "–" if snap.api_requests_per_s is None
                       else f"{snap.api_requests_per_s:.1f}/s", (f"  ({snap.api_requests} in all)", "dim")))
    parts.append(queue)
    if snap.queue_depth is None:
        parts.append(line(("the API cannot reach Redis: no queue or worker figures", "yellow")))
    statuses = line(("documents ", "bold"))
    for status in _statuses(snap.documents):
        style = {"done": "green", "failed": "red", "cancelled": "yellow"}.get(status, "")
        statuses.append_text(line((status, style), f" {snap.documents[status]}   "))
    if not snap.documents:
        statuses.append("none yet", style="dim")
    parts.append(statuses)

    workers = Table(title="workers", title_justify="left", expand=False, show_edge=False)
    for column in ("worker", "host", "document", "stage", "for", "chunks/s", "chunks", "heartbeat"):
        workers.add_column(column, no_wrap=column not in ("document",), overflow="fold")
    for w in snap.workers:
        held = w.documents or [None]
        for i, doc in enumerate(held):
            first = i == 0
            workers.add_row(
                cell(w.name if first else ""), cell(w.host if first else "", "dim"),
                cell(doc.name or doc.document[:12] if doc else "idle", "" if doc else "dim"),
                cell(doc.stage if doc else ""), cell(_age(now - doc.started) if doc else ""),
                cell(f"{w.chunks_per_s:.1f}" if first else ""), cell(f"{w.chunks_total:.0f}" if first else ""),
                cell(f"{_age(now - w.heartbeat_at)} ago" if first else "", "dim"),
            )
    if not snap.workers:
        workers.add_row(cell("no live worker", "yellow"), *[cell("")] * 7)
    parts.append(workers)
    if snap.syncs:
        syncs = Table(title="sync services", title_justify="left", show_edge=False)
        for column in ("key", "collection", "last call"):
            syncs.add_column(column, no_wrap=True)
        for s in snap.syncs:
            # The key store records a call at most once a minute: "under a minute" is as fresh as it gets.
            seen = "never" if not s.last_call else ("under a minute ago" if now - s.last_call < 60
                                                    else f"{_age(now - s.last_call)} ago")
            syncs.add_row(cell(s.key), cell(s.collection), cell(seen, "yellow" if not s.last_call else "dim"))
        parts.append(syncs)

    failures = Table(title="recent failures", title_justify="left", show_edge=False)
    for column in ("when", "document", "code", "message"):
        failures.add_column(column, overflow="fold", no_wrap=column in ("when", "code"))
    for f in snap.failures:
        failures.add_row(cell(f"{_age(now - f.at)} ago", "dim"), cell(f.name or f.document[:12]), cell(f.code, "red"),
                         cell(f.message))
    if not snap.failures:
        failures.add_row(cell("none", "dim"), cell(""), cell(""), cell(""))
    parts.append(failures)
    return Group(*parts)


# -- the loop -----------------------------------------------------------------------------------------
class Source:
    """Where the view reads /metrics: the stack's API through :class:`ragctl.client.StackClient`,
    found again after a failure (a restarted local stack may listen elsewhere)."""

    def __init__(self, locate: Callable[[], str | None], api_key: str | None, *,
                 verify: ssl.SSLContext | bool = True,
                 timeout_s: float = 3.0) -> None:
        self.locate, self.api_key, self.verify, self.timeout_s = locate, api_key, verify, timeout_s
        self.client = None

    @property
    def url(self) -> str | None:
        return self.client.api_url if self.client else None

    def fetch(self) -> str:
        """The text of /metrics; raises :class:`StackDown` with the reason when there is none."""
        from ragctl.client import StackClient, StackError

        if self.client is None:
            try:
                url = self.locate()
            except Exception as exc:  # a runtime that cannot say where: the stack is down for us
                raise StackDown(exc.message if isinstance(exc, RagError) else str(exc)) from exc
            if not url:
                raise StackDown("the stack is not running")
            self.client = StackClient(url, self.api_key, timeout_s=self.timeout_s, verify=self.verify)
        try:
            return self.client.metrics()
        except StackError as exc:
            url = self.client.api_url
            if exc.code == "not_running":  # unreachable: ask the runtime again next time
                self.client = None
                raise StackDown(f"the API at {url} does not answer") from exc
            raise StackDown(f"the API at {url} answered {exc.code}: {exc.message}") from exc


class StackDown(RagError):
    """``top`` cannot read the stack's metrics: it is down, or its API refused."""

    code = "not_running"
    exit_code = 5


@contextlib.contextmanager
def _keys(stream) -> Iterator[Callable[[float], str]]:
    """``read(timeout)``: the keys pressed within ``timeout`` seconds ('' for none).  The terminal is
    put in cbreak mode (keys arrive at once, unechoed; Ctrl-C still interrupts) and restored after."""
    try:
        fd = stream.fileno()
        interactive = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        interactive = False
    if not interactive:
        yield lambda timeout: (time.sleep(timeout), "")[1]
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)

        def read(timeout: float) -> str:
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
            return os.read(fd, 64).decode(errors="replace") if ready else ""

        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def watch(source: Source, console: Console, *, refresh_s: float = REFRESH_S, hint: str | None = None,
          stdin=None) -> None:
    """Show the stack live until ``q`` or Ctrl-C."""
    from rich.live import Live

    previous: TopSnapshot | None = None
    label = ""
    with contextlib.suppress(KeyboardInterrupt), _keys(stdin or sys.stdin) as read_keys, \
            Live(render(None, source="connecting …"), console=console, screen=True, auto_refresh=False) as live:
        while True:
            started = time.monotonic()
            try:
                previous = snapshot(source.fetch(), previous)
                label = source.url or ""
                live.update(render(previous, source=label), refresh=True)
            except StackDown as exc:
                live.update(render(previous, source=label or "the stack", problem=str(exc), hint=hint), refresh=True)
            deadline = started + refresh_s
            while (left := deadline - time.monotonic()) > 0:
                if "q" in read_keys(left).lower():
                    return
