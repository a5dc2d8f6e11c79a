"""Answers through the real pipeline: the embedding model's sentence similarity in extractive
answers, and LLM citations checked against the sources given (the local test LLM server)."""

from __future__ import annotations

import pytest

from stack.pipeline.retrieve import default_fusion_weights
from tests.support.llm_server import FakeLLM
from tests.support.suite import SAMPLES

pytestmark = pytest.mark.slow


def test_sentence_similarity_comes_from_the_embedding_model(pipeline):
    question = "What time do nightly backups run?"
    similarity = pipeline.sentence_similarity(question)
    assert similarity is not None
    scores = similarity(question, ["Nightly backups run at 02:00 every day.", "The cafeteria serves lunch at noon."])
    assert len(scores) == 2 and scores[0] > scores[1]


def test_korean_questions_get_a_similarity_only_from_a_model_that_reads_korean(pipeline):
    s = pipeline.settings
    weights = default_fusion_weights(pipeline.model_name(s.collection), s.dense_weight_korean, s.dense_weight_other)
    similarity = pipeline.sentence_similarity("연차 휴가는 며칠인가요?")
    assert (similarity is None) == (weights.korean == 0.0)


def test_ask_chooses_its_sentence_with_the_model(pipeline):
    assert pipeline.ingest_file(SAMPLES / "backup-procedure.pdf").status == "done"
    asked = []
    original = pipeline.sentence_similarity

    def spy(question, **kwargs):
        similarity = original(question, **kwargs)

        def recorded(text, sentences):
            asked.append(list(sentences))
            return similarity(text, sentences)

        return recorded

    pipeline.sentence_similarity = spy
    answer = pipeline.ask("What time do nightly backups run?")
    assert asked and all(asked[0])
    assert answer.mode == "extractive" and "02:00" in answer.answer
    assert len(answer.answer.splitlines()) >= 2 and answer.answer.count("Extractive answer") == 1


def test_llm_citations_that_name_no_source_are_removed_and_reported(make_pipeline):
    with FakeLLM() as llm:
        llm.answer = lambda prompt: "Backups run nightly [1] and are kept for 30 days [9]. See also [1, 12]."
        pipeline = make_pipeline(openai_api_key="sk-local-test", openai_base_url=llm.base_url, llm_model="test-model")
        assert pipeline.ingest_file(SAMPLES / "backup-procedure.pdf").status == "done"
        answer = pipeline.ask("How long are backups kept?")
    assert answer.mode == "llm" and len(answer.sources) < 9
    assert answer.invalid_citations == [9, 12]
    assert answer.answer == "Backups run nightly [1] and are kept for 30 days. See also [1]."
    assert answer.to_dict()["invalid_citations"] == [9, 12]
