"""How answerable are the questions ``ragctl eval generate`` writes without an LLM (issue #28)?

Two measurements, through the same library ``ragctl eval`` runs (``ragctl.ops.eval``), in embedded
mode with no LLM (extractive answers):

* **samples** — the project's ``samples/`` ingested; ``--samples-n`` generated questions (default 50)
  asked; the share answered right (``answer_has_gold``) and citing their source file
  (``source_has_gold``);
* **korquad** — the first ``--paragraphs`` paragraphs of a SQuAD-format set (default 100 of
  KorQuAD 1.0 dev), each ingested as its own file; ``--questions`` generated questions (default 100)
  and as many of the set's human questions on the same paragraphs (random.Random(0) sample), each
  naming its paragraph's file; the same two scores for both, and the gap.

    python bench/eval_generate.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path

from _common import machine, temporary_pipeline
from retrieval import ingest_paragraphs, load_squad_qas

from ragctl.ops.eval import Question, run_questions, summarize
from ragctl.ops.eval_generate import generate

REPO = Path(__file__).resolve().parents[1]
KEYS = ("questions", "answer_has_gold", "source_has_gold", "mean_file_rank", "mean_answer_chars", "latency_ms_p50",
        "latency_ms_p95", "questions_per_min")


def _run(pipeline, questions: list[Question]) -> dict:
    started = time.perf_counter()
    outcomes = run_questions(pipeline, questions)
    summary = summarize(outcomes, wall_s=time.perf_counter() - started)
    return {key: summary[key] for key in KEYS}


def _as_questions(candidates) -> list[Question]:
    return [Question(i, c.question, [c.answer], file=c.file) for i, c in enumerate(candidates, start=1)]


def samples(n: int) -> dict:
    pipeline, folder = temporary_pipeline(openai_api_key=None)
    try:
        pipeline.ingest_files(sorted(p for p in (REPO / "samples").iterdir() if p.is_file()))
        pipeline.warm_up()
        candidates, documents = generate(pipeline, n)
        kinds: dict[str, int] = {}
        for c in candidates:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        return {"documents": documents, "kinds": kinds, "generated": _run(pipeline, _as_questions(candidates))}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def korquad(dataset: str, paragraphs_n: int, n: int) -> dict:
    paragraphs, human = load_squad_qas(dataset, paragraphs_n)
    pipeline, folder = temporary_pipeline(openai_api_key=None)
    try:
        _, ingest_s = ingest_paragraphs(pipeline, folder, paragraphs)
        pipeline.warm_up()
        candidates, _ = generate(pipeline, n)
        sample = random.Random(0).sample(human, min(len(candidates), len(human)))
        human_questions = [Question(i, qa["question"], qa["answers"], file=f"p{qa['paragraph']:05d}.txt")
                           for i, qa in enumerate(sample, start=1)]
        generated = _run(pipeline, _as_questions(candidates))
        people = _run(pipeline, human_questions)
        return {"dataset": os.path.basename(dataset), "paragraphs": len(paragraphs), "ingest_seconds": round(ingest_s, 1),
                "generated": generated, "human": people,
                "gap_answer_has_gold": round(generated["answer_has_gold"] - people["answer_has_gold"], 4),
                "gap_source_has_gold": round(generated["source_has_gold"] - people["source_has_gold"], 4),
                "examples": [{"question": c.question, "answer": c.answer} for c in candidates[:5]]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=os.path.join(os.environ.get("RAGCTL_CORPUS") or REPO.parent / "shared" / "corpus",
                                                          "eval", "korquad_v1_dev_a.json"))
    parser.add_argument("--paragraphs", type=int, default=100)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--samples-n", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # extractive answers: the measurement needs no LLM
    result = {"samples": samples(args.samples_n),
              "korquad": korquad(args.dataset, args.paragraphs, args.questions) if args.paragraphs else None,
              "machine": machine()}
    if not args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
