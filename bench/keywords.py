"""One-word keyword search over the corpus's Korean documents, through the real pipeline.

Kiwi segments a lone compound differently from the same word in a sentence (봉화댐 alone is
one noun, 봉화/댐 in "봉화댐을 점검"), so a keyword query can miss its own chunks.  This
ingests every HWP/HWPX file of the corpus (files that fail to parse are skipped), picks noun
compounds automatically — kiwi runs of 2+ nouns that touch, 3–8 Hangul letters, found in 2–30
chunks — samples ``--sample`` of them (seed 0) and asks ``pipeline.search(word, top_k=10)`` in
hybrid (default) and bm25 mode.  Per word:

* recall: share of the chunks that contain the word (at most 10 of them) found in the top 10;
* first: share of the top min(10, chunks with the word) that contain it (the word ranked first).

By default the lexical index is measured twice: first written by analyzer 1 (morphemes only, as
before issue #9), then rebuilt in place by the current analyzer (which is what opening an old
index does) and measured again.

    python bench/keywords.py --corpus ../shared/corpus --json

The last line of output is one JSON object: "before" and "after", each with hybrid and bm25
results, the words, and the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

from _common import machine, temporary_pipeline

TOP_K = 10


def korean_files(corpus: Path) -> list[Path]:
    return sorted(p for p in (corpus / "hwp").rglob("*") if p.is_file() and p.suffix.lower() in (".hwp", ".hwpx"))


def noun_compounds(texts: list[str]) -> set[str]:
    """Runs of 2+ nouns (NNG/NNP) that touch in the text, 3–8 Hangul letters."""
    from stack.pipeline.lexical import kiwi_tokens

    words = set()
    for tokens, text in zip(kiwi_tokens(texts), texts, strict=True):
        run: list = []
        for token in [*tokens, None]:
            if token is not None and token.tag in ("NNG", "NNP") and (
                not run or token.start == run[-1].start + run[-1].len
            ):
                run.append(token)
                continue
            if len(run) >= 2:
                word = text[run[0].start : run[-1].start + run[-1].len]
                if 3 <= len(word) <= 8 and all("\uac00" <= char <= "\ud7a3" for char in word):
                    words.add(word)
            run = [token] if token is not None and token.tag in ("NNG", "NNP") else []
    return words


def measure(pipeline, words: list[tuple[str, list[str]]]) -> dict:
    result = {}
    for mode in ("hybrid", "bm25"):
        recall = first = 0.0
        misses = []
        started = time.perf_counter()
        for word, containing in words:
            top = [hit.chunk_id for hit in pipeline.search(word, top_k=TOP_K, mode=mode)]
            k = min(TOP_K, len(containing))
            found = len(set(containing) & set(top)) / k
            ranked_first = len(set(containing) & set(top[:k])) / k
            recall += found
            first += ranked_first
            if found < 1:
                misses.append(word)
        result[mode] = {
            "recall@10": round(recall / len(words), 4),
            "first": round(first / len(words), 4),
            "words_missing_a_chunk": len(misses),
            "examples_missing": misses[:10],
            "query_ms_mean": round(1000 * (time.perf_counter() - started) / len(words), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--sample", type=int, default=200, help="how many words to ask (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only-current", action="store_true", help="skip the analyzer-1 (before) measurement")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (last line)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    from stack.pipeline import lexical

    current = lexical.ANALYZER_VERSION
    if not args.only_current:
        lexical.ANALYZER_VERSION = 1  # ingest with the old analyzer first

    pipeline, folder = temporary_pipeline()
    collection = pipeline.settings.collection
    started = time.perf_counter()
    documents, failed = [], []
    for path in korean_files(args.corpus):
        result = pipeline.ingest_file(path)
        if result.status == "done":
            documents.append(result.document_id)
        elif result.status == "failed":
            failed.append(path.name)
    ingest_s = time.perf_counter() - started

    store = pipeline.store(collection)
    chunks = [(chunk_id, text) for doc in documents for chunk_id, text, _ in store.document_chunks(doc)]
    candidates = sorted(noun_compounds([text for _, text in chunks]))
    words = []
    for word in candidates:
        containing = [chunk_id for chunk_id, text in chunks if word in text]
        if 2 <= len(containing) <= 30:
            words.append((word, containing))
    random.Random(args.seed).shuffle(words)
    words = words[: args.sample]

    result: dict = {"corpus": str(args.corpus), "documents": len(documents), "failed_files": len(failed),
                    "chunks": len(chunks), "compounds_eligible": len(candidates), "words": len(words)}
    if not args.only_current:
        result["before"] = {"analyzer": 1, **measure(pipeline, words)}
        lexical.ANALYZER_VERSION = current
        started = time.perf_counter()
        pipeline.lexical(collection)  # opening an index written by another analyzer rebuilds it
        result["rebuild_seconds"] = round(time.perf_counter() - started, 2)
    result["after"] = {"analyzer": current, "field_weights": {"morpheme": lexical.FIELD_WEIGHTS[lexical.MORPHEME],
                       "compound": lexical.FIELD_WEIGHTS[lexical.COMPOUND], "bigram": lexical.FIELD_WEIGHTS[lexical.BIGRAM]},
                       **measure(pipeline, words)}
    result.update(sample_words=[word for word, _ in words[:20]], ingest_seconds=round(ingest_s, 1), machine=machine())
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if not args.json:
        for name in ("before", "after"):
            if name in result:
                for mode in ("hybrid", "bm25"):
                    row = result[name][mode]
                    print(f"{name:>6} {mode:>6}: recall@10 {row['recall@10']:.4f}  first {row['first']:.4f}  "
                          f"missing {row['words_missing_a_chunk']}/{len(words)}")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
