"""Korean-aware lexical retrieval: BM25 over kiwipiepy analyses, kept in SQLite (or PostgreSQL) postings.

Why not a bm25s index file: bm25s precomputes a static sparse matrix with the IDF of the whole
corpus baked into every entry, so adding or deleting one document would mean rebuilding it.
Here the postings (term, chunk, tf) and chunk lengths are rows, adding or deleting a document
touches only its own rows, and scores are computed at query time with the same Lucene BM25
formula bm25s uses (k1=1.5, b=0.75; a test checks the scores agree with bm25s).

Three fields, one postings table (a field is a one-character prefix on the term):

* morphemes — kiwi's content morphemes, lower-cased (no prefix; the analyzer of version 1);
* compounds ("\\x01") — each run of nouns that touch in the text, joined as written
  ("봉화댐을" → 봉화댐), whether kiwi split it or not;
* bigrams ("\\x02") — Hangul character bigrams of those runs (봉화댐 → 봉화, 화댐).

Kiwi segments a lone compound differently from the same word in a sentence (봉화댐 alone is one
noun, 봉화/댐 in "봉화댐을 점검"), so morphemes alone miss a one-word query's own chunks; the
compound field meets whole words however they were split, and bigrams meet a word inside a
longer compound (봉화댐관리사무소).  A chunk's score is the weighted sum of its BM25 in each
field (FIELD_WEIGHTS); each field has its own lengths and document frequencies.

The analyzer's version is recorded in the file: an index written by another version is rebuilt
from the chunk texts (kept here from version 2 on; an older file gets them from the caller).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import Any

from stack.pipeline.sqlite import connect, use_wal

log = logging.getLogger(__name__)

#: The analyzer new indexes are written with. 1: content morphemes only (before issue #9);
#: 2: + joined noun runs + Hangul bigrams; 3: the same fields from kiwi without its typo and
#: multi-word dictionaries (issue #25: they cost a cold process 1.9 s of its 2.9 s of kiwi; the
#: multi-word one made "샤시 타루르" one token, which the compound field already covers).  A module
#: attribute so benchmarks can compare.
ANALYZER_VERSION = 3

MORPHEME, COMPOUND, BIGRAM = "", "\x01", "\x02"
#: BM25 of each field is multiplied by its weight; the compound and bigram weights are for a
#: one-word query and shrink with the square of the query's word count (query_field_weights).
#: Tuned with bench/keywords.py and bench/retrieval.py (docs/benchmarks.md).
FIELD_WEIGHTS = {MORPHEME: 1.0, COMPOUND: 2.0, BIGRAM: 2.0}
_LENGTH_COLUMN = {MORPHEME: "length", COMPOUND: "clength", BIGRAM: "blength"}

# Content-bearing parts of speech (Sejong tags as kiwi reports them): nouns, numerals, roots,
# verb and adjective stems, foreign words, hanja, numbers, and serials/URLs/e-mails.
_KEEP_TAGS = {"NNG", "NNP", "NNB", "NR", "NP", "XR", "VV", "VA", "MAG", "SL", "SH", "SN"}
_KEEP_PREFIXES = ("W_",)
# What a noun compound is made of: nouns, numerals, roots, numbers, noun prefixes and suffixes.
_RUN_TAGS = {"NNG", "NNP", "NNB", "NR", "XR", "SN", "XPN", "XSN"}
_ENGLISH_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "may", "might", "not", "of", "on", "or", "so", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you", "your"]
)

K1 = 1.5
B = 0.75

_kiwi_lock = threading.Lock()


@lru_cache(maxsize=2)
def _kiwi(version: int):
    from kiwipiepy import Kiwi

    if version >= 3:
        return Kiwi(load_typo_dict=False, load_multi_dict=False)
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


def _is_hangul(char: str) -> bool:
    return "\uac00" <= char <= "\ud7a3"


def _morphemes(tokens) -> list[str]:
    terms = []
    for token in tokens:
        if _keep(token.tag):
            term = _normalise(token.form, token.tag)
            if term:
                terms.append(term)
    return terms


def _noun_runs(tokens, text: str) -> list[str]:
    """The surface text of each run of compound parts that touch (no space between them)."""
    runs: list[str] = []
    start = end = -1
    for token in tokens:
        if token.tag in _RUN_TAGS:
            if start >= 0 and token.start == end:
                end = token.start + token.len
                continue
            if start >= 0:
                runs.append(text[start:end])
            start, end = token.start, token.start + token.len
        elif start >= 0:
            runs.append(text[start:end])
            start = -1
    if start >= 0:
        runs.append(text[start:end])
    return runs


def _bigrams(word: str) -> list[str]:
    return [word[i : i + 2] for i in range(len(word) - 1) if _is_hangul(word[i]) and _is_hangul(word[i + 1])]


def _analyse(tokens, text: str, version: int) -> list[str]:
    terms = _morphemes(tokens)
    if version >= 2:
        for run in _noun_runs(tokens, text):
            run = run.lower()
            if len(run) >= 2 and any(_is_hangul(char) for char in run):
                terms.append(COMPOUND + run)
                terms.extend(BIGRAM + bigram for bigram in _bigrams(run))
    return terms


def korean_spacing(texts: Sequence[str]) -> list[str]:
    """``texts`` with their Korean word spacing put right by kiwi (OCR adds spaces between syllables
    and drops others: "출 근 한 근 로 자" → "출근한 근로자"), English left as it is."""
    with _kiwi_lock:
        return [_kiwi(ANALYZER_VERSION).space(text, reset_whitespace=True) for text in texts]


def kiwi_tokens(texts: Sequence[str], version: int | None = None, *, local: bool = False) -> list:
    """Kiwi's tokens of each text (form, tag, start, len), from the shared analyser of ``version``:
    the warm process's when this command attached one (``warm.attach``) and ``local`` is not set."""
    from stack.pipeline import warm

    version = ANALYZER_VERSION if version is None else version
    client = None if local else warm.current()
    if client is not None:
        try:
            return client.kiwi_tokens(list(texts), version)
        except warm.WarmUnavailable as exc:
            log.info("warm process unavailable (%s): analysing here", exc)
            warm.detach()
    with _kiwi_lock:  # a Kiwi instance is not safe to share between threads
        return list(_kiwi(version).tokenize(list(texts)))


