"""The ingest task and the reaper.  Both call the pipeline; neither holds logic of its own."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from celery.signals import worker_ready, worker_shutdown

from stack import coordination
from stack.contract import RagError
from stack.names import INGEST_QUEUE, INGEST_TASK, REAP_TASK, REINDEX_TASK, DocumentStatus, IngestOutcome
from stack.settings import service_settings
from stack.worker.app import app, enqueue

if TYPE_CHECKING:
    from stack.pipeline.service import IngestResult

log = logging.getLogger("ragctl.worker")


class DocumentNotDone(RagError):
    """The document did not end done: Celery logs the task as failed ("raised expected"), never as
    "succeeded" (issue #10 item 7).  The catalog record holds the reason; nothing is retried."""


class DocumentFailed(DocumentNotDone):
    pass


class DocumentCancelled(DocumentNotDone):
    pass


@lru_cache(maxsize=1)
def pipeline():
    """One Pipeline (and one loaded model) per worker process, created on first use."""
    from stack.pipeline.service import Pipeline

    return Pipeline(service_settings())


def _redis():
    return coordination.redis_client(service_settings().redis_url)


# -- worker liveness ----------------------------------------------------------------------------
class Liveness:
    """This worker process's liveness, beaten by one daemon thread (issue #15).

    Every ``worker_heartbeat_s`` the thread renews the process's key in Redis (expiring after
    ``worker_dead_after_s``; it names the documents the process holds) and touches the heartbeat of
    each document it holds in the catalog.  It only sleeps, so neither the work (which runs in other
    threads and releases the GIL in the model and in I/O) nor a busy host starves it for long: a
    starved worker's key stays alive, and the reaper leaves its document alone.  When the process
    dies (kill -9, OOM, the host gone), the key expires and that is the reaper's evidence.

    It also enforces the hard time limit: a document past ``task_hard_limit_s`` ends the process
    (thread pools cannot interrupt a task); the supervisor restarts it and the reaper takes over."""

    def __init__(self) -> None:
        self.name = f"worker@{os.getpid()}"
        self.boot = uuid.uuid4().hex
        self._holding: dict[str, dict] = {}  # task id → {collection, document, task, worker, since, hard_limit_s,
        #                                       name, stage, started, chunks_done, chunks}
        self._lock = threading.Lock()
        self._chunks_done = 0  # chunks this process embedded, and (time, n) of the last RATE_WINDOW_S
        self._recent: collections.deque[tuple[float, int]] = collections.deque()
        self._embedding_since: float | None = None
        self._published = 0.0
        self._last_full = 0.0
        self._full_due = False  # hold and release: a whole round now (key and catalog), not only the key
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, name: str | None = None) -> None:
        with self._lock:
            if name:
                self.name = name
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True, name="rag-liveness")
                self._thread.start()
                if self._embedding is None:
                    threading.Thread(target=self._learn_embedding, daemon=True, name="rag-embedding-info").start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def hold(self, collection: str, document_id: str, task_id: str, worker: str, hard_limit_s: float,
             file_name: str = "") -> None:
        with self._lock:
            self._holding[task_id] = {"collection": collection, "document": document_id, "task": task_id,
                                      "worker": worker, "since": time.monotonic(), "hard_limit_s": hard_limit_s,
                                      "name": file_name, "stage": "started", "started": time.time(),
                                      "chunks_done": 0, "chunks": 0}
            self._full_due = True
        self.start()
        self._wake.set()  # say so now: the reaper must never see a held document unclaimed

    def release(self, task_id: str) -> None:
        with self._lock:
            self._holding.pop(task_id, None)
            self._full_due = True
        self._wake.set()

    def holding(self) -> list[dict]:
        with self._lock:
            return [dict(h) for h in self._holding.values()]

    RATE_WINDOW_S = 10.0

    def progress(self, task_id: str, stage: str | None = None, chunks_done: int | None = None,
                 chunks: int | None = None) -> None:
        """Where a held document stands (its stage, its chunks embedded so far), for the key that
        /metrics and ``ragctl top`` read; the liveness thread publishes it, at most once a second (the
        task's thread never waits on Redis)."""
        now = time.monotonic()
        with self._lock:
            held = self._holding.get(task_id)
            if held is None:
                return
            if stage:
                held["stage"] = stage
            if chunks_done is not None:
                added = max(0, chunks_done - held["chunks_done"])
                held["chunks_done"], held["chunks"] = chunks_done, chunks or held["chunks"]
                if self._embedding_since is None:
                    self._embedding_since = now
                self._chunks_done += added
                self._recent.append((now, added))
        if now - self._published >= 1.0:
            self._wake.set()

    def stats(self) -> dict:
        """This process's chunks embedded, and its chunks/s over the last RATE_WINDOW_S (or since it
        first embedded, when that is sooner)."""
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0][0] > self.RATE_WINDOW_S:
                self._recent.popleft()
            span = min(self.RATE_WINDOW_S, now - self._embedding_since) if self._embedding_since else 0.0
            rate = sum(n for _, n in self._recent) / span if span > 0 else 0.0
            stats = {"chunks_done": self._chunks_done, "chunks_per_s": round(rate, 2)}
        return stats | ({"embedding": self._embedding} if self._embedding else {})

    #: Where this process encodes (backend, engine, device, precision, threads; issue #25), once known.
    _embedding: dict | None = None

    def _learn_embedding(self) -> None:
        """Work out where this process encodes, on a thread of its own: it may import torch (a
        second or more), and the key that proves the worker alive must not wait for that."""
        from stack.pipeline.embed import embedding_runtime

        s = service_settings_cached()
        try:
            self._embedding = embedding_runtime(s.embed_model, s.device, s.embed_precision, s.torch_threads)
        except Exception as exc:  # noqa: BLE001 - reported in the key, not raised
            self._embedding = {"error": f"{type(exc).__name__}: {exc}"}

    def publish(self) -> None:
        """Write this process's key now: alive, what it holds, its throughput."""
        settings = service_settings_cached()
        ttl = max(settings.worker_dead_after_s, 2 * settings.worker_heartbeat_s)
        self._published = time.monotonic()
        claims = [{k: h[k] for k in ("collection", "document", "task", "name", "stage", "started",
                                     "chunks_done", "chunks")} for h in self.holding()]
        coordination.beat_worker(_redis(), self.name, claims[0] if claims else None, ttl_s=ttl, boot=self.boot,
                                 holding=claims, stats=self.stats(), accepted=accepted_task_ids())

    def beat(self) -> None:
        """One round: the worker key, then each held document's heartbeat, then the hard limit."""
        held = self.holding()
        try:
            self.publish()
        except Exception as exc:  # noqa: BLE001 - Redis away: keep trying, the worker goes on
            log.warning("worker heartbeat failed: %s", exc)
        for h in held:
            if time.monotonic() - h["since"] > h["hard_limit_s"]:
                log.error("document %s passed the hard limit of %.0f s; ending this worker", h["document"],
                          h["hard_limit_s"])
                with contextlib.suppress(Exception):
                    coordination.forget_worker(_redis(), self.name)  # dead now: the reaper need not wait
                os._exit(70)
            try:
                pipeline().catalog.touch(h["collection"], h["document"], h["worker"], task_id=h["task"])
            except Exception as exc:  # noqa: BLE001 - a busy SQLite must not kill the task
                log.warning("document heartbeat failed: %s", exc)

    def _run(self) -> None:
        """A whole round every ``worker_heartbeat_s`` (and on hold and release); in between, when a
        held document's progress woke it, only the key (what /metrics shows)."""
        while not self._stop.is_set():
            self._wake.clear()
            every = service_settings_cached().worker_heartbeat_s
            try:
                if self._full_due or time.monotonic() - self._last_full >= 0.9 * every:
                    self._full_due, self._last_full = False, time.monotonic()
                    self.beat()
                else:
                    self.publish()
            except Exception:  # the thread must outlive any one bad round
                log.exception("liveness round failed")
            self._wake.wait(max(0.05, every - (time.monotonic() - self._last_full)))


