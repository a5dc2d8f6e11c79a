"""Ingest throughput: chunks/s of the whole pipeline against raw ``model.encode`` on the same chunks.

Raw encoding of the chunk texts, batched as the pipeline batches them, is the physical limit of
the machine; the ratio says how much of it the rest of the pipeline (sniff, parse, chunk, Chroma,
BM25 postings, catalog, extracted text) costs.

    python bench/ingest_throughput.py --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json --articles 6
    python bench/ingest_throughput.py --files samples/

Documents: with --dataset, one text document per SQuAD article (its paragraphs joined); with
--files, every file under the folder.  Each run ingests into a fresh project; the model is warmed
up first.  Reports the median over --runs runs; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine, temporary_pipeline


def documents_from_squad(path: str, articles: int, out: Path) -> list[Path]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"][:articles]
    files = []
    for i, article in enumerate(data):
        file = out / f"article{i:03d}.txt"
        file.write_text("\n\n".join(p["context"] for p in article["paragraphs"]), encoding="utf-8")
        files.append(file)
    return files


def one_run(files: list[Path], device: str) -> dict:
    pipeline, folder = temporary_pipeline(device=device)
    embedder = pipeline.embedder
    embedder.encode(["warm-up"] * embedder.batch_size)
    started = time.perf_counter()
    results = [pipeline.ingest_file(file) for file in files]
    pipeline_s = time.perf_counter() - started
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise SystemExit(f"ingest failed: {[(r.file_name, r.error) for r in failed]}")
    chunks = sum(r.chunks for r in results)
    collection = pipeline.store(pipeline.settings.collection).collection
    texts = collection.get(include=["documents"])["documents"]
    started = time.perf_counter()
    embedder.encode(texts)
    raw_s = time.perf_counter() - started
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "chunks": chunks,
        "pipeline_chunks_per_s": chunks / pipeline_s,
        "raw_encode_chunks_per_s": len(texts) / raw_s,
        "ratio": (chunks / pipeline_s) / (len(texts) / raw_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="SQuAD-format JSON: one document per article")
    source.add_argument("--files", help="a folder of documents")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ragctl-throughput-"))
    if args.dataset:
        files = documents_from_squad(args.dataset, args.articles, scratch)
    else:
        files = sorted(p for p in Path(args.files).rglob("*") if p.is_file())
    runs = [one_run(files, args.device) for _ in range(args.runs)]
    shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "documents": len(files),
        "chunks": runs[0]["chunks"],
        "runs": args.runs,
        "pipeline_chunks_per_s": round(statistics.median(r["pipeline_chunks_per_s"] for r in runs), 1),
        "raw_encode_chunks_per_s": round(statistics.median(r["raw_encode_chunks_per_s"] for r in runs), 1),
        "ratio_median": round(statistics.median(r["ratio"] for r in runs), 3),
        "ratio_min": round(min(r["ratio"] for r in runs), 3),
        "machine": machine(),
    }
    if not args.json:
        print(f"{result['documents']} documents, {result['chunks']} chunks: pipeline "
              f"{result['pipeline_chunks_per_s']} chunks/s, raw encode {result['raw_encode_chunks_per_s']} chunks/s, "
              f"ratio {result['ratio_median']} (min {result['ratio_min']}) over {args.runs} runs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
