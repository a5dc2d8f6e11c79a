import numpy as np
import pytest

from stack.pipeline.lexical import LexicalIndex, tokenize, tokenize_many
from tests.support.texts import COMPOUNDS, CORPUS


@pytest.fixture
def index(tmp_path):
    idx = LexicalIndex(tmp_path / "lexical.sqlite")
    for doc in ("a", "b", "c"):
        idx.add(doc, [(cid, text) for cid, text in CORPUS.items() if cid.startswith(doc + ":")])
    return idx


def test_tokens_are_content_morphemes():
    tokens = tokenize("연차 휴가는 며칠인가요? The backups are kept")
    assert {"연차", "휴가", "며칠", "backup", "kept"} <= set(tokens)
    assert "는" not in tokens and "the" not in tokens and "are" not in tokens


def test_korean_query_finds_korean_chunk(index):
    assert index.search("연차 휴가는 며칠 주어지나요?")[0][0] == "a:0"
    assert index.search("백업은 언제 실행되나요")[0][0] == "b:0"
    assert index.search("when do backups run")[0][0] == "c:0"


def test_scores_match_bm25s(index):
    """Same Lucene BM25 as bm25s, so the SQLite postings are a faithful, updatable bm25s index."""
    import bm25s

    ids = list(CORPUS)
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(tokenize_many([CORPUS[i] for i in ids]), show_progress=False)
    for query in ("연차 휴가 신청", "backups kept days", "서버 백업 보관"):
        terms = tokenize(query)
        ours = dict(index.score_terms(terms, n=100))
        theirs = retriever.get_scores(terms)
        expected = {ids[i]: float(s) for i, s in enumerate(theirs) if s > 0}
        assert ours.keys() == expected.keys()
        np.testing.assert_allclose([ours[k] for k in expected], list(expected.values()), rtol=1e-5)


def test_incremental_add_and_delete(index):
    before = index.count()
    index.add("d", [("d:0", "연차 휴가 규정 개정 안내")])
    assert index.count() == before + 1
    assert "d:0" in dict(index.search("연차 휴가 개정"))
    index.delete("a")
    assert not any(cid.startswith("a:") for cid, _ in index.search("연차 휴가", n=100))
    assert index.document_ids() == {"b", "c", "d"}
    # Re-adding a document replaces its rows rather than duplicating them.
    index.add("d", [("d:0", "연차 휴가 규정 개정 안내")])
    assert index.count() == before - 1  # a (2 chunks) gone, d (1 chunk) there once


def test_empty_query_and_empty_index(tmp_path):
    idx = LexicalIndex(tmp_path / "x.sqlite")
    assert idx.search("anything") == []
    assert idx.search("?!") == []


# -- compounds: a lone word is analysed differently from the same word in a sentence ----------



@pytest.fixture
def compounds(tmp_path):
    idx = LexicalIndex(tmp_path / "compounds.sqlite")
    idx.add("k", list(COMPOUNDS.items()))
    return idx


@pytest.mark.parametrize("word", ["봉화댐", "수사국", "상주시", "법인등기부"])
def test_a_lone_compound_finds_every_chunk_that_holds_it_ranked_first(compounds, word):
    holding = {cid for cid, text in COMPOUNDS.items() if word in text}
    ranked = [cid for cid, _ in compounds.search(word, n=100)]
    assert set(ranked[: len(holding)]) == holding, (word, ranked)


def test_lone_words_are_analysed_unlike_in_sentences():
    """Why the compound and bigram fields exist: kiwi's own segmentations differ."""
    from stack.pipeline.lexical import COMPOUND, analyse_many

    assert "봉화댐" in tokenize("봉화댐") and "봉화댐" not in tokenize("봉화댐을 점검")
    alone, in_sentence = analyse_many(["봉화댐", "봉화댐을 점검"])
    assert COMPOUND + "봉화댐" in alone and COMPOUND + "봉화댐" in in_sentence
    alone, in_sentence = analyse_many(["법인등기부", "법인등기부를 떼다"])
    assert COMPOUND + "법인등기부" in alone and COMPOUND + "법인등기부" in in_sentence