def accepted_task_ids() -> list[str]:
    """The task ids this process's Celery consumer took from the queue and still means to run:
    reserved, waiting for a countdown, or running (the worker's own registry; a consumer that
    loses its connection drops the ones it had not started, whose messages the broker keeps)."""
    from celery.worker import state

    for _ in range(3):  # the consumer's thread may change the registry while we copy it
        try:
            return list(state.requests)
        except RuntimeError:
            continue
    return []


@lru_cache(maxsize=1)
def service_settings_cached():
    return service_settings()


liveness = Liveness()


@worker_ready.connect
def _start_worker_heartbeat(sender=None, **_) -> None:
    liveness.start(getattr(sender, "hostname", None) or f"worker@{os.getpid()}")
    # Safe: the pool is threads, so there is no fork after this.
    threading.Thread(target=lambda: pipeline().warm_up(), daemon=True, name="rag-warm-up").start()


@worker_shutdown.connect
def _stop_worker_heartbeat(sender=None, **_) -> None:
    liveness.stop()
    try:
        coordination.forget_worker(_redis(), getattr(sender, "hostname", "") or liveness.name)
    except Exception:  # noqa: BLE001, S110 - shutting down anyway
        pass


@contextmanager
def document_heartbeat(collection: str, document_id: str, worker: str, hard_limit_s: float, task_id: str = "",
                       file_name: str = ""):
    """While the task runs, this process holds the document: its liveness thread claims it in the
    worker key and touches its heartbeat (see Liveness), and enforces ``hard_limit_s``."""
    task_id = task_id or f"{collection}/{document_id}"
    liveness.hold(collection, document_id, task_id, worker, hard_limit_s, file_name)
    try:
        yield
    finally:
        liveness.release(task_id)


