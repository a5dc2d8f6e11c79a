"""Prometheus metrics of the stack, served by the API at /metrics.

Request latency is measured here; queue depth, stage durations, failures, live workers and
documents by status are read at scrape time from Redis and the catalog, so every worker's work
shows up in one place.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from stack import coordination


class StackCollector:
    def __init__(self, redis_client, catalog, queue: str) -> None:
        self.redis, self.catalog, self.queue = redis_client, catalog, queue

    def collect(self):
        documents = GaugeMetricFamily("rag_documents", "Documents by status", labels=["status"])
        counts: dict[str, int] = {}
        for record in self.catalog.list():
            counts[record.status] = counts.get(record.status, 0) + 1
        for status, count in sorted(counts.items()):
            documents.add_metric([status], count)
        yield documents
        try:
            depth = coordination.queue_depth(self.redis, self.queue)
            stage_sum = {k.decode(): float(v) for k, v in self.redis.hgetall(coordination.STAGE_SECONDS).items()}
            stage_count = {k.decode(): int(v) for k, v in self.redis.hgetall(coordination.STAGE_COUNT).items()}
            failures = {k.decode(): int(v) for k, v in self.redis.hgetall(coordination.FAILURES).items()}
            workers = len(coordination.live_workers(self.redis))
        except Exception:  # noqa: BLE001 - Redis down: serve what we have; readiness reports it
            return
        yield GaugeMetricFamily("rag_queue_depth", "Tasks waiting in the ingest queue", value=depth)
        yield GaugeMetricFamily("rag_workers_live", "Workers with a fresh heartbeat", value=workers)
        stages = SummaryMetricFamily("rag_stage_seconds", "Time per pipeline stage", labels=["stage"])
        for stage, total in sorted(stage_sum.items()):
            stages.add_metric([stage], count_value=stage_count.get(stage, 0), sum_value=total)
        yield stages
        failed = CounterMetricFamily("rag_failures", "Documents that failed, by reason", labels=["code"])
        for code, count in sorted(failures.items()):
            failed.add_metric([code], count)
        yield failed


class ApiMetrics:
    def __init__(self, redis_client, catalog, queue: str) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "rag_api_request_seconds", "API request latency", ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.registry.register(StackCollector(redis_client, catalog, queue))

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.latency.labels(method, route, str(status)).observe(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)