def analyse_many(texts: Sequence[str], version: int | None = None) -> list[list[str]]:
    """Index terms of each text, field prefix included; the same function for chunks and queries."""
    version = ANALYZER_VERSION if version is None else version
    texts = list(texts)
    if not texts:
        return []
    return [_analyse(tokens, text, version) for tokens, text in zip(kiwi_tokens(texts, version), texts, strict=True)]


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """Content morphemes of each text, lower-cased (the morpheme field alone)."""
    texts = list(texts)
    return [_morphemes(tokens) for tokens in kiwi_tokens(texts)] if texts else []


def tokenize(text: str) -> list[str]:
    return tokenize_many([text])[0]


def query_field_weights(query: str) -> dict[str, float]:
    """Field weights for one query.  In a one-word keyword query the word is the whole query,
    and how kiwi happened to split it decides what it finds: the compound and bigram fields
    carry full weight.  In a long question each word is one piece of evidence among many
    and exact morphemes are the more precise: those fields fade as 1 / words² (with full weight
    they cost KorQuAD R@1 1.5 points; faded, they gain a little)."""
    scale = 1.0 / max(1, len(query.split())) ** 2
    return {field: weight if field == MORPHEME else weight * scale for field, weight in FIELD_WEIGHTS.items()}


def field_of(term: str) -> str:
    return term[0] if term[:1] in (COMPOUND, BIGRAM) else MORPHEME


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, length INTEGER NOT NULL,
    text TEXT, clength INTEGER NOT NULL DEFAULT 0, blength INTEGER NOT NULL DEFAULT 0
);
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


#: chunk texts of one document, for rebuilding an index that did not keep them: doc id → (chunk id, text)
ChunkSource = Callable[[str], Iterable[tuple[str, str]]]