def _sharing_batches(p, collection: str):
    """While this task parses, its chunks are announced to the process's embedder: a batch that
    other tasks (threads of this process, RAG_WORKER_CONCURRENCY) are filling waits a moment for
    them (RAG_EMBED_SHARE_WAIT_MS), so many small documents are embedded in shared batches.  Each
    task still embeds and stores only its own chunks, under its own stages, cancel check and
    heartbeat; only the model's batches are shared (stack.pipeline.embed.SharedBatches)."""
    try:
        return p.embedder_for(collection).expect()
    except Exception:  # noqa: BLE001 - the store unreachable: the ingest itself reports it
        return contextlib.nullcontext()


class Superseded(RagError):
    """This task's document was given to another task (the reaper took this worker for dead, or the
    document was replaced or deleted): stop, and leave the document to its current task.  Not a
    PipelineError, so the pipeline undoes nothing on its way out."""


def _limits(task, soft_limit_s: float, collection: str, document_id: str, check_every_s: float):
    """progress and should_cancel for the pipeline: Celery task state on each new stage (what
    Flower shows), the cancel flag, the per-stage soft limit, and whether the document is still
    this task's (checked every ``check_every_s``)."""
    from stack.pipeline.errors import PipelineError

    r = _redis()
    task_id = task.request.id
    state = {"stage": None, "since": time.monotonic(), "owner_checked": time.monotonic()}

    def on_progress(stage: str, fraction: float) -> None:
        if stage != state["stage"]:
            state["stage"], state["since"] = stage, time.monotonic()
            liveness.progress(task_id, stage)
            try:
                task.update_state(state=stage.upper(), meta={"stage": stage, "progress": fraction})
            except Exception as exc:  # noqa: BLE001 - the status record is the source of truth
                log.warning("could not update the task state: %s", exc)

    def should_cancel() -> bool:
        if state["stage"] and time.monotonic() - state["since"] > soft_limit_s:
            raise PipelineError(
                f"The {state['stage']} stage ran past its limit of {soft_limit_s:.0f} s.",
                hint="raise RAG_STAGE_SOFT_LIMIT_S for very large documents, or split the document",
            )
        if time.monotonic() - state["owner_checked"] >= check_every_s:
            state["owner_checked"] = time.monotonic()
            try:
                record = pipeline().catalog.get(collection, document_id)
            except Exception as exc:  # noqa: BLE001 - a busy SQLite: ask again later
                log.warning("could not read the document's record: %s", exc)
            else:
                if record is None or record.task_id != task_id:
                    raise Superseded(f"document {document_id} now belongs to task "
                                     f"{record.task_id if record else '(deleted)'}")
        try:
            return coordination.cancel_requested(r, task_id)
        except Exception as exc:  # noqa: BLE001 - Redis restarting: keep working, ask again next batch
            log.warning("could not read the cancel flag: %s", exc)
            return False

    return on_progress, should_cancel


