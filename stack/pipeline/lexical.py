"""Korean-aware lexical retrieval: BM25 over kiwipiepy morphemes, kept in SQLite postings.

Why not a bm25s index file: bm25s precomputes a static sparse matrix with the IDF of the whole
corpus baked into every entry, so adding or deleting one document would mean rebuilding it.
Here the postings (term, chunk, tf) and chunk lengths are rows, adding or deleting a document
touches only its own rows, and scores are computed at query time with the same Lucene BM25
formula bm25s uses (k1=1.5, b=0.75; a test checks the scores agree with bm25s).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from stack.pipeline.sqlite import connect

# Content-bearing parts of speech (Sejong tags as kiwi reports them): nouns, numerals, roots,
# verb and adjective stems, foreign words, hanja, numbers, and serials/URLs/e-mails.
_KEEP_TAGS = {"NNG", "NNP", "NNB", "NR", "NP", "XR", "VV", "VA", "MAG", "SL", "SH", "SN"}
_KEEP_PREFIXES = ("W_",)
_ENGLISH_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "may", "might", "not", "of", "on", "or", "so", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you", "your"]
)

K1 = 1.5
B = 0.75

_kiwi_lock = threading.Lock()


@lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def _keep(tag: str) -> bool:
    return tag in _KEEP_TAGS or tag.startswith(_KEEP_PREFIXES)


def _normalise(form: str, tag: str) -> str | None:
    if tag == "SL":
        word = form.lower()
        if word in _ENGLISH_STOPWORDS:
            return None
        return _light_stem(word)
    return form.lower()


def _light_stem(word: str) -> str:
    """A light English suffix strip so that 'backups' meets 'backup' (no dictionary needed)."""
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + replacement
    return word


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """Content morphemes of each text, lower-cased; the same function for chunks and queries."""
    with _kiwi_lock:  # a Kiwi instance is not safe to share between threads
        analysed = _kiwi().tokenize(list(texts))
    result = []
    for tokens in analysed:
        terms = []
        for token in tokens:
            if _keep(token.tag):
                term = _normalise(token.form, token.tag)
                if term:
                    terms.append(term)
        result.append(terms)
    return result


def tokenize(text: str) -> list[str]:
    return tokenize_many([text])[0]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, length INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS postings (
    term TEXT NOT NULL, chunk_id TEXT NOT NULL, tf INTEGER NOT NULL, PRIMARY KEY (term, chunk_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_chunk ON postings (chunk_id);
"""


def bm25_idf(n_docs: int, df: int) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def bm25_term(tf: int, length: int, avg_length: float) -> float:
    # Lucene (and bm25s) drop the classic (k1 + 1) numerator: a constant factor, same ranking.
    return tf / (tf + K1 * (1 - B + B * length / avg_length))


class LexicalIndex:
    """BM25 postings of one collection, in ``<data>/lexical/<collection>.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self):
        return connect(self.path)

    def add(self, document_id: str, chunks: Iterable[tuple[str, str]]) -> None:
        """Index (chunk id, text) pairs of one document, replacing what it had."""
        chunks = list(chunks)
        token_lists = tokenize_many([text for _, text in chunks]) if chunks else []
        with self._connect() as db:
            self._delete(db, document_id)
            db.executemany(
                "INSERT INTO chunks (chunk_id, doc_id, length) VALUES (?, ?, ?)",
                [(chunk_id, document_id, len(tokens)) for (chunk_id, _), tokens in zip(chunks, token_lists)],
            )
            db.executemany(
                "INSERT INTO postings (term, chunk_id, tf) VALUES (?, ?, ?)",
                [
                    (term, chunk_id, tf)
                    for (chunk_id, _), tokens in zip(chunks, token_lists)
                    for term, tf in Counter(tokens).items()
                ],
            )

    def delete(self, document_id: str) -> None:
        with self._connect() as db:
            self._delete(db, document_id)

    @staticmethod
    def _delete(db: sqlite3.Connection, document_id: str) -> None:
        db.execute(
            "DELETE FROM postings WHERE chunk_id IN (SELECT chunk_id FROM chunks WHERE doc_id = ?)",
            (document_id,),
        )
        db.execute("DELETE FROM chunks WHERE doc_id = ?", (document_id,))

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def document_ids(self) -> set[str]:
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT doc_id FROM chunks")}

    def search(self, query: str, n: int = 50) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best ``n`` chunks, best first."""
        return self.score_terms(tokenize(query), n)

    def score_terms(self, terms: Sequence[str], n: int = 50) -> list[tuple[str, float]]:
        if not terms:
            return []
        query_terms = Counter(terms)
        scores: dict[str, float] = {}
        with self._connect() as db:
            n_docs, avg_length = db.execute("SELECT COUNT(*), AVG(length) FROM chunks").fetchone()
            if not n_docs:
                return []
            avg_length = avg_length or 1.0
            for term, weight in query_terms.items():
                rows = db.execute(
                    "SELECT p.chunk_id, p.tf, c.length FROM postings p JOIN chunks c USING (chunk_id) "
                    "WHERE p.term = ?",
                    (term,),
                ).fetchall()
                if not rows:
                    continue
                idf = bm25_idf(n_docs, len(rows))
                for chunk_id, tf, length in rows:
                    scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * idf * bm25_term(
                        tf, length, avg_length
                    )
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:n]
