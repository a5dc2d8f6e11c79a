"""``ragctl top``'s parts: ``snapshot()`` on the text the real ``ApiMetrics`` serves (a real
redis-server, a real SQLite catalog), and ``render()`` with user text that looks like Rich markup.
The live loop in a terminal is tested in tests/integration/test_top.py (tmux, a real local stack)."""

from __future__ import annotations

import socket
import time

import pytest
from rich.console import Console

from ragctl.ops.top import HeldDocument, TopSnapshot, WorkerRow, histogram_quantile, render, snapshot
from tests.support.redis_server import start_redis_server

NASTY = "[bold]보고서[/bold] [v2].txt"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """/metrics of a real ApiMetrics over a real Redis and catalog holding a known state."""
    from stack import coordination
    from stack.api.metrics import ApiMetrics
    from stack.pipeline.catalog import Catalog, DocumentRecord

    server, r = start_redis_server(tmp_path_factory)
    try:
        catalog = Catalog(tmp_path_factory.mktemp("data") / "catalog.sqlite")
        queue = "ingest"
        statuses = ["queued"] * 3 + ["embedding", "done", "done", "failed", "failed"]
        for n, status in enumerate(statuses):
            record = DocumentRecord(id=f"{n:064x}", collection="default", file_name=f"doc-{n}.txt", size=10,
                                    status=status)
            if n == 6:
                record.file_name, record.error_code = NASTY, "corrupt"
                record.error = "[red]not markup[/red]: the file\nis damaged"
            if n == 7:
                record.error_code, record.error = "too_large", "x" * 500
            catalog.upsert(record)
            time.sleep(0.01)  # distinct times: the newest failure first
        for n in range(3):
            r.lpush(queue, f"message {n}")
        coordination.beat_worker(r, "worker-1@host-a", None, ttl_s=60, holding=[], stats={"chunks_done": 7,
                                                                                        "chunks_per_s": 0.0})
        claim = {"collection": "default", "document": f"{3:064x}", "task": "t-3", "name": NASTY,
                 "stage": "embedding", "started": time.time() - 42, "chunks_done": 10, "chunks": 40}
        coordination.beat_worker(r, "worker-2@host-b", claim, ttl_s=60, holding=[claim],
                                 stats={"chunks_done": 120, "chunks_per_s": 12.5})
        coordination.count_reaper(r, requeued=2, resent=1)
        metrics = ApiMetrics(r, catalog, queue)
        for n in range(100):  # 90 fast requests, 10 slow ones: p95 in the 0.1-0.25 s bucket
            metrics.observe("GET", "/api/documents", 200, time.perf_counter() - (0.003 if n < 90 else 0.2))
        for _ in range(50):  # top's own polling: left out of p95 and the rate
            metrics.observe("GET", "/metrics", 200, time.perf_counter() - 5)
        time.sleep(0.3)  # the queued documents have waited at least this long
        taken = time.time()
        text = metrics.render().decode()
        yield {"text": text, "metrics": metrics, "redis": r, "taken": taken}
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow  # starts a redis-server
def test_snapshot_reads_what_api_metrics_serves(served):
    snap = snapshot(served["text"], now=served["taken"])
    assert snap.queue_depth == 3
    assert 0.25 <= snap.oldest_queued_s < 60
    assert snap.documents == {"queued": 3, "embedding": 1, "done": 2, "failed": 2}
    assert [w.name for w in snap.workers] == ["worker-1@host-a", "worker-2@host-b"]
    idle, busy = snap.workers
    assert idle.documents == [] and idle.chunks_total == 7 and idle.host == socket.gethostname()
    assert busy.chunks_per_s == 12.5 and busy.chunks_total == 120
    assert [(d.name, d.stage) for d in busy.documents] == [(NASTY, "embedding")]
    assert 41 <= served["taken"] - busy.documents[0].started < 60
    assert abs(busy.heartbeat_at - served["taken"]) < 30
    # the newest failure first; a long message is cut, a multi-line one joined
    assert [(f.name, f.code) for f in snap.failures] == [("doc-7.txt", "too_large"), (NASTY, "corrupt")]
    assert len(snap.failures[0].message) == 200
    assert snap.failures[1].message == "[red]not markup[/red]: the file is damaged"
    # p95 as Prometheus's histogram_quantile: rank 95 of 100, in (0.1, 0.25] holding requests 91-100
    assert snap.api_requests == 100
    assert snap.api_p95_s == pytest.approx(0.1 + 0.15 * (95 - 90) / 10)
    assert snap.api_requests_per_s is None  # one sample: no rate yet
    assert 'rag_reaper_documents_total{verdict="resent"} 1.0' in served["text"]
    assert 'rag_reaper_documents_total{verdict="requeued"} 2.0' in served["text"]


@pytest.mark.slow  # starts a redis-server
def test_rate_and_changes_between_two_scrapes(served):
    from stack import coordination

    first = snapshot(served["text"], now=served["taken"])
    metrics, r = served["metrics"], served["redis"]
    for _ in range(20):
        metrics.observe("POST", "/api/search", 200, time.perf_counter() - 0.01)
    r.rpop("ingest")
    coordination.forget_worker(r, "worker-1@host-a")
    second = snapshot(metrics.render().decode(), first, now=first.taken_at + 2)
    assert second.api_requests == 120 and second.api_requests_per_s == pytest.approx(10.0)
    assert second.queue_depth == 2 and [w.name for w in second.workers] == ["worker-2@host-b"]
    r.lpush("ingest", "back")  # leave the shared state as the other test expects it
    coordination.beat_worker(r, "worker-1@host-a", None, ttl_s=60, holding=[], stats={"chunks_done": 7})