def _already_running(r, collection: str, document_id: str, task_id: str) -> str | None:
    """The live worker that already runs ``task_id`` on this document (this process or another), if any."""
    if any(held["task"] == task_id for held in liveness.holding()):
        return liveness.name
    holder, payload = coordination.holders(r).get((collection, document_id), (None, None))
    if holder is None or coordination.process_gone(payload):
        return None
    claims = payload.get("holding") or []
    return holder if any(isinstance(c, dict) and c.get("task") == task_id for c in claims) else None


def _unreadable_blob(p, collection: str, document_id: str, file_name: str, ref: str, exc) -> IngestResult:
    """The document's bytes could not be had from the blob store: gone (``blob_missing``: the document
    fails, naming where they should have been) or the store unreachable (``store_unavailable``: the
    task retries, as for any store).  Either way the result the task reports, never a traceback."""
    from stack.pipeline.errors import PipelineError
    from stack.pipeline.service import IngestResult
    from stack.pipeline.storage import BlobMissing

    if isinstance(exc, BlobMissing):
        exc = BlobMissing(f"The uploaded bytes of {file_name} (document {document_id[:12]}) are missing from the "
                          f"blob store: {exc.message}", hint="upload the file again (POST /api/documents)")
    result = IngestResult(path=ref, file_name=file_name, status=IngestOutcome.FAILED, document_id=document_id,
                          error=exc.to_dict())
    try:  # (a store_unavailable that is retried is queued again by the caller)
        record = p.catalog.get(collection, document_id)
        if record is not None:
            record.status, record.error_code, record.error = DocumentStatus.FAILED, exc.code, exc.message
            record.note(f"failed: {exc.message}")
            p.catalog.upsert(record)
    except PipelineError as error:  # the catalog is in the same unreachable database
        log.warning("could not record the failure of %s: %s", document_id, error.message)
    return result