class PostingsIndex(ABC):
    """The lexical index's one contract, whatever holds the postings: SQLite (:class:`LexicalIndex`,
    one file per collection) or PostgreSQL (:class:`stack.pipeline.postgres.PostgresLexicalIndex`,
    when ``RAG_DATABASE_URL`` is set); :func:`stack.pipeline.backends.open_lexical` chooses.

    Analysis and scoring are here, once: a backend stores and reads rows (:meth:`_write`,
    :meth:`_delete`, :meth:`_stats`, :meth:`_postings`) inside its transactions (:meth:`_connect`).
    A backend may compute the same scores where the postings are (PostgreSQL sums them in the
    server: a common term's postings never cross the network); tests/unit/test_state_backends.py
    checks that both rank the same chunks with the same scores."""

    version: int

    @abstractmethod
    def _connect(self) -> AbstractContextManager[Any]:
        """One transaction."""

    @abstractmethod
    def _write(self, db, document_id: str, chunks: list[tuple[str, str]], terms: list[list[str]]) -> None:
        """Store the chunks (id, text, field lengths) and their postings of one document."""

    @abstractmethod
    def _delete(self, db, document_id: str) -> None:
        """Remove a document's chunks and postings."""

    @abstractmethod
    def _stats(self, db) -> tuple[int, float | None, float | None, float | None]:
        """Chunk count, and the average length of each field (morphemes, compounds, bigrams)."""

    @abstractmethod
    def _postings(self, db, terms: Sequence[str]) -> dict[str, list[tuple[str, int, int]]]:
        """term → [(chunk id, tf, the chunk's length in the term's field)] for the given terms."""

    @abstractmethod
    def count(self) -> int:
        """How many chunks are indexed."""

    @abstractmethod
    def document_ids(self) -> set[str]:
        """The documents that have chunks here."""

    def _lock_document(self, db, document_id: str) -> None:
        """Hold the document's write lock until the transaction ends (SQLite: the file's own)."""

    # -- documents ------------------------------------------------------------------------
    def add(self, document_id: str, chunks: Iterable[tuple[str, str]]) -> None:
        """Index (chunk id, text) pairs of one document, replacing what it had."""
        self.add_many([(document_id, list(chunks))])

    def add_many(self, documents: Sequence[tuple[str, list[tuple[str, str]]]]) -> None:
        """:meth:`add` for several documents: one analysis call and one transaction (an embedding
        batch of small files is stored together)."""
        texts = [text for _, chunks in documents for _, text in chunks]
        terms = iter(analyse_many(texts, self.version))
        self._write_documents([(document_id, chunks, [next(terms) for _ in chunks])
                               for document_id, chunks in documents])

    def add_analysed(self, document_id: str, chunks: list[tuple[str, str]], terms: list[list[str]]) -> None:
        """:meth:`add` with each chunk's terms already known (their analysis by ``self.version``):
        a move between backends copies postings without analysing the texts again (state_move.py)."""
        self._write_documents([(document_id, chunks, terms)])

    def _write_documents(self, documents: list[tuple[str, list[tuple[str, str]], list[list[str]]]]) -> None:
        with self._connect() as db:
            # One order for every writer: two transactions locking the same documents cannot deadlock.
            for document_id, chunks, terms in sorted(documents, key=lambda d: d[0]):
                self._lock_document(db, document_id)
                self._delete(db, document_id)
                self._write(db, document_id, chunks, terms)

    def delete(self, document_id: str) -> None:
        with self._connect() as db:
            self._lock_document(db, document_id)
            self._delete(db, document_id)

    def drop(self) -> None:
        """Remove the whole index (a collection's deletion); nothing indexed: nothing to do."""
        for document_id in sorted(self.document_ids()):
            self.delete(document_id)

    # -- queries --------------------------------------------------------------------------
    def search(self, query: str, n: int = 50) -> list[tuple[str, float]]:
        """(chunk id, score) of the best ``n`` chunks, best first."""
        return self.score_terms(analyse_many([query], self.version)[0], n, query_field_weights(query))

    def score_terms(
        self, terms: Sequence[str], n: int = 50, weights: dict[str, float] | None = None
    ) -> list[tuple[str, float]]:
        """Sum over fields of weights[field] (FIELD_WEIGHTS by default) × BM25 of the field's
        terms (prefixed)."""
        weights = weights or FIELD_WEIGHTS
        if not terms:
            return []
        query_terms = Counter(terms)
        scores: dict[str, float] = {}
        with self._connect() as db:
            n_docs, *averages = self._stats(db)
            if not n_docs:
                return []
            postings = self._postings(db, list(query_terms))
        average = dict(zip((MORPHEME, COMPOUND, BIGRAM), (a or 1.0 for a in averages)))
        for term, count in query_terms.items():
            rows = postings.get(term)
            if not rows:
                continue
            field = field_of(term)
            weight = count * weights[field] * bm25_idf(n_docs, len(rows))
            for chunk_id, tf, length in rows:
                scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * bm25_term(tf, length, average[field])
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:n]


def field_lengths(chunk_terms: Sequence[str]) -> tuple[int, int, int]:
    """A chunk's length in each field: morphemes, compounds, bigrams."""
    lengths = Counter(field_of(term) for term in chunk_terms)
    return lengths[MORPHEME], lengths[COMPOUND], lengths[BIGRAM]


