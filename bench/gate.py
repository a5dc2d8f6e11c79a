"""The gate's cost (issue #28 part 3): a blue/green reindex of ``samples/`` without a gate and with one,
and the question set's throughput, embedded, through the library the commands call
(``ragctl.ops.gate.gated_reindex``).

* **reindex**: ``Pipeline.reindex`` — the new index built beside the live one from the stored copies,
  swapped in by one catalog write, the old one dropped after ``RETIRE_GRACE_S`` (counted: it is part
  of the command's time);
* **gated**: the same plus the set asked of the old index before and of the new one after;
* **eval throughput**: questions per minute of those runs (embedded: one question at a time).

The set: ``--questions`` questions written by ``ragctl eval generate`` (rule-based, from the samples).
Medians over ``--runs``.  The last line of output is one JSON object.

    python bench/gate.py --runs 3 --questions 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

from _common import machine, temporary_pipeline

from ragctl.ops.eval import Question, fingerprint, new_run, run_questions
from ragctl.ops.eval_generate import generate
from ragctl.ops.gate import gated_reindex
from stack.pipeline.generations import RETIRE_GRACE_S

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()

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
                          fingerprint(backend, "embedded", backend.settings, None), time.perf_counter() - started)
            rates.append(run["summary"]["questions_per_min"])
            return run

        plain, gated, passed = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            results = pipeline.reindex()
            plain.append(time.perf_counter() - started)
            assert all(r.status == "done" for r in results), results
            started = time.perf_counter()
            outcome = gated_reindex(pipeline, [pipeline.settings.collection], measure=measure)
            gated.append(time.perf_counter() - started)
            passed.append(outcome.applied)
        chunks = sum(r.chunks for r in pipeline.documents())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "machine": machine(), "runs": args.runs, "documents": 4, "chunks": chunks, "questions": len(questions),
        "retire_grace_s": RETIRE_GRACE_S,
        "reindex_s": {"median": round(statistics.median(plain), 2), "all": [round(t, 2) for t in plain]},
        "gated_reindex_s": {"median": round(statistics.median(gated), 2), "all": [round(t, 2) for t in gated]},
        "gate_overhead_s": round(statistics.median(gated) - statistics.median(plain), 2),
        "eval_questions_per_min": {"median": statistics.median(rates), "all": rates},
        "gate_passed": passed,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