@app.task(name=INGEST_TASK, bind=True, max_retries=5, throws=(DocumentFailed, DocumentCancelled))
def ingest_document(self, collection: str, document_id: str, path: str, file_name: str) -> dict:
    """Parse, chunk, embed and store one uploaded document (queued by the API).

    Returns the result when the document is done (or the message was superseded); a document that
    failed or was cancelled raises DocumentFailed / DocumentCancelled, so that Celery reports the
    task as failed, with the reason, and not as "succeeded"."""
    from stack.pipeline.errors import PipelineError

    p = pipeline()
    catalog = p.catalog
    record = catalog.get(collection, document_id)
    # A redelivered or superseded message: the record says which task owns the document now.
    if record is None or record.task_id != self.request.id:
        return {"status": "superseded", "document_id": document_id}
    if record.status == DocumentStatus.DONE:
        return {"status": record.status, "document_id": document_id}
    if record.status == DocumentStatus.CANCELLED:
        raise DocumentCancelled(f"{record.file_name}: cancelled")
    r = _redis()
    running = _already_running(r, collection, document_id, self.request.id)
    if running:  # a message the broker gave out twice (restored after a lost connection)
        log.warning("task %s is already running on %s; this delivery is dropped", self.request.id, running)
        return {"status": "duplicate", "document_id": document_id, "worker": running}
    if coordination.cancel_requested(r, self.request.id):
        record.status = DocumentStatus.CANCELLED
        record.note("cancelled before it started")
        catalog.upsert(record)
        raise DocumentCancelled(f"{record.file_name}: cancelled before it started")
    worker = self.request.hostname or f"worker@{os.getpid()}"
    record.worker = worker
    record.note(f"picked up by {worker}" + (f" (attempt {record.attempts + 1})" if record.attempts else ""))
    catalog.upsert(record)
    settings = p.settings
    on_progress, should_cancel = _limits(self, settings.stage_soft_limit_s, collection, document_id,
                                         settings.worker_heartbeat_s)
    # ``path`` is the blob store's reference (what the API stored, kept in the record's stored_path):
    # the bytes are copied here from the store, never read from the API's disk.
    scratch = Path(tempfile.mkdtemp(prefix="ragctl-task-"))
    try:
        with document_heartbeat(collection, document_id, worker, settings.task_hard_limit_s, self.request.id,
                                file_name):
            try:
                local = p.blobs.local(path, scratch)
            except PipelineError as exc:
                result = _unreadable_blob(p, collection, document_id, file_name, path, exc)
            else:
                with _sharing_batches(p, collection):  # announced once the bytes are here to parse
                    result = p.ingest_file(
                        local, collection=collection, force=True, display_name=file_name,
                        progress=on_progress, should_cancel=should_cancel,
                        on_chunks=lambda done, total: liveness.progress(self.request.id, chunks_done=done,
                                                                        chunks=total),
                    )
    except Superseded as exc:
        log.warning("task %s stops: %s", self.request.id, exc)
        return {"status": "superseded", "document_id": document_id}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.error and result.error.get("code") == "store_unavailable" and self.request.retries < self.max_retries:
        delay = min(60, 2 ** (self.request.retries + 1))
        record = catalog.get(collection, document_id)
        record.status = DocumentStatus.QUEUED
        record.note(f"vector store unreachable; retry {self.request.retries + 1} in {delay} s")
        catalog.upsert(record)
        raise self.retry(countdown=delay)
    try:
        if result.status == DocumentStatus.DONE:
            coordination.record_stage_times(r, catalog.get(collection, document_id).timings)
        elif result.error:
            coordination.record_failure(r, result.error.get("code", "error"))
    except Exception as exc:  # noqa: BLE001 - metrics are best effort
        log.warning("could not record metrics: %s", exc)
    if result.status == DocumentStatus.CANCELLED:
        raise DocumentCancelled(f"{file_name}: cancelled")
    if result.status != DocumentStatus.DONE:
        error = result.error or {}
        raise DocumentFailed(f"{file_name}: {error.get('code', 'error')}: {error.get('message', result.status)}")
    return result.to_dict()


#: How often a reindex task's heartbeat is written (the CLI gives up on a worker whose beat stopped).
REINDEX_BEAT_S = 5.0
#: What a reindex task is asked to do: build (and leave the new index for the gate), build and swap (no
#: gate), or swap / discard the index a build left.
REINDEX_ACTIONS = ("build", "build_and_swap", "swap", "discard")