def test_bigram_field_scores_match_bm25s(compounds):
    """Each field is plain BM25 over its own terms and lengths, times the field's weight."""
    import bm25s

    from stack.pipeline.lexical import BIGRAM, FIELD_WEIGHTS, analyse_many

    ids = list(COMPOUNDS)
    bigrams = [[t for t in terms if t.startswith(BIGRAM)] for terms in analyse_many([COMPOUNDS[i] for i in ids])]
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(bigrams, show_progress=False)
    for query in ("봉화댐", "법인등기부"):
        terms = [t for t in analyse_many([query])[0] if t.startswith(BIGRAM)]
        ours = dict(compounds.score_terms(terms, n=100))
        theirs = retriever.get_scores(terms)
        expected = {ids[i]: FIELD_WEIGHTS[BIGRAM] * float(s) for i, s in enumerate(theirs) if s > 0}
        assert ours.keys() == expected.keys()
        np.testing.assert_allclose([ours[k] for k in expected], list(expected.values()), rtol=1e-5)


# -- an index written by an older analyzer is rebuilt ------------------------------------------

def _legacy_index(path, chunks):
    """A file as analyzer 1 wrote it (before versions and chunk texts were recorded)."""
    import sqlite3
    from collections import Counter

    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE chunks (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, length INTEGER NOT NULL);"
        "CREATE INDEX chunks_doc ON chunks (doc_id);"
        "CREATE TABLE postings (term TEXT NOT NULL, chunk_id TEXT NOT NULL, tf INTEGER NOT NULL,"
        " PRIMARY KEY (term, chunk_id)) WITHOUT ROWID;"
        "CREATE INDEX postings_chunk ON postings (chunk_id);"
    )
    for (chunk_id, text), tokens in zip(chunks, tokenize_many([text for _, text in chunks])):
        db.execute("INSERT INTO chunks VALUES (?, ?, ?)", (chunk_id, chunk_id.split(":")[0], len(tokens)))
        db.executemany("INSERT INTO postings VALUES (?, ?, ?)", [(t, chunk_id, n) for t, n in Counter(tokens).items()])
    db.commit()
    db.close()


def _stored_version(path):
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key = 'analyzer'").fetchone()[0])
    finally:
        db.close()


def test_legacy_index_is_rebuilt_from_the_stores_texts(tmp_path):
    from stack.pipeline.lexical import ANALYZER_VERSION

    path = tmp_path / "legacy.sqlite"
    _legacy_index(path, list(COMPOUNDS.items()))
    assert [cid for cid, _ in LexicalIndex(path, version=1).search("봉화댐")] == []  # the miss of issue #9
    asked = []

    def chunk_texts(doc_id):
        asked.append(doc_id)
        return [(cid, text) for cid, text in COMPOUNDS.items() if cid.startswith(doc_id + ":")]

    idx = LexicalIndex(path, chunk_texts=chunk_texts)
    assert asked == ["k"] and _stored_version(path) == ANALYZER_VERSION
    assert {cid for cid, _ in idx.search("봉화댐")[:2]} == {"k:0", "k:1"}
    assert idx.count() == len(COMPOUNDS)
    LexicalIndex(path, chunk_texts=chunk_texts)  # current now: nothing is rebuilt again
    assert asked == ["k"]


def test_legacy_index_without_texts_is_searched_as_written_until_rebuilt(tmp_path):
    path = tmp_path / "legacy.sqlite"
    _legacy_index(path, [("a:0", CORPUS["a:0"])])
    idx = LexicalIndex(path)  # no source of texts: keep the old postings, analyse queries the old way
    assert idx.version == 1 and _stored_version(path) == 1
    assert idx.search("연차 휴가")[0][0] == "a:0"
    idx.add("k", list(COMPOUNDS.items()))  # still writable; its texts are kept from now on
    assert LexicalIndex(path, chunk_texts=lambda doc: [("a:0", CORPUS["a:0"])]).search("봉화댐")[0][0] in ("k:0", "k:1")
    assert _stored_version(path) > 1


def test_index_written_by_another_analyzer_rebuilds_from_its_own_texts(tmp_path):
    path = tmp_path / "v1.sqlite"
    old = LexicalIndex(path, version=1)
    old.add("k", list(COMPOUNDS.items()))
    assert "k:0" not in dict(old.search("봉화댐"))
    new = LexicalIndex(path)  # no chunk_texts needed: the file keeps them
    assert {cid for cid, _ in new.search("봉화댐")[:2]} == {"k:0", "k:1"}


def test_concurrent_openers_rebuild_once(tmp_path):
    import threading

    path = tmp_path / "legacy.sqlite"
    _legacy_index(path, list(COMPOUNDS.items()))
    calls, errors = [], []

    def chunk_texts(doc_id):
        calls.append(doc_id)
        return list(COMPOUNDS.items())

    def open_and_search():
        try:
            LexicalIndex(path, chunk_texts=chunk_texts).search("상주시")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and calls == ["k"]
    assert LexicalIndex(path).count() == len(COMPOUNDS)
