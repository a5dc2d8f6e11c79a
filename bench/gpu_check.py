"""CUDA check of the embedding path, for a machine with a GPU.

    python bench/gpu_check.py --model DIR --articles FILE [--reference DIR]

1. ``Embedder(device="auto")`` resolves to CUDA and puts the model there.
2. Its vectors agree with reference vectors computed on the CPU (cosine ≥ 0.999) when
   ``--reference`` holds reference.npy and sentences.json.
3. Throughput on the chunks of --articles, chunked as the pipeline chunks: the Embedder's batched
   encode (what ingest calls, with its progress and cancel checks) against raw ``model.encode``
   on the same texts — the embedding stage's share of the physical limit on that GPU — at
   several batch sizes, median of 5 runs each.  The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--articles", required=True)
    parser.add_argument("--reference")
    args = parser.parse_args()

    import numpy as np
    import torch

    from stack.pipeline.chunk import chunk_document
    from stack.pipeline.document import Block, ParsedDocument
    from stack.pipeline.embed import Embedder, resolve_device

    result: dict = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    result["device_auto"] = resolve_device("auto")
    if torch.cuda.is_available():
        result["gpu"] = torch.cuda.get_device_name(0)
    embedder = Embedder(args.model, device="auto", batch_size=32)
    result["model_device"] = str(embedder.model.device)
    embedder.model.float()  # the carried copy is stored in fp16 to fit the transfer; compare in fp32

    if args.reference:
        folder = Path(args.reference)
        sentences = json.loads((folder / "sentences.json").read_text())
        reference = np.load(folder / "reference.npy")
        vectors = embedder.encode(sentences)
        cosines = (vectors * reference).sum(axis=1)
        result["cosine_vs_cpu_min"] = round(float(cosines.min()), 5)

    text = Path(args.articles).read_text()
    document = ParsedDocument("text", "gpu-check", [Block(p) for p in text.split("\n\n")])
    chunks = [c.text for c in chunk_document(document, embedder.count_tokens, max_tokens=200, overlap_tokens=32)]
    result["chunks"] = len(chunks)
    embedder.encode(chunks)  # warm-up
    throughput = {}
    for batch in (32, 64, 128):
        embedder.batch_size = batch
        ours = timed(lambda: embedder.encode(chunks))
        raw = timed(lambda batch=batch: embedder.model.encode(chunks, batch_size=batch, normalize_embeddings=True,
                                                  convert_to_numpy=True, show_progress_bar=False))
        throughput[batch] = {
            "embedder_chunks_per_s": round(len(chunks) / ours, 1),
            "raw_chunks_per_s": round(len(chunks) / raw, 1),
            "ratio": round(raw / ours, 3),
        }
    result["throughput"] = throughput
    print(json.dumps(result))


if __name__ == "__main__":
    main()