@app.task(name=REINDEX_TASK)
def reindex_collection(collection: str, action: str) -> dict:
    """A collection's blue/green reindex (stack/pipeline/generations.py) on this worker: the API keeps
    answering from the live index meanwhile.  Where it stands goes to Redis (coordination.reindex_state),
    which the API shows to the CLI that drives the gate."""
    from stack.pipeline import generations

    p, r = pipeline(), _redis()
    state = coordination.reindex_state(r, collection) or {}
    beating = _ReindexBeat(r, collection, {**state, "state": "swapping" if action == "swap" else
                                           "discarding" if action == "discard" else "building", "action": action})
    try:
        if action in ("build", "build_and_swap"):
            done: list = []

            def on_document(result) -> None:
                done.append(result)
                beating.update({"state": "building", "action": action, "done": len(done)})

            beating.update({"state": "building", "action": action, "done": 0})
            candidate = generations.build(p, collection, on_document=on_document)
            if candidate.failed:
                generations.discard(p, candidate)
                state = {"state": "failed", **candidate.to_dict()}
            elif action == "build":
                state = {"state": "built", **candidate.to_dict()}
            else:
                beating.update({"state": "swapping", "action": action, "done": len(done)})
                generations.swap(p, candidate)
                state = {"state": "swapped", **candidate.to_dict()}
        elif action == "swap" and state.get("state") in ("built", "swapping"):
            generations.swap(p, generations.Candidate.from_dict(state))
            state = {**state, "state": "swapped"}
        elif action == "discard" and state.get("state") in ("built", "discarding"):
            generations.discard(p, generations.Candidate.from_dict(state))
            state = {**state, "state": "discarded"}
        else:
            state = {**state, "state": "error", "error": {"code": "reindex_state",
                     "message": f"'{action}' asked of a reindex that is {state.get('state') or 'not started'}."}}
    except Exception as exc:  # noqa: BLE001 - the CLI waiting on the state hears of any failure
        error = exc.to_dict() if isinstance(exc, RagError) else {"code": "reindex_failed",
                                                                  "message": f"{type(exc).__name__}: {exc}"}
        state = {**state, "state": "error", "error": error}  # a half-built index goes at the next reindex
    finally:
        beating.stop()
    coordination.set_reindex_state(r, collection, state)
    return {"collection": collection, "state": state["state"]}


class _ReindexBeat:
    """Writes a reindex's state with a growing ``beat`` every few seconds while the task works: the CLI
    waiting on it tells a long document (the beat grows) from a killed worker (it stops)."""

    def __init__(self, r, collection: str, state: dict) -> None:
        import threading

        self._r, self._collection, self._state, self._beat = r, collection, dict(state), 0
        self._lock, self._stopping = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="reindex-beat", daemon=True)
        self._thread.start()

    def update(self, state: dict) -> None:
        with self._lock:
            self._state = dict(state)
            self._write()

    def _write(self) -> None:
        self._beat += 1
        coordination.set_reindex_state(self._r, self._collection, {**self._state, "beat": self._beat})

    def _run(self) -> None:
        while not self._stopping.wait(REINDEX_BEAT_S):
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._write()
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                    log.warning("could not write the reindex heartbeat: %s", exc)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        self._thread.join(5)


@app.task(name=REAP_TASK)
def reap_stale_documents() -> dict:
    """Re-queue (or, after ``max_attempts``, fail) documents whose worker is dead, and re-send
    queued documents whose message was lost.

    A document in progress is a candidate when its heartbeat is older than ``stale_after_s``; it is
    re-queued only on evidence of death: no live worker key holds it (the process that held it
    stopped renewing its key for ``worker_dead_after_s``: killed, crashed, its host gone), or the
    key's process ran on this host and no longer exists (seen at once, without waiting).  A
    candidate that a live worker holds (starved of CPU, frozen, in a long C call) is left alone and
    counted as spared.  A document queued for longer than ``stale_after_s`` whose task is neither
    waiting in the queue nor accepted by a live worker, in two passes, is re-sent (see
    ``_resend_lost``).  One pass at a time (a Redis lock); just after a Redis restart, no verdicts."""
    settings = pipeline().settings
    catalog = pipeline().catalog  # Pipeline is light until a document needs the model
    r = _redis()
    verdicts: dict = {"requeued": [], "failed": [], "spared": [], "resent": []}
    cutoff = time.time() - settings.stale_after_s
    if not catalog.stale(cutoff) and not catalog.queued_before(cutoff):  # the usual pass: nothing to judge
        coordination.forget_unaccounted(r)
        return verdicts
    if not coordination.reaper_lock(r, max(60.0, 3 * settings.reap_interval_s)):
        return {**verdicts, "skipped": "another pass is running"}
    try:
        # Keys outlive a restart in the AOF; without it every live worker writes its key again
        # within one heartbeat.  Until then, an absent key is not evidence.
        if coordination.redis_uptime_s(r) < 2 * settings.worker_heartbeat_s + 1:
            return {**verdicts, "skipped": "redis restarted recently; liveness keys are not evidence yet"}
        workers = coordination.live_workers(r)  # first the workers, then the candidates (see the docstring)
        _reap_dead_holders(catalog, settings, coordination.holders_of(workers), verdicts)
        _resend_lost(catalog, r, settings, coordination.claimed_tasks(workers), verdicts)
        coordination.count_reaper(r, **{name: len(ids) for name, ids in verdicts.items()})
    finally:
        coordination.reaper_unlock(r)
    if verdicts["requeued"] or verdicts["failed"] or verdicts["resent"]:
        log.warning("reaper: re-queued %s, failed %s, re-sent %s", verdicts["requeued"], verdicts["failed"],
                    verdicts["resent"])
    return verdicts


