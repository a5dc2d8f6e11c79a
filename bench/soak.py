"""Soak (issue #15): the local stack ingests a folder of real documents for N minutes while a CPU
burner holds every core, with questions asked throughout.

    python bench/soak.py                      # 10 minutes over ../shared/corpus (HWP/HWPX, PDF, DOCX)
    python bench/soak.py --minutes 5 --folder DIR

Reports documents done / failed (by reason) / re-queued, questions answered and their p95 latency,
every task id handed out that stopped answering, and false reaps: re-queues while the worker was
alive.  No worker is killed here, and the worker processes are watched (same pids from start to
end), so every re-queue is a false reap.

The stack runs with the test suite's short thresholds (``stale_after_s = 6``, a reaper pass every
2 s) unless told otherwise: a late document heartbeat is common on a starved host, and the point is
that the reaper never takes one for a death.  "Spared" counts the candidates the reaper looked at
and left alone because their worker's liveness key was alive.  The burner is bounded: each busy
process stops by itself at the end of the run (plus a margin), and is killed when the run ends.
The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import machine

REPO = Path(__file__).resolve().parents[1]
DOCUMENT_TYPES = {".hwp", ".hwpx", ".pdf", ".docx"}
QUESTIONS = ["연차 휴가는 며칠인가요?", "보도자료의 주요 내용은 무엇인가요?", "제안요청서의 사업 기간은?",
             "What is the main topic of the thesis?", "How are tables handled?", "채용 공고의 지원 자격은?",
             "What does the license allow?", "예산 규모는 얼마인가요?"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def burn(until: float) -> None:
    x = 0
    while time.monotonic() < until:  # bounded: stops by itself
        x = (x * 31 + 7) % 1_000_003


def documents_in(folder: Path, max_mb: int) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_TYPES
             and p.stat().st_size <= max_mb * 1024 * 1024]
    random.Random(15).shuffle(files)
    return files


class Soak:
    def __init__(self, args) -> None:
        from ragctl.project import read_dotenv
        from ragctl.runtime.local import LocalRuntime

        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="ragctl-soak-"))
        (self.root / "ragctl.toml").write_text(
            '[project]\nname = "soak"\n\n[local]\napi_port = 0\nredis_port = 0\nchroma_port = 0\nflower_port = 0\n\n'
            f"[settings]\nmax_upload_mb = {args.max_mb}\nstale_after_s = {args.stale_after_s}\n"
            f"reap_interval_s = {args.reap_interval_s}\n", encoding="utf-8")
        self.runtime = LocalRuntime(self.root)
        started = time.perf_counter()
        self.runtime.up(workers=args.workers, wait_s=300)
        self.startup_s = round(time.perf_counter() - started, 1)
        status = self.runtime.status()
        key = read_dotenv(self.root / ".env")["RAG_API_KEY"]
        self.http = httpx.Client(base_url=status.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        self.redis_url = status.redis_url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.task_ids: dict[str, str] = {}  # every task id handed out → its document
        self.lost: dict[str, int] = {}  # task id → how many times it did not answer 200
        self.ask_ms: list[float] = []
        self.ask_errors: list[str] = []
        self.pid_changes: list[str] = []

    def worker_pids(self) -> dict[str, int]:
        return {s.name: s.pid for s in self.runtime.ps() if s.name.startswith("worker-")}

    # -- the threads ------------------------------------------------------------------------
    def ask_loop(self) -> None:
        rng = random.Random(1)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                response = self.http.post("/api/ask", json={"question": rng.choice(QUESTIONS)})
                if response.status_code == 200:
                    with self.lock:
                        self.ask_ms.append((time.perf_counter() - started) * 1000)
                else:
                    self.ask_errors.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as exc:
                self.ask_errors.append(repr(exc))
            self.stop.wait(self.args.ask_every_s)

    def watch_loop(self, pids: dict[str, int]) -> None:
        while not self.stop.wait(5):
            now = self.worker_pids()
            if now != pids:
                self.pid_changes.append(f"{time.strftime('%H:%M:%S')} {pids} -> {now}")
                pids = now
            for task_id in list(self.task_ids):
                self.check(task_id)

    def check(self, task_id: str) -> dict | None:
        try:
            response = self.http.get(f"/api/tasks/{task_id}")
        except httpx.HTTPError:
            return None  # the API busy: not the task id's fault
        if response.status_code != 200:
            with self.lock:
                self.lost[task_id] = self.lost.get(task_id, 0) + 1
            return None
        return response.json()

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict:
        args = self.args
        files = documents_in(Path(args.folder), args.max_mb)
        if not files:
            raise SystemExit(f"no documents in {args.folder}")
        end = time.monotonic() + args.minutes * 60
        cores = os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")
        burners = [context.Process(target=burn, args=(end + 120,), daemon=True) for _ in range(cores)]
        pids = self.worker_pids()
        threads = [threading.Thread(target=self.ask_loop, daemon=True),
                   threading.Thread(target=self.watch_loop, args=(pids,), daemon=True)]
        for process in burners:
            process.start()
        for thread in threads:
            thread.start()
        uploaded, passes, in_flight, started = 0, 0, {}, time.monotonic()
        queue = list(files)
        try:
            while time.monotonic() < end:
                for task_id in list(in_flight):
                    body = self.check(task_id)
                    if body and body["status"] in ("done", "failed", "cancelled"):
                        in_flight.pop(task_id)
                while len(in_flight) < args.in_flight and time.monotonic() < end:
                    if not queue:
                        queue, passes = list(files), passes + 1  # again, as replacements: new task ids
                    path = queue.pop(0)
                    try:
                        with path.open("rb") as handle:
                            response = self.http.post("/api/documents", files={"files": (path.name, handle)},
                                                      params={"replace": str(passes > 0).lower()})
                    except httpx.HTTPError as exc:
                        self.ask_errors.append(f"upload {path.name}: {exc!r}")
                        continue
                    uploaded += 1
                    if response.status_code in (200, 202):
                        for entry in response.json()["documents"]:
                            if entry.get("task_id"):
                                self.task_ids[entry["task_id"]] = entry["document_id"]
                                if not entry["duplicate"]:
                                    in_flight[entry["task_id"]] = path.name
                time.sleep(1)
            ingest_s = time.monotonic() - started
        finally:
            for process in burners:
                process.kill()
            for process in burners:
                process.join(10)
        # The burner is gone: let what is in flight finish (bounded), questions still running.
        drain_deadline = time.monotonic() + args.drain_minutes * 60
        while in_flight and time.monotonic() < drain_deadline:
            for task_id in list(in_flight):
                body = self.check(task_id)
                if body and body["status"] in ("done", "failed", "cancelled"):
                    in_flight.pop(task_id)
            time.sleep(2)
        self.stop.set()
        for thread in threads:
            thread.join(30)
        for task_id in list(self.task_ids):  # every id, one last time
            self.check(task_id)
        return self.report(uploaded, passes, ingest_s, in_flight, pids)

    def report(self, uploaded: int, passes: int, ingest_s: float, unfinished: dict, pids: dict) -> dict:
        import redis

        from stack import coordination
        from stack.settings import load_settings

        settings = load_settings(self.root)
        reaper = coordination.reaper_counts(redis.Redis.from_url(self.redis_url))
        documents = self.http.get("/api/documents").json()
        failed_by: dict[str, int] = {}
        for d in documents:
            if d["status"] == "failed":
                failed_by[d["error_code"] or "error"] = failed_by.get(d["error_code"] or "error", 0) + 1
        requeued_docs = [d for d in documents if d["attempts"] > 0 or any("stopped responding" in x for x in d["log"])]
        workers_alive = not self.pid_changes and self.worker_pids() == pids
        p95 = percentile(self.ask_ms, 0.95)
        return {
            "machine": machine() | {"load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
            "minutes": self.args.minutes, "workers": self.args.workers,
            "settings": {name: getattr(settings, name) for name in (
                "stale_after_s", "reap_interval_s", "worker_heartbeat_s", "worker_dead_after_s", "max_attempts")},
            "burner_processes": os.cpu_count(), "stack_startup_s": self.startup_s,
            "uploads": uploaded, "corpus_passes_completed": passes, "ingest_window_s": round(ingest_s, 1),
            "documents": {"total": len(documents), "done": sum(d["status"] == "done" for d in documents),
                          "failed": sum(d["status"] == "failed" for d in documents), "failed_by_reason": failed_by,
                          "unfinished_at_end": len(unfinished), "requeued": len(requeued_docs)},
            "reaper": {"requeued": reaper.get("requeued", 0), "failed": reaper.get("failed", 0),
                       "spared_late_but_alive": reaper.get("spared", 0)},
            "false_reaps": (reaper.get("requeued", 0) + reaper.get("failed", 0)) if workers_alive else None,
            "worker_pid_changes": self.pid_changes,
            "task_ids_handed_out": len(self.task_ids), "task_ids_not_answering": len(self.lost),
            "questions": {"answered": len(self.ask_ms), "errors": len(self.ask_errors),
                          "p50_ms": round(percentile(self.ask_ms, 0.5) or 0, 1),
                          "p95_ms": round(p95, 1) if p95 is not None else None,
                          "max_ms": round(max(self.ask_ms), 1) if self.ask_ms else None,
                          "first_errors": self.ask_errors[:3]},
        }

    def close(self) -> None:
        try:
            self.runtime.down()
        finally:
            if not self.args.keep:
                shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to ingest under the burner")
    parser.add_argument("--folder", default=str(REPO.parent / "shared" / "corpus"), help="documents to ingest")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4, help="documents queued or in progress at a time")
    parser.add_argument("--ask-every-s", type=float, default=2.0)
    parser.add_argument("--stale-after-s", type=float, default=6.0)
    parser.add_argument("--reap-interval-s", type=float, default=2.0)
    parser.add_argument("--max-mb", type=int, default=50)
    parser.add_argument("--drain-minutes", type=float, default=5.0, help="after the burner: wait for what is in flight")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project (logs) afterwards")
    args = parser.parse_args()
    soak = Soak(args)
    try:
        result = soak.run()
    finally:
        soak.close()
    if args.keep:
        result["project"] = str(soak.root)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
