"""Answers from scans: KorQuAD questions over their paragraphs ingested as scanned pages, against the
same questions over the paragraphs' text.

    python bench/ocr_answers.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json [--paragraphs 25]

The first ``--paragraphs`` paragraphs of the set are each rendered as one A4 page at 300 dpi
(tests/support/scans.py; NanumMyeongjo) and ingested as PNG files into one project, read by OCR;
the same paragraphs go as .txt files into another.  Every question of those paragraphs is asked in
both (extractive answers, no LLM), scored as bench/answers.py scores: ``answer_has_gold`` (the
answer's body holds a gold answer, whitespace and case ignored) and ``source_has_gold`` (a listed
source holds it).  The goal: scans within 0.05 of text.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

from _common import machine, temporary_pipeline
from parse_quality import bigram_f1
from retrieval import ingest_paragraphs, load_squad_qas

from ragctl.gold import answer_body, contains_gold
from tests.support import scans


def ingest_scans(pipeline, folder, paragraphs: list[str]) -> tuple[list[str], float]:
    """Each paragraph as a scanned page (PNG, 300 dpi) ingested through OCR; (its OCR text, seconds)."""
    pages = folder / "scans"
    pages.mkdir(exist_ok=True)
    paths = []
    for i, text in enumerate(paragraphs):
        paths.append(scans.save_scan(scans.render_pages([text]), pages / f"p{i:05d}.png"))
    started = time.perf_counter()
    results = pipeline.ingest_files(paths)
    seconds = time.perf_counter() - started
    texts = []
    for i, result in enumerate(results):
        if result.status != "done":
            raise SystemExit(f"scan {i} failed to ingest: {result.error}")
        texts.append(" ".join(text for _, text, _ in pipeline.chunks_of(pipeline.document(result.document_id))))
    return texts, seconds


def score(pipeline, questions: list[dict]) -> tuple[dict, list[dict]]:
    has_gold = in_source = 0
    rows = []
    for qa in questions:
        answer = pipeline.ask(qa["question"])
        body = answer_body(answer.answer)
        found = contains_gold(body, qa["answers"])
        source = any(contains_gold(s.text, qa["answers"]) for s in answer.sources)
        has_gold += found
        in_source += source
        rows.append({"question": qa["question"], "gold": qa["answers"], "answer": body, "has_gold": found,
                     "source_has_gold": source, "locations": [s.location for s in answer.sources]})
    n = max(1, len(questions))
    return {"answer_has_gold": round(has_gold / n, 4), "source_has_gold": round(in_source / n, 4)}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=os.path.join(os.environ.get("RAGCTL_CORPUS", "../shared/corpus"),
                                                          "eval", "korquad_v1_dev_a.json"))
    parser.add_argument("--paragraphs", type=int, default=25, help="paragraphs to render (default 25)")
    parser.add_argument("--details", default=None, help="write one JSON line per question and side here")
    parser.add_argument("--json", action="store_true", help="print only the result (JSON, last line)")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)
    if scans.font_missing():
        raise SystemExit(scans.font_missing())
    paragraphs, questions = load_squad_qas(args.dataset, args.paragraphs)

    text_pipeline, text_folder = temporary_pipeline(openai_api_key=None)
    scan_pipeline, scan_folder = temporary_pipeline(openai_api_key=None)
    try:
        _, text_s = ingest_paragraphs(text_pipeline, text_folder, paragraphs)
        ocr_texts, scan_s = ingest_scans(scan_pipeline, scan_folder, paragraphs)
        text_scores, text_rows = score(text_pipeline, questions)
        scan_scores, scan_rows = score(scan_pipeline, questions)
    finally:
        shutil.rmtree(text_folder, ignore_errors=True)
        shutil.rmtree(scan_folder, ignore_errors=True)
    cited_ocr = sum(any("(OCR)" in location for location in row["locations"]) for row in scan_rows)
    result = {
        "text": text_scores,
        "scans": scan_scores,
        "answer_has_gold_gap": round(text_scores["answer_has_gold"] - scan_scores["answer_has_gold"], 4),
        "scan_answers_citing_ocr": f"{cited_ocr}/{len(scan_rows)}",
        "ocr_bigram_f1_mean": round(statistics.mean(bigram_f1(t, p) for t, p in zip(ocr_texts, paragraphs)), 4),
        "n_questions": len(questions),
        "n_paragraphs": len(paragraphs),
        "ingest_seconds": {"text": round(text_s, 1), "scans": round(scan_s, 1)},
        "machine": machine(),
    }
    if args.details:
        with open(args.details, "w", encoding="utf-8") as handle:
            for side, rows in (("text", text_rows), ("scans", scan_rows)):
                handle.writelines(json.dumps({"side": side, **row}, ensure_ascii=False) + "\n" for row in rows)
    if not args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1), file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
