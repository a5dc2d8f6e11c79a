"""Retrieval quality on a SQuAD-format QA set, through the real pipeline.

Every paragraph is ingested as its own document (a .txt file) into a fresh temporary project;
each question is then run through the default (fused) retrieval, and through BM25 alone and
dense alone.  A hit at k: the gold paragraph's document is among the top-k distinct documents.

    python bench/retrieval.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --json

The last line of output is one JSON object with recall@1/5/10, mrr and n_questions for the
fused retrieval, and the same keys under "bm25" and "dense".  ``--sweep`` adds the fused result
for a range of dense weights (how the defaults in stack/pipeline/retrieve.py were chosen).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from _common import machine, temporary_pipeline

KS = (1, 5, 10)


def load_squad_qas(path: str, limit: int | None) -> tuple[list[str], list[dict]]:
    """Paragraph texts and one dict per question: question, paragraph (its index), answers (texts);
    ``limit`` caps the paragraphs."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    paragraphs: list[str] = []
    questions: list[dict] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            if limit is not None and len(paragraphs) >= limit:
                return paragraphs, questions
            paragraphs.append(paragraph["context"])
            questions.extend(
                {"question": qa["question"], "paragraph": len(paragraphs) - 1,
                 "answers": [answer["text"] for answer in qa.get("answers", [])]}
                for qa in paragraph["qas"]
            )
    return paragraphs, questions


def load_squad(path: str, limit: int | None) -> tuple[list[str], list[tuple[str, int]]]:
    """Paragraph texts and (question, index of its paragraph); ``limit`` caps the paragraphs."""
    paragraphs, questions = load_squad_qas(path, limit)
    return paragraphs, [(qa["question"], qa["paragraph"]) for qa in questions]


def ingest_paragraphs(pipeline, folder, paragraphs: list[str]) -> tuple[list[str], float]:
    """Ingest each paragraph as its own .txt document; (document id per paragraph, seconds)."""
    docs_dir = folder / "paragraphs"
    docs_dir.mkdir(exist_ok=True)
    started = time.perf_counter()
    paths = []
    for i, text in enumerate(paragraphs):
        path = docs_dir / f"p{i:05d}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    # Many small files: embedded in shared batches where the pipeline can (Pipeline.ingest_files).
    ingest_files = getattr(pipeline, "ingest_files", None)
    results = ingest_files(paths) if ingest_files else [pipeline.ingest_file(path) for path in paths]
    doc_ids = []
    for i, result in enumerate(results):
        if result.status not in ("done", "skipped"):
            raise SystemExit(f"paragraph {i} failed to ingest: {result.error}")
        doc_ids.append(result.document_id)
    return doc_ids, time.perf_counter() - started


def distinct_documents(ranked: list[tuple[str, float, object, object]], k: int) -> list[str]:
    seen: list[str] = []
    for chunk_id, *_ in ranked:
        doc = chunk_id.rsplit(":", 1)[0]
        if doc not in seen:
            seen.append(doc)
            if len(seen) == k:
                break
    return seen


def metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    result = {f"recall@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 4) for k in KS}
    result["mrr"] = round(sum(1 / r for r in ranks if r is not None) / n, 4)
    result["n_questions"] = n
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N paragraphs")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    parser.add_argument("--sweep", action="store_true", help="also report fused results for weights 0..1")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    from stack.pipeline.retrieve import CANDIDATES, fuse, gather_candidates

    paragraphs, questions = load_squad(args.dataset, args.limit)
    pipeline, folder = temporary_pipeline()
    doc_ids, ingest_s = ingest_paragraphs(pipeline, folder, paragraphs)

    settings = pipeline.settings
    weights = pipeline.fusion_weights(settings.collection)
    collection = settings.collection
    lexical, store = pipeline.lexical(collection), pipeline.store(collection)
    sweep_weights = [round(w * 0.1, 1) for w in range(11)] if args.sweep else []
    ranks: dict[str, list[int | None]] = {"fused": [], "bm25": [], "dense": []}
    ranks.update({f"w={w}": [] for w in sweep_weights})
    started = time.perf_counter()
    for question, gold in questions:
        found = gather_candidates(
            question, lexical=lexical, store=store, n=CANDIDATES, dense_weight=0.5,  # ask both signals
            encode_query=pipeline.embedder.encode_query,  # as Pipeline.search does
        )
        runs = {"fused": weights.for_query(question), "bm25": 0.0, "dense": 1.0}
        runs.update({f"w={w}": w for w in sweep_weights})
        for name, weight in runs.items():
            top = distinct_documents(fuse(found.bm25, found.dense, weight), max(KS))
            gold_id = doc_ids[gold]
            ranks[name].append(top.index(gold_id) + 1 if gold_id in top else None)
    query_s = time.perf_counter() - started

    result = metrics(ranks["fused"])
    result["bm25"] = metrics(ranks["bm25"])
    result["dense"] = metrics(ranks["dense"])
    if sweep_weights:
        result["sweep"] = {w: metrics(ranks[f"w={w}"]) for w in sweep_weights}
    result.update(
        dataset=args.dataset.rsplit("/", 1)[-1], n_paragraphs=len(paragraphs),
        dense_weight={"korean": weights.korean, "other": weights.other}, embed_model=settings.embed_model,
        ingest_seconds=round(ingest_s, 1), query_ms_mean=round(1000 * query_s / max(1, len(questions)), 1),
        machine=machine(),
    )
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if not args.json:
        for name in ("fused", "bm25", "dense"):
            row = result if name == "fused" else result[name]
            print(f"{name:>6}: " + "  ".join(f"{k} {row[k]:.4f}" for k in ("recall@1", "recall@5", "recall@10", "mrr")))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
