"""Extractive answer quality on a SQuAD-format QA set, through the real pipeline's ``ask``.

Every paragraph is ingested as its own document (as bench/retrieval.py does); a fixed sample of
questions (random.Random(0), default 300; ``--seed``, and ``--holdout`` for questions outside
that sample, and ``--unseen-paragraphs`` for those of them that share its paragraphs, which the
sentence reader never trained on, are for tuning) is then asked through ``Pipeline.ask`` with no LLM
configured, so each answer is the extractive one.

    python bench/answers.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --json

The answer's *body* is its text without the label line and without the [n] markers.  The last
line of output is one JSON object with

* ``answer_has_gold`` — share of answers whose body contains a gold answer text (whitespace
  ignored, case ignored: ``ragctl.gold``, which ``ragctl eval`` scores with too);
* ``mean_answer_chars`` — mean length of the body;
* ``source_has_gold`` — share where the text of some source the answer lists contains a gold
  answer (what the answer could have quoted: the ceiling retrieval sets), and
  ``cited_source_has_gold`` — the same for the sources the body cites with [n];
* ``n_questions``, ``embed_model`` and ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time

from _common import machine, temporary_pipeline
from retrieval import ingest_paragraphs, load_squad_qas

from ragctl.gold import answer_body, cited_numbers, contains_gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--questions", type=int, default=300, help="how many questions to sample (default 300)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N paragraphs")
    parser.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0: the reported sample)")
    parser.add_argument("--holdout", action="store_true",
                        help="sample only questions outside the reported sample (seed 0): for tuning")
    parser.add_argument("--unseen-paragraphs", action="store_true",
                        help="sample only questions outside the reported sample whose paragraph holds one of "
                             "its questions: text the sentence reader never trained on, as on the reported "
                             "sample (for tuning; --questions 2000 takes all of them)")
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    parser.add_argument("--details", default=None, help="write one JSON line per question to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    parser.add_argument("--project", default=None,
                        help="ingest into (or reuse) this project folder instead of a temporary one; kept")
    args = parser.parse_args()

    # Extractive answers only: an LLM key in the environment would beat the project's settings.
    os.environ.pop("OPENAI_API_KEY", None)
    paragraphs, questions = load_squad_qas(args.dataset, args.limit)
    if args.holdout or args.unseen_paragraphs:  # tune on these, report on the standard sample
        reported = random.Random(0).sample(questions, min(300, len(questions)))
        ids, paragraphs_of_reported = {id(qa) for qa in reported}, {qa["paragraph"] for qa in reported}
        questions = [qa for qa in questions if id(qa) not in ids
                     and (not args.unseen_paragraphs or qa["paragraph"] in paragraphs_of_reported)]
    sample = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    if args.project:  # paragraphs already ingested there are skipped (same bytes, same id)
        from pathlib import Path

        from stack.pipeline.service import Pipeline
        from stack.settings import load_settings

        folder = Path(args.project)
        folder.mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline(load_settings(folder, {"openai_api_key": None}))
        args.keep = True
    else:
        pipeline, folder = temporary_pipeline(openai_api_key=None)
    if pipeline.settings.llm_configured:
        raise SystemExit("an LLM is configured; this benchmark measures extractive answers")
    _, ingest_s = ingest_paragraphs(pipeline, folder, paragraphs)

    has_gold = source_gold = cited_gold = chars = 0
    details = []
    started = time.perf_counter()
    for qa in sample:
        answer = pipeline.ask(qa["question"])
        if answer.mode != "extractive":
            raise SystemExit(f"expected an extractive answer, got {answer.mode}")
        body = answer_body(answer.answer)
        cited = cited_numbers(answer.answer)
        found = contains_gold(body, qa["answers"])
        in_source = any(contains_gold(s.text, qa["answers"]) for s in answer.sources)
        in_cited = any(contains_gold(s.text, qa["answers"]) for s in answer.sources if s.n in cited)
        has_gold += found
        source_gold += in_source
        cited_gold += in_cited
        chars += len(body)
        details.append({"question": qa["question"], "gold": qa["answers"], "answer": body,
                        "has_gold": found, "source_has_gold": in_source, "cited_source_has_gold": in_cited})
    query_s = time.perf_counter() - started

    n = max(1, len(sample))
    result = {
        "answer_has_gold": round(has_gold / n, 4),
        "mean_answer_chars": round(chars / n, 1),
        "source_has_gold": round(source_gold / n, 4),
        "cited_source_has_gold": round(cited_gold / n, 4),
        "n_questions": len(sample),
        "dataset": args.dataset.rsplit("/", 1)[-1],
        "n_paragraphs": len(paragraphs),
        # The collection's own model (an existing project keeps the model it was built with).
        "embed_model": pipeline.model_name(pipeline.settings.collection) if hasattr(pipeline, "model_name")
        else pipeline.settings.embed_model,
        "ingest_seconds": round(ingest_s, 1),
        "ask_ms_mean": round(1000 * query_s / n, 1),
        "machine": machine(),
    }
    if args.details:
        with open(args.details, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in details)
    if args.keep:
        print(f"project kept at {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if not args.json:
        for key in ("answer_has_gold", "mean_answer_chars", "source_has_gold", "cited_source_has_gold",
                    "n_questions", "embed_model"):
            print(f"{key:>18}: {result[key]}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
