"""One-word keyword search through the Pipeline: a compound finds every chunk that holds it,
however kiwi split it there (issue #9), and an index from before the analyzer kept chunk texts
is rebuilt from the store's."""

from __future__ import annotations

import sqlite3

import pytest

pytestmark = pytest.mark.slow

PARAGRAPHS = [
    "봉화댐을 점검한 결과 이상이 없었다고 관리단은 밝혔다.",
    "봉화댐의 저수율은 지난달보다 조금 낮아졌다.",
    "봉화댐관리사무소는 여름철 방류 계획을 발표했다.",
    "경북 봉화 지역의 여러 댐 가운데 한 곳에서 보수 공사가 시작되었다.",
    "봉화군은 산간 지역의 도로를 넓히는 사업을 추진한다.",
    "상주시에서 열린 축제에 많은 사람이 모였다.",
]


@pytest.fixture
def keyword_pipeline(pipeline):
    folder = pipeline.settings.project_root / "keywords"
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(PARAGRAPHS):
        path = folder / f"p{i}.txt"
        path.write_text(text + "\n", encoding="utf-8")
        assert pipeline.ingest_file(path).status == "done"
    return pipeline


def _holding(pipeline, word: str) -> set[str]:
    store = pipeline.store(pipeline.settings.collection)
    return {
        chunk_id
        for record in pipeline.documents()
        for chunk_id, text, _ in store.document_chunks(record.id)
        if word in text
    }


@pytest.mark.parametrize("mode", ["hybrid", "bm25"])
def test_lone_compound_finds_every_chunk_that_holds_it(keyword_pipeline, mode):
    holding = _holding(keyword_pipeline, "봉화댐")
    assert len(holding) == 3
    hits = [hit.chunk_id for hit in keyword_pipeline.search("봉화댐", top_k=10, mode=mode)]
    assert set(hits[: len(holding)]) == holding, hits


def test_index_from_before_the_analyzer_kept_texts_is_rebuilt_from_the_store(keyword_pipeline):
    from stack.pipeline.lexical import ANALYZER_VERSION

    collection = keyword_pipeline.settings.collection
    path = keyword_pipeline.settings.data_path / "lexical" / f"{collection}.sqlite"
    db = sqlite3.connect(path)
    with db:  # what a file written before versions were recorded looks like: no texts, no version
        db.execute("UPDATE chunks SET text = NULL")
        db.execute("DELETE FROM meta")
        db.execute("DELETE FROM postings WHERE substr(term, 1, 1) IN (char(1), char(2))")
    db.close()
    lexical = keyword_pipeline.lexical(collection)
    assert lexical.version == ANALYZER_VERSION
    holding = _holding(keyword_pipeline, "봉화댐")
    hits = [hit.chunk_id for hit in keyword_pipeline.search("봉화댐", top_k=10, mode="bm25")]
    assert set(hits[: len(holding)]) == holding
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM chunks WHERE text IS NULL").fetchone()[0] == 0
    db.close()
