"""BM25 search latency with the postings in PostgreSQL vs SQLite (issue #12: p95 within 1.5×).

Chunks are made from KorQuAD paragraphs: every paragraph is split into sentences, each sentence
is analysed once (kiwi: morphemes, compounds, bigrams — lexical.analyse_many), and each chunk is
4–6 sentences drawn at random, its terms the concatenation of theirs (noun runs never cross a
sentence end, so this is what analysing the chunk would give, at a fraction of the cost).  The
same chunks go into a SQLite index (one file, as in data/lexical/) and into PostgreSQL (a private
cluster like the test suite's, or --database-url), ten chunks per document.

Then ~200 KorQuAD questions are searched in each, in rounds (the first round warms caches and is
not counted).  Two timings per query: ``search`` (what retrieval calls: kiwi on the question +
the postings) and ``score`` (the postings alone, the question already analysed).

    python bench/postings.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --chunks 10000 100000

The last line is one JSON object: per size, p50/p95 (ms) of each backend and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNKS_PER_DOCUMENT = 10


def load(path: str) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    sentences, questions = [], []
    for article in data:
        for paragraph in article["paragraphs"]:
            sentences += [s.strip() for s in re.split(r"(?<=[.?!])\s+", paragraph["context"]) if len(s.strip()) > 10]
            questions += [qa["question"] for qa in paragraph["qas"]]
    return sentences, questions


def make_chunks(sentences: list[str], n: int, seed: int) -> list[tuple[str, str, list[str]]]:
    """(chunk id, text, terms) × n."""
    from stack.pipeline.lexical import analyse_many

    terms = analyse_many(sentences)
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        picked = rng.sample(range(len(sentences)), rng.randint(4, 6))
        chunks.append((f"d{i // CHUNKS_PER_DOCUMENT:06d}:{i % CHUNKS_PER_DOCUMENT}",
                       " ".join(sentences[j] for j in picked), [t for j in picked for t in terms[j]]))
    return chunks


def load_index(index, chunks) -> float:
    started = time.perf_counter()
    for start in range(0, len(chunks), CHUNKS_PER_DOCUMENT * 100):
        batch = chunks[start : start + CHUNKS_PER_DOCUMENT * 100]
        with index._connect() as db:  # 100 documents per transaction
            for first in range(0, len(batch), CHUNKS_PER_DOCUMENT):
                document = batch[first : first + CHUNKS_PER_DOCUMENT]
                doc_id = document[0][0].split(":")[0]
                index._write(db, doc_id, [(cid, text) for cid, text, _ in document], [t for _, _, t in document])
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(indexes: dict, questions: list[str], rounds: int, score_too: bool = True) -> dict:
    """Each question on every backend in turn (interleaved: on a shared machine, load that comes and
    goes falls on all of them alike); round 0 warms the caches and is not counted."""
    from stack.pipeline.lexical import analyse_many, query_field_weights

    analysed = [(analyse_many([q])[0], query_field_weights(q)) for q in questions]
    timings: dict[str, dict[str, list[float]]] = {name: {"search": [], "score": []} for name in indexes}
    for round_ in range(rounds + 1):
        for question, (terms, weights) in zip(questions, analysed, strict=True):
            for name, index in indexes.items():
                t = time.perf_counter()
                index.search(question)
                if round_:
                    timings[name]["search"].append((time.perf_counter() - t) * 1000)
                if score_too:
                    t = time.perf_counter()
                    index.score_terms(terms, 50, weights)
                    if round_:
                        timings[name]["score"].append((time.perf_counter() - t) * 1000)
    return {name: {kind: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(percentile(v, 0.95), 2),
                          "mean_ms": round(statistics.fmean(v), 2)} for kind, v in kinds.items() if v}
            for name, kinds in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds over the questions (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-only", action="store_true", help="time search alone (not score_terms too)")
    parser.add_argument("--database-url", help="an existing PostgreSQL database (default: a private cluster)")
    args = parser.parse_args()

    import psycopg

    from stack.pipeline.lexical import LexicalIndex
    from stack.pipeline.postgres import PostgresLexicalIndex, database

    sentences, questions = load(args.dataset)
    questions = random.Random(args.seed).sample(questions, min(args.questions, len(questions)))
    server = None
    url = args.database_url
    if url is None:
        from tests.support.postgres_server import start_server

        server = start_server()
        url = server.url()
    folder = Path(tempfile.mkdtemp(prefix="ragctl-bench-postings-"))
    result = {"machine": machine(), "questions": len(questions), "rounds": args.rounds, "sizes": {}}
    try:
        db = database(url)
        for n in args.chunks:
            t = time.perf_counter()
            chunks = make_chunks(sentences, n, args.seed)
            print(f"{n} chunks made in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            lite = LexicalIndex(folder / f"bench-{n}.sqlite")
            pg = PostgresLexicalIndex(db, f"bench-{n}")
            row: dict = {"load_s": {"sqlite": round(load_index(lite, chunks), 1),
                                    "postgres": round(load_index(pg, chunks), 1)}}
            # What autovacuum does after a bulk load: planner statistics, the visibility map.
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("VACUUM ANALYZE lexical_postings")
                admin.execute("VACUUM ANALYZE lexical_stats")
            assert lite.count() == pg.count() == n
            probe = questions[:20]
            assert all([c for c, _ in lite.search(q)] == [c for c, _ in pg.search(q)] for q in probe), "rankings differ"
            row.update(measure({"sqlite": lite, "postgres": pg}, questions, args.rounds, not args.search_only))
            row["p95_ratio"] = {k: round(row["postgres"][k]["p95_ms"] / row["sqlite"][k]["p95_ms"], 2)
                                for k in row["sqlite"]}
            result["sizes"][str(n)] = row
            print(f"{n:>7} chunks  sqlite search p50 {row['sqlite']['search']['p50_ms']} p95 "
                  f"{row['sqlite']['search']['p95_ms']} ms | postgres p50 {row['postgres']['search']['p50_ms']} "
                  f"p95 {row['postgres']['search']['p95_ms']} ms | p95 ratio {row['p95_ratio']}", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if server is not None:
            from tests.support.postgres_server import stop_server

            stop_server(server)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
