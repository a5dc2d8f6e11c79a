import numpy as np
import pytest

from stack.pipeline.lexical import LexicalIndex, tokenize, tokenize_many

CORPUS = {
    "a:0": "연차 휴가는 매년 15일이 주어지며 신청은 3일 전까지 해야 한다.",
    "a:1": "병가는 연 10일까지 사용할 수 있다.",
    "b:0": "서버 백업은 매일 새벽 2시에 실행되고 30일 동안 보관한다.",
    "c:0": "Backups run nightly at 02:00 and are kept for thirty days.",
    "c:1": "The restore procedure is tested every month by the operations team.",
}


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
