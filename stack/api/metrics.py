"""Prometheus metrics of the stack, served by the API at /metrics.

Request latency is measured here; queue depth, stage durations, failures, live workers and
documents by status are read at scrape time from Redis and the catalog, so every worker's work
shows up in one place.  ``ragctl top`` shows these same numbers (it reads this page):

- ``rag_queue_oldest_age_seconds``: how long the oldest queued document has waited;
- per live worker (its Redis key): ``rag_worker_heartbeat_timestamp_seconds{worker,host}``,
  ``rag_worker_chunks_per_second`` (over its last 10 s), ``rag_worker_chunks_total`` (since it
  started), and ``rag_worker_document_started_timestamp_seconds{worker,collection,document,name,
  stage}`` for each document it holds now;
- ``rag_reaper_documents_total{verdict}``: what the reaper did: ``requeued`` (its worker died),
  ``failed`` (after ``max_attempts``), ``spared`` (late heartbeat, live worker), ``resent`` (a
  queued document whose message was lost);
- ``rag_recent_failure_timestamp_seconds{collection,document,name,code,message}``: the last
  ``RECENT_FAILURES`` documents that failed, with their reason (the message cut to 200 characters);
- ``rag_sync_last_call_timestamp_seconds{key,collection}``: when each sync service's key (ragctl.toml
  ``[[sync]]``) last called the API, to the minute the key store records it;
- API p95 and request rate: from the ``rag_api_request_seconds`` histogram.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from stack import coordination
from stack.names import DocumentStatus

#: How many of the most recent failed documents /metrics lists.
RECENT_FAILURES = 10
_MESSAGE_CHARS = 200


class StackCollector:
    def __init__(self, redis_client, catalog, queue: str, keys=None) -> None:
        self.redis, self.catalog, self.queue, self.keys = redis_client, catalog, queue, keys

    def collect(self):
        if self.keys is not None:
            yield _sync_metrics(self.keys)
        documents = GaugeMetricFamily("rag_documents", "Documents by status", labels=["status"])
        counts: dict[str, int] = {}
        records = self.catalog.list()
        for record in records:
            counts[record.status] = counts.get(record.status, 0) + 1
        for status, count in sorted(counts.items()):
            documents.add_metric([status], count)
        yield documents
        now = time.time()
        queued = [r.updated_at for r in records if r.status == DocumentStatus.QUEUED and r.updated_at]
        yield GaugeMetricFamily("rag_queue_oldest_age_seconds", "How long the oldest queued document has waited",
                                value=round(max(0.0, now - min(queued)), 3) if queued else 0.0)
        failures = GaugeMetricFamily(
            "rag_recent_failure_timestamp_seconds", f"When each of the last {RECENT_FAILURES} failed documents failed",
            labels=["collection", "document", "name", "code", "message"])
        failed_records = sorted((r for r in records if r.status == DocumentStatus.FAILED), key=lambda r: r.updated_at,
                        reverse=True)
        for record in failed_records[:RECENT_FAILURES]:
            message = " ".join((record.error or "").split())
            message = message if len(message) <= _MESSAGE_CHARS else message[:_MESSAGE_CHARS - 1] + "…"
            failures.add_metric([record.collection, record.id, record.file_name, record.error_code or "error",
                                 message], record.updated_at)
        yield failures
        try:
            depth = coordination.queue_depth(self.redis, self.queue)
            stage_sum = {k.decode(): float(v) for k, v in self.redis.hgetall(coordination.STAGE_SECONDS).items()}
            stage_count = {k.decode(): int(v) for k, v in self.redis.hgetall(coordination.STAGE_COUNT).items()}
            failures = {k.decode(): int(v) for k, v in self.redis.hgetall(coordination.FAILURES).items()}
            workers = coordination.live_workers(self.redis)
            reaper = coordination.reaper_counts(self.redis)
        except Exception:  # noqa: BLE001 - Redis down: serve what we have; readiness reports it
            return
        yield GaugeMetricFamily("rag_queue_depth", "Tasks waiting in the ingest queue", value=depth)
        yield GaugeMetricFamily("rag_workers_live", "Workers with a fresh heartbeat", value=len(workers))
        yield from _worker_metrics(workers)
        stages = SummaryMetricFamily("rag_stage_seconds", "Time per pipeline stage", labels=["stage"])
        for stage, total in sorted(stage_sum.items()):
            stages.add_metric([stage], count_value=stage_count.get(stage, 0), sum_value=total)
        yield stages
        failed = CounterMetricFamily("rag_failures", "Documents that failed, by reason", labels=["code"])
        for code, count in sorted(failures.items()):
            failed.add_metric([code], count)
        yield failed
        reaped = CounterMetricFamily("rag_reaper_documents", "What the reaper did with documents, by verdict",
                                     labels=["verdict"])
        for verdict, count in sorted(reaper.items()):
            reaped.add_metric([verdict], count)
        yield reaped


def _sync_metrics(keys) -> GaugeMetricFamily:
    """The sync services' keys (registered by the API, not made by hand) and when each last called."""
    from stack.keys import REGISTERED_PREFIX
    from stack.pipeline.errors import PipelineError

    gauge = GaugeMetricFamily("rag_sync_last_call_timestamp_seconds",
                              "When each sync service's key last called the API (0: never)", labels=["key", "collection"])
    try:
        registered = [k for k in keys.list() if k.prefix == REGISTERED_PREFIX and k.active]
    except PipelineError:  # the key store unreachable: readiness reports it
        registered = []
    for key in registered:
        gauge.add_metric([key.name, (key.collections or ("",))[0]], float(key.last_used_at or 0))
    return gauge


def _worker_metrics(workers: dict[str, dict]):
    """Per live worker: its heartbeat, throughput and the documents it holds (from its own key)."""
    beat = GaugeMetricFamily("rag_worker_heartbeat_timestamp_seconds", "When each live worker last renewed its key",
                             labels=["worker", "host"])
    rate = GaugeMetricFamily("rag_worker_chunks_per_second", "Chunks each worker embedded per second, last 10 s",
                             labels=["worker"])
    total = CounterMetricFamily("rag_worker_chunks", "Chunks each worker process embedded since it started",
                                labels=["worker"])
    holding = GaugeMetricFamily(
        "rag_worker_document_started_timestamp_seconds", "The documents each worker holds now, since when",
        labels=["worker", "collection", "document", "name", "stage"])
    for name, payload in sorted(workers.items()):
        beat.add_metric([name, str(payload.get("host") or "")], float(payload.get("at") or 0))
        rate.add_metric([name], float(payload.get("chunks_per_s") or 0))
        total.add_metric([name], float(payload.get("chunks_done") or 0))
        claims = payload.get("holding") or ([payload["current"]] if payload.get("current") else [])
        for claim in claims:
            if isinstance(claim, dict) and claim.get("document"):
                holding.add_metric([name, str(claim.get("collection") or ""), str(claim["document"]),
                                    str(claim.get("name") or ""), str(claim.get("stage") or "")],
                                   float(claim.get("started") or payload.get("at") or 0))
    yield from (beat, rate, total, holding)


class ApiMetrics:
    def __init__(self, redis_client, catalog, queue: str, keys=None) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "rag_api_request_seconds", "API request latency", ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(StackCollector(redis_client, catalog, queue, keys))

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.latency.labels(method, route, str(status)).observe(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)