class LexicalIndex(PostingsIndex):
    """BM25 postings of one collection, in ``<data>/lexical/<collection>.sqlite``.

    ``chunk_texts`` gives a document's chunk texts when an index written before version 2 (which
    did not keep them) must be rebuilt; without it such an index is searched as it was written.
    """

    def __init__(self, path: Path, *, chunk_texts: ChunkSource | None = None, version: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.version = ANALYZER_VERSION if version is None else version
        with self._connect() as db:
            stored = _stored_version(db)
        if stored != self.version:
            self._upgrade(chunk_texts)

    def _connect(self):
        return connect(self.path)

    def drop(self) -> None:
        """Empty the index, then remove its file (and its WAL): a collection deleted leaves no file."""
        if not self.path.exists():
            return
        super().drop()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- the analyzer version, and rebuilding ------------------------------------------------
    def _upgrade(self, chunk_texts: ChunkSource | None) -> None:
        """Create the schema, or rebuild postings written by another analyzer, in one write
        transaction: another process opening the file meanwhile waits, then finds it done."""
        db = sqlite3.connect(self.path, timeout=600, isolation_level=None)
        try:
            use_wal(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                stored = _stored_version(db)  # again, inside the transaction: another may have done it
                if stored != self.version:
                    _create_schema(db)
                    if stored == _LEGACY:  # analyzer 1's postings, now in the current schema
                        stored = 1
                        _set_version(db, stored)
                    if stored is None:
                        _set_version(db, self.version)
                    elif stored != self.version and not self._rebuild(db, stored, chunk_texts):
                        self.version = stored  # search it as it was written: never worse than before
                        _set_version(db, stored)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    def _rebuild(self, db: sqlite3.Connection, stored: int, chunk_texts: ChunkSource | None) -> bool:
        documents: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
        for chunk_id, doc_id, text in db.execute("SELECT chunk_id, doc_id, text FROM chunks ORDER BY rowid"):
            documents[doc_id].append((chunk_id, text))
        texts: dict[str, list[tuple[str, str]]] = {}
        for doc_id, chunks in documents.items():
            if all(text is not None for _, text in chunks):
                texts[doc_id] = [(chunk_id, text) for chunk_id, text in chunks]
                continue
            try:
                if chunk_texts is None:
                    raise LookupError("no source of chunk texts was given")
                texts[doc_id] = list(chunk_texts(doc_id))  # a document gone from the store is dropped
            except Exception as exc:  # noqa: BLE001 - the store unreachable, say: keep the old index, retry later
                log.warning(
                    "lexical index %s was written by analyzer %s and keeps no chunk texts (%s); "
                    "searching it as it is until it can be rebuilt", self.path, stored, exc,
                )
                return False
        db.execute("DELETE FROM postings")
        db.execute("DELETE FROM chunks")
        for doc_id, chunks in texts.items():
            self._write(db, doc_id, chunks, analyse_many([text for _, text in chunks], self.version))
        _set_version(db, self.version)
        log.info("lexical index %s: rebuilt %d documents from analyzer %s to %s", self.path, len(texts), stored, self.version)
        return True

    # -- rows -------------------------------------------------------------------------------
    def _write(self, db: sqlite3.Connection, document_id: str, chunks: list[tuple[str, str]], terms: list[list[str]]) -> None:
        rows = []
        for (chunk_id, text), chunk_terms in zip(chunks, terms, strict=True):
            lengths = Counter(field_of(term) for term in chunk_terms)
            rows.append((chunk_id, document_id, text, lengths[MORPHEME], lengths[COMPOUND], lengths[BIGRAM]))
        db.executemany(
            "INSERT INTO chunks (chunk_id, doc_id, text, length, clength, blength) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        db.executemany(
            "INSERT INTO postings (term, chunk_id, tf) VALUES (?, ?, ?)",
            [
                (term, chunk_id, tf)
                for (chunk_id, _), chunk_terms in zip(chunks, terms)
                for term, tf in Counter(chunk_terms).items()
            ],
        )

    def _delete(self, db: sqlite3.Connection, document_id: str) -> None:
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

    def _stats(self, db: sqlite3.Connection) -> tuple[int, float | None, float | None, float | None]:
        return db.execute("SELECT COUNT(*), AVG(length), AVG(clength), AVG(blength) FROM chunks").fetchone()

    def _postings(self, db: sqlite3.Connection, terms: Sequence[str]) -> dict[str, list[tuple[str, int, int]]]:
        found = {}
        for term in terms:
            rows = db.execute(
                f"SELECT p.chunk_id, p.tf, c.{_LENGTH_COLUMN[field_of(term)]} FROM postings p JOIN chunks c "
                "USING (chunk_id) WHERE p.term = ?",
                (term,),
            ).fetchall()
            if rows:
                found[term] = rows
        return found


_LEGACY = 0  # a file from before versions (and chunk texts) were recorded: analyzer 1's postings


def _stored_version(db: sqlite3.Connection) -> int | None:
    """The analyzer the file was written with; _LEGACY for a file from before versions were
    recorded, None for a new file."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE key = 'analyzer'").fetchone()
        if row is not None:
            return int(row[0])
    return _LEGACY if "chunks" in tables else None


def _create_schema(db: sqlite3.Connection) -> None:
    """The current schema; a file from before version 2 gains its new columns (text, field lengths)."""
    for statement in _SCHEMA.strip().split(";\n"):
        db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
    for column, declaration in (("text", "TEXT"), ("clength", "INTEGER NOT NULL DEFAULT 0"),
                                ("blength", "INTEGER NOT NULL DEFAULT 0")):
        if column not in columns:
            db.execute(f"ALTER TABLE chunks ADD COLUMN {column} {declaration}")


def _set_version(db: sqlite3.Connection, version: int) -> None:
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('analyzer', ?)", (str(version),))
