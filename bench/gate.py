"""The gate's cost (issue #28 part 3): a blue/green reindex of ``samples/`` without a gate and with one,
and the question set's throughput, embedded, through the library the commands call
(``ragctl.ops.gate.gated_reindex``).

* **reindex**: ``Pipeline.reindex`` — the new index built beside the live one from the stored copies,
  swapped in by one catalog write, the old one dropped after ``RETIRE_GRACE_S`` (counted: it is part
  of the command's time);
* **gated**: the same plus the set asked of the old index before and of the new one after;
* **eval throughput**: questions per minute of those runs (embedded: one question at a time).

``--stack``: the same on a local-runtime stack (redis-server, Chroma, uvicorn, one Celery worker):
the reindex built by the worker (``gated_reindex_on_stack``), the set asked through the API four
questions at a time (as ``ragctl eval`` does there).

The set: ``--questions`` questions written by ``ragctl eval generate`` (rule-based, from the samples).
Medians over ``--runs``.  The last line of output is one JSON object.

    python bench/gate.py --runs 3 --questions 20 [--stack]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from _common import machine, temporary_pipeline

from ragctl.backends.embedded import EmbeddedBackend
from ragctl.ops.eval import Question, fingerprint, new_run, run_questions
from ragctl.ops.eval_generate import generate
from ragctl.ops.gate import gated_reindex
from stack.pipeline.generations import RETIRE_GRACE_S

REPO = Path(__file__).resolve().parents[1]


def on_stack(runs: int, questions_n: int) -> dict:
    import tempfile

    import httpx

    from ragctl.client import StackClient
    from ragctl.ops.gate import gated_reindex_on_stack
    from ragctl.project import read_dotenv
    from ragctl.runtime.local import LocalRuntime

    root = Path(tempfile.mkdtemp(prefix="ragctl-gate-bench-"))
    (root / "ragctl.toml").write_text("[local]\napi_port = 0\nredis_port = 0\nchroma_port = 0\nflower_port = 0\n",
                                      encoding="utf-8")
    runtime = LocalRuntime(root)
    try:
        runtime.up(workers=1, wait_s=300)
        api_url, key = runtime.status().api_url, read_dotenv(root / ".env")["RAG_API_KEY"]
        http = httpx.Client(base_url=api_url, timeout=120, headers={"Authorization": f"Bearer {key}"})
        tasks = []
        for path in sorted(p for p in (REPO / "samples").iterdir() if p.is_file()):
            response = http.post("/api/documents", files=[("files", (path.name, path.read_bytes()))])
            response.raise_for_status()
            tasks.append(response.json()["documents"][0]["task_id"])
        deadline = time.monotonic() + 600
        while any(http.get(f"/api/tasks/{t}").json()["status"] not in ("done", "failed") for t in tasks):
            if time.monotonic() > deadline:
                raise SystemExit("samples not ingested in 600 s")
            time.sleep(0.5)
        client = StackClient(api_url, key)
        candidates, _ = generate(client, questions_n)
        questions = [Question(i, c.question, [c.answer], file=c.file) for i, c in enumerate(candidates, start=1)]
        rates: list[float] = []

        def measure(backend, label: str) -> dict:
            started = time.perf_counter()
            outcomes = run_questions(backend, questions, parallel=4)
            run = new_run(Path("generated.jsonl"), questions, [], outcomes, {}, time.perf_counter() - started)
            rates.append(run["summary"]["questions_per_min"])
            return run

        plain, gated, passed = [], [], []
        for _ in range(runs):
            started = time.perf_counter()
            outcome = gated_reindex_on_stack(client, "default", poll_s=0.25)
            plain.append(time.perf_counter() - started)
            assert outcome.applied, outcome.to_dict()
            started = time.perf_counter()
            outcome = gated_reindex_on_stack(client, "default", measure=measure, poll_s=0.25)
            gated.append(time.perf_counter() - started)
            passed.append(outcome.applied)
        return _summary(runs, questions, plain, gated, rates, passed) | {"mode": "stack (local runtime, 1 worker)"}
    finally:
        runtime.down()
        shutil.rmtree(root, ignore_errors=True)


def _summary(runs: int, questions: list, plain: list[float], gated: list[float], rates: list[float],
             passed: list[bool]) -> dict:
    return {
        "machine": machine(), "runs": runs, "documents": 4, "questions": len(questions),
        "retire_grace_s": RETIRE_GRACE_S,
        "reindex_s": {"median": round(statistics.median(plain), 2), "all": [round(t, 2) for t in plain]},
        "gated_reindex_s": {"median": round(statistics.median(gated), 2), "all": [round(t, 2) for t in gated]},
        "gate_overhead_s": round(statistics.median(gated) - statistics.median(plain), 2),
        "eval_questions_per_min": {"median": round(statistics.median(rates), 1), "all": rates},
        "gate_passed": passed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--stack", action="store_true", help="on a local-runtime stack")
    args = parser.parse_args()
    if args.stack:
        print(json.dumps(on_stack(args.runs, args.questions), ensure_ascii=False))
        return

    pipeline, folder = temporary_pipeline(openai_api_key=None)
    try:
        pipeline.ingest_files(sorted(p for p in (REPO / "samples").iterdir() if p.is_file()))
        pipeline.warm_up()
        candidates, _ = generate(pipeline, args.questions)
        questions = [Question(i, c.question, [c.answer], file=c.file) for i, c in enumerate(candidates, start=1)]
        rates: list[float] = []

        def measure(backend, label: str) -> dict:
            started = time.perf_counter()
            outcomes = run_questions(backend, questions)
            run = new_run(Path("generated.jsonl"), questions, [], outcomes,
                          fingerprint(backend, backend.settings, None), time.perf_counter() - started)
            rates.append(run["summary"]["questions_per_min"])
            return run

        plain, gated, passed = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            results = pipeline.reindex()
            plain.append(time.perf_counter() - started)
            assert all(r.status == "done" for r in results), results
            started = time.perf_counter()
            outcome = gated_reindex(EmbeddedBackend(pipeline, folder), [pipeline.settings.collection], measure=measure)
            gated.append(time.perf_counter() - started)
            passed.append(outcome.applied)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = _summary(args.runs, questions, plain, gated, rates, passed) | {"mode": "embedded"}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