def _reap_dead_holders(catalog, settings, held: dict, verdicts: dict) -> None:
    for record in catalog.stale(time.time() - settings.stale_after_s):
        stage, worker = record.status, record.worker or "a worker"
        holder, payload = held.get((record.collection, record.id), (None, None))
        if holder is not None and not coordination.process_gone(payload):
            late = time.time() - (record.heartbeat_at or record.updated_at)
            log.info("reaper: %s's heartbeat is %.0f s late, but %s is alive and holds it; left alone",
                     record.id[:12], late, holder)
            verdicts["spared"].append(record.id)
            continue
        evidence = "its process is gone" if holder is not None else "no live worker holds it"
        if record.attempts + 1 >= settings.max_attempts:
            record.status, record.error_code = DocumentStatus.FAILED, "worker_lost"
            record.error = (f"{worker} stopped responding during {stage}, {record.attempts + 1} times; "
                            "the document may be too large or crash the parser")
            record.note(f"failed: {record.error}")
            if not catalog.upsert(record).fenced:
                verdicts["failed"].append(record.id)
            continue
        record.attempts += 1
        record.note(f"{worker} stopped responding during {stage} ({evidence}); "
                    f"re-queued (attempt {record.attempts + 1})")
        enqueue(catalog, record, record.stored_path or "", reason=f"re-queued: {worker} died during {stage}")
        verdicts["requeued"].append(record.id)


def _resend_lost(catalog, r, settings, claimed: set[str], verdicts: dict) -> None:
    """A queued document's message can be lost: a worker's consumer that loses its Redis connection
    drops the tasks it had reserved but not started, whose messages stay in the broker's unacked set
    until the visibility timeout (an hour); an API that dies between writing the record and sending
    the message leaves none.  Such a document is in no queue and in no live worker's hands; after
    two passes that agree, it gets a new task id and a new message (the attempt is not counted:
    the document did nothing wrong).  The old id keeps answering; its message, if it ever comes
    back, finds itself superseded."""
    queued = {record.task_id: record for record in catalog.queued_before(time.time() - settings.stale_after_s)
              if record.task_id}
    unclaimed = set(queued) - claimed
    lost = unclaimed - coordination.waiting_tasks(r, INGEST_QUEUE, unclaimed)
    for task_id in coordination.unaccounted_twice(r, lost, min_gap_s=2 * settings.worker_heartbeat_s):
        record = catalog.get(queued[task_id].collection, queued[task_id].id)
        if record is None or record.task_id != task_id or record.status != DocumentStatus.QUEUED:
            continue  # it moved on since the first read
        record.note("its queue message was lost (a broker restart, or never sent); sent again")
        enqueue(catalog, record, record.stored_path or "", reason="re-sent: its queue message was lost")
        verdicts["resent"].append(record.id)