@pytest.mark.slow  # starts a redis-server
def test_render_prints_user_text_literally(served):
    console = Console(record=True, width=160, color_system=None)
    console.print(render(snapshot(served["text"], now=served["taken"]), source="http://127.0.0.1:1"))
    screen = console.export_text()
    assert NASTY in screen  # the file name, as it is: not bold, brackets kept
    assert "[red]not markup[/red]: the file is damaged" in screen
    assert "worker-2@host-b" in screen and "embedding" in screen and "12.5" in screen
    assert "queue 3" in screen and "API p95 175 ms" in screen


def test_render_of_a_typed_snapshot_and_a_stack_that_is_down():
    now = time.time()
    snap = TopSnapshot(taken_at=now, queue_depth=None, oldest_queued_s=0, documents={}, failures=[],
                       workers=[WorkerRow("w[1]", "h", now - 2, 0.0, 0.0,
                                          [HeldDocument("c", "d" * 64, "[link=x]a[/link]", "parsing", now - 5)])],
                       api_requests=0, api_p95_s=None)
    console = Console(record=True, width=160, color_system=None)
    console.print(render(snap, source="s", problem="the API at http://x does not answer ([b])", hint="ragctl up"))
    screen = console.export_text()
    assert "stack down: the API at http://x does not answer ([b])" in screen and "Next: ragctl up" in screen
    assert "[link=x]a[/link]" in screen and "w[1]" in screen
    assert "the API cannot reach Redis" in screen
    assert "API p95 –" in screen


def test_histogram_quantile_matches_prometheus():
    inf = float("inf")
    assert histogram_quantile(0.95, {}) is None
    assert histogram_quantile(0.95, {0.1: 0, inf: 0}) is None
    assert histogram_quantile(0.5, {0.1: 10, 0.2: 20, inf: 20}) == pytest.approx(0.1)
    assert histogram_quantile(0.75, {0.1: 10, 0.2: 20, inf: 20}) == pytest.approx(0.15)
    assert histogram_quantile(0.99, {0.1: 10, 0.2: 20, inf: 40}) == pytest.approx(0.2)  # in +Inf: the top bound


@pytest.mark.slow  # starts a redis-server
def test_a_worker_s_progress_reaches_metrics(served, monkeypatch, tmp_path):
    """The worker side: Liveness (the worker's liveness thread) publishes the document it holds, its
    stage and its chunks; the API's /metrics serves them; top reads them."""
    from stack import coordination
    from stack.worker import tasks

    r, metrics = served["redis"], served["metrics"]
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    monkeypatch.setattr(tasks, "_redis", lambda: r)  # the worker's Redis: this test's real server
    worker_pipeline = Pipeline(load_settings(tmp_path))  # and its catalog (the thread touches held documents)
    monkeypatch.setattr(tasks, "pipeline", lambda: worker_pipeline)
    live = tasks.Liveness()
    live.name = "worker-3@host-c"
    try:
        live.hold("default", "f" * 64, "t-9", "worker-3@host-c", 3600, "[i]큰 문서[/i].hwp")
        live.progress("t-9", "embedding")
        for done in (16, 32, 48):
            live.progress("t-9", chunks_done=done, chunks=100)
        time.sleep(0.2)
        live.publish()
        payload = coordination.live_workers(r)["worker-3@host-c"]
        assert payload["chunks_done"] == 48 and payload["chunks_per_s"] > 48 / tasks.Liveness.RATE_WINDOW_S
        assert payload["current"]["stage"] == "embedding" and payload["current"]["chunks"] == 100
        row = next(w for w in snapshot(metrics.render().decode()).workers if w.name == "worker-3@host-c")
        assert row.chunks_total == 48 and row.chunks_per_s == payload["chunks_per_s"]
        assert [(d.name, d.stage, d.document) for d in row.documents] == [("[i]큰 문서[/i].hwp", "embedding", "f" * 64)]
        deadline = time.monotonic() + 30  # where it encodes: learned on a thread of its own
        while "embedding" not in coordination.live_workers(r)["worker-3@host-c"] and time.monotonic() < deadline:
            live.publish()
            time.sleep(0.2)
        embedding = coordination.live_workers(r)["worker-3@host-c"]["embedding"]
        assert embedding["backend"] == "e5-torch" and embedding["device"] == "cpu", embedding
        live.release("t-9")
        live.publish()
        row = next(w for w in snapshot(metrics.render().decode()).workers if w.name == "worker-3@host-c")
        assert row.documents == [] and row.chunks_total == 48  # idle: it still counts what it did
    finally:
        live.stop()
        coordination.forget_worker(r, "worker-3@host-c")


def test_top_in_embedded_mode_says_there_is_no_stack(tmp_path):
    from typer.testing import CliRunner

    from ragctl.cli import app

    runner = CliRunner()
    project = tmp_path / "p"
    assert runner.invoke(app, ["init", str(project), "--runtime", "embedded", "--yes"]).exit_code == 0
    for args in (["top"], ["top", "--once"], ["top", "--json"]):
        result = runner.invoke(app, ["-p", str(project), *args])
        assert result.exit_code == 5, result.output
        text = " ".join((result.stdout + result.stderr).split())
        assert "runs embedded" in text and "ragctl up --runtime local" in text
