"""Extractive answers (sentence choice, headings, duplicates, neighbours) and LLM citation checks."""

from __future__ import annotations

import re

import pytest

from stack.pipeline.answer import (
    EXTRACTIVE_LABEL_EN,
    EXTRACTIVE_LABEL_KO,
    check_citations,
    extractive_answer,
    heading_flags,
)
from stack.pipeline.retrieve import Hit


def hit(text: str, n: int = 0, score: float = 1.0, doc: str = "doc") -> Hit:
    return Hit(f"{doc}:{n}", doc, text, {"file_name": f"{doc}.txt"}, score)


def body_lines(answer) -> list[str]:
    """The answer's lines after the label, without their [n] markers."""
    return [re.sub(r"\s*\[\d+\]", "", line) for line in answer.answer.splitlines()[1:]]


def test_overlapping_chunks_never_repeat_a_sentence():
    shared = "입사 1년 이상 직원의 연차 휴가는 연 15일이다. 3년 이상 근속하면 연차 휴가가 2년마다 1일씩 더해진다."
    hits = [
        hit(f"휴가 규정은 모든 직원에게 적용된다. {shared}", 0, 1.0),
        hit(f"{shared} 연차 휴가는 그룹웨어로 신청한다.", 1, 0.9),
    ]
    answer = extractive_answer("입사 1년 이상 직원의 연차 휴가는 며칠인가?", hits, max_sentences=3)
    sentences = [s for line in body_lines(answer) for s in re.split(r"(?<=[.!?])\s+", line)]
    assert "입사 1년 이상 직원의 연차 휴가는 연 15일이다." in sentences
    assert len(sentences) == len(set(sentences)), answer.answer


def test_the_same_sentence_with_other_spacing_counts_once():
    hits = [hit("Backups run nightly at 02:00 KST.", 0), hit("Backups  run nightly\tat 02:00 KST.", 1, 0.9)]
    answer = extractive_answer("When do backups run?", hits, max_sentences=3)
    assert len(body_lines(answer)) == 1


@pytest.mark.parametrize(
    "question, text",
    [
        ("연차 휴가는 며칠인가?", "제1조 (연차 휴가)\n입사 1년 이상 직원의 연차 휴가는 연 15일이다."),
        ("연차 휴가는 며칠인가?", "1. 연차 휴가\n입사 1년 이상 직원의 연차 휴가는 연 15일이다."),
        ("연차 휴가 규정은?", "주식회사 한빛 연차 휴가 규정\n연차 휴가 규정은 입사 1년 이상 직원에게 적용된다."),
        ("What are the daily limits for expenses?", "Daily Expense Limits\nThe daily limits for expenses are $50 for meals."),
        ("What is the expense policy?", "1. Expense Policy\nThe expense policy covers meals, hotels and taxis."),
    ],
)
def test_a_heading_is_never_the_answer(question, text):
    answer = extractive_answer(question, [hit(text)], max_sentences=3)
    heading = text.split("\n")[0]
    assert all(heading not in line for line in body_lines(answer)), answer.answer


def test_a_statute_heading_glued_to_its_sentence_is_not_quoted():
    answer = extractive_answer("연차 휴가는 며칠인가?", [hit("제1조 (연차 휴가) 입사 1년 이상 직원의 연차 휴가는 연 15일이다.")])
    assert body_lines(answer) == ["입사 1년 이상 직원의 연차 휴가는 연 15일이다."]


def test_heading_flags():
    lines = [
        "제1조 (연차 휴가)", "1. 개요", "가. 목적", "주식회사 한빛소프트 휴가 규정", "Daily limits", "Expense Policy",
        "Article 3 (Annual Leave)",
        "입사 1년 이상 직원의 연차 휴가는 연 15일이다.", "`ragctl up` 으로 새 버전을 올리고",
        "1. Staging must pass the smoke tests before anything goes to production.",
        "연차 휴가 | 15일 | 유급", "Meals | $50 per day",
        "The committee chose Geneva because it was neutral and easy to reach by rail",
    ]
    assert heading_flags(lines) == [True] * 7 + [False] * 6


def test_one_label_line_only():
    for question, label in (("연차 휴가는 며칠인가?", EXTRACTIVE_LABEL_KO), ("How many days of leave?", EXTRACTIVE_LABEL_EN)):
        answer = extractive_answer(question, [hit("연차 휴가는 연 15일이다. Leave is 15 days a year.")])
        lines = answer.answer.splitlines()
        assert lines[0] == label and label not in "\n".join(lines[1:])
        assert answer.answer.lower().count("extractive") <= 1 and answer.answer.count("추출형") <= 1


def test_one_sentence_when_one_answers():
    text = (
        "The museum opened in 1901. Its collection holds 40,000 paintings. "
        "The east wing was added in 1960 by the architect Anna Berg. Entry is free on Sundays."
    )
    answer = extractive_answer("Which architect added the east wing?", [hit(text)])
    assert body_lines(answer) == ["The east wing was added in 1960 by the architect Anna Berg."]


@pytest.mark.parametrize(
    "question, text, expected",
    [
        (
            "Which city did the committee pick for the new headquarters?",
            ("The committee met in 1998. It picked Geneva as the city for the new headquarters. "
             "Construction took four years."),
            "The committee met in 1998. It picked Geneva as the city for the new headquarters.",
        ),
        (
            "한빛소프트의 본사는 어느 도시로 이전했나?",
            "한빛소프트는 2010년 본사를 판교로 이전했다. 이는 직원 수가 두 배로 늘었기 때문이다. 판교 사옥은 10층이다.",
            None,  # the best sentence stands alone: no neighbour
        ),
        (
            "본사를 판교로 옮긴 이유는 무엇인가?",
            "한빛소프트는 2010년 직원 수가 두 배로 늘었다. 이는 본사를 판교로 옮긴 이유가 되었다. 판교 사옥은 10층이다.",
            "한빛소프트는 2010년 직원 수가 두 배로 늘었다. 이는 본사를 판교로 옮긴 이유가 되었다.",
        ),
    ],
)
def test_a_sentence_that_points_back_is_quoted_with_the_one_before(question, text, expected):
    answer = extractive_answer(question, [hit(text)])
    lines = body_lines(answer)
    if expected is None:
        assert lines == ["한빛소프트는 2010년 본사를 판교로 이전했다."]
    else:
        assert lines == [expected]


def test_a_very_short_sentence_is_completed_by_its_neighbour():
    text = "Opening hours change with the seasons. Summer: 9-18. Winter: 10-16."
    answer = extractive_answer("When is it open in summer?", [hit(text)])
    assert len(body_lines(answer)) == 1 and "Summer: 9-18." in body_lines(answer)[0]
    assert len(body_lines(answer)[0]) > len("Summer: 9-18.")


def test_a_sentence_that_ends_with_a_colon_is_quoted_with_the_one_after():
    text = "The museum has a long history. Tickets for adults:\n12 euros, children free. The shop closes at 17."
    answer = extractive_answer("How much are tickets for adults?", [hit(text)])
    assert body_lines(answer) == ["Tickets for adults: 12 euros, children free."]


def test_the_similarity_callable_is_asked_and_used():
    calls = []

    def similarity(question, sentences):
        calls.append((question, list(sentences)))
        return [0.9 if "Geneva" in sentence else 0.1 for sentence in sentences]

    # Both sentences share the same words with the question: the similarity breaks the tie.
    text = "The office is located in a city near the lake, Paris. The office is located in a city near the lake, Geneva."
    answer = extractive_answer("In which city near the lake is the office located?", [hit(text)], similarity=similarity)
    assert calls and calls[0][0] == "In which city near the lake is the office located?"
    assert len(calls[0][1]) == 2
    assert body_lines(answer) == ["The office is located in a city near the lake, Geneva."]


def test_the_better_ranked_source_wins_a_tie():
    hits = [hit("Leave is 15 days.", 0, 1.0, "a"), hit("Leave is 20 days.", 0, 0.3, "b")]
    answer = extractive_answer("How many days is leave?", hits)
    assert answer.answer.endswith("Leave is 15 days. [1]") or "15 days" in body_lines(answer)[0]


def test_no_hits_says_nothing_matched():
    assert "No passage" in extractive_answer("What?", []).answer


@pytest.mark.parametrize(
    "text, n, expected, invalid",
    [
        ("Backups run at 02:00 [1].", 2, "Backups run at 02:00 [1].", []),
        ("Backups run at 02:00 [3]. They are kept 30 days [2].", 2, "Backups run at 02:00. They are kept 30 days [2].", [3]),
        ("Kept 30 days [1, 4][0].", 2, "Kept 30 days [1].", [4, 0]),
        ("No citation at all.", 0, "No citation at all.", []),
    ],
)
def test_check_citations(text, n, expected, invalid):
    assert check_citations(text, n) == (expected, invalid)


def test_english_word_forms_meet_when_choosing_the_sentence():
    # "enforces" in the question, "enforced" in the answer: the same word for choosing a sentence.
    text = ("The charter lists the rights of every citizen of the union in one document. "
            "The charter is enforced by the court of justice.")
    answer = extractive_answer("Which body enforces the charter?", [hit(text)])
    assert body_lines(answer) == ["The charter is enforced by the court of justice."]


def test_a_short_english_sentence_is_completed_by_the_next_one_on_its_subject():
    text = ("Bowman was the director of the society in 1914 at its peak. "
            "Isiah Bowman, its director, had joined the society as a geographer in 1905. "
            "The building was sold in 1950.")
    answer = extractive_answer("Who was the director of the society in 1914?", [hit(text)])
    expected = ("Bowman was the director of the society in 1914 at its peak. "
                "Isiah Bowman, its director, had joined the society as a geographer in 1905.")
    assert body_lines(answer) == [expected]


def test_sentences_that_follow_each_other_in_one_source_are_one_line():
    text = "Backups run nightly at 02:00. Backups are kept for 30 days. The cafeteria opens at noon."
    answer = extractive_answer("When do backups run and how long are backups kept?", [hit(text)])
    assert body_lines(answer) == ["Backups run nightly at 02:00. Backups are kept for 30 days."]


def test_a_name_cut_at_an_initial_is_one_sentence_again():
    from stack.pipeline.answer import _sentences

    text = ("The university was founded in 1890 with a donation from oil magnate John D. Rockefeller. "
            "Marshall Field donated the land. Dr. Smith moved to St. Louis in 1901.")
    assert _sentences(text) == [
        "The university was founded in 1890 with a donation from oil magnate John D. Rockefeller.",
        "Marshall Field donated the land.",
        "Dr. Smith moved to St. Louis in 1901.",
    ]
    assert _sentences("연차 휴가는 15일이다. 입사 1년 미만은 11일이다.") == ["연차 휴가는 15일이다.", "입사 1년 미만은 11일이다."]


def test_the_learned_sentence_ranker_ships_its_weights_and_ranks_the_answering_sentence_first():
    from stack.pipeline import sentence_ranker
    from stack.pipeline.answer import _candidates, _set_terms, ranker_rows, sources_from_hits

    # The weights are a constant in the project (bench/train_sentence_ranker.py made them): one per feature.
    assert sentence_ranker.available() and set(sentence_ranker.WEIGHTS) == set(sentence_ranker.FEATURES)
    assert all(isinstance(value, float) and abs(value) < 100 for value in sentence_ranker.WEIGHTS.values())

    question = "When did the museum of modern art open its east wing?"
    text = ("The museum of modern art is famous for its east wing and its garden. "
            "The east wing of the museum opened in 1962, designed by Anna Berg. "
            "Entry to the garden is free on Sundays.")
    # The distractor holds more of the question's words and is as close by cosine; only the answer
    # holds what a "when" question asks for.
    vectors = {"famous": 0.84, "opened": 0.84, "Sundays": 0.70}

    def similarity(_question, sentences):
        return [next(v for word, v in vectors.items() if word in sentence) for sentence in sentences]

    sources = sources_from_hits([hit(text)])
    per_source, candidates = _candidates(sources)
    _set_terms(candidates, per_source)
    shortlist, rows = ranker_rows(question, candidates, sources, per_source, similarity)
    assert len(rows) == 3 and all(len(row) == len(sentence_ranker.FEATURES) for row in rows)
    probabilities = dict(zip((c.text for c in shortlist), sentence_ranker.probabilities(rows), strict=True))
    answering = "The east wing of the museum opened in 1962, designed by Anna Berg."
    assert abs(sum(probabilities.values()) - 1) < 1e-9
    assert probabilities[answering] == max(probabilities.values())
    assert probabilities[answering] > probabilities["The museum of modern art is famous for its east wing and its garden."]

    answer = extractive_answer(question, [hit(text)], similarity=similarity)
    assert answering in " ".join(body_lines(answer))
    assert "Sundays" not in answer.answer.split("\n", 1)[1]


def test_korean_questions_keep_the_hand_set_score():
    from stack.pipeline import answer as answer_module

    calls = []

    def similarity(question, sentences):
        calls.append(len(sentences))
        return [0.5] * len(sentences)

    text = "한빛소프트는 2010년 본사를 판교로 이전했다. 판교 사옥은 10층이다. 직원은 300명이다."
    assert not answer_module._use_ranker(True, similarity, [None, None])  # type: ignore[list-item]
    answer = extractive_answer("한빛소프트의 본사는 어느 도시로 이전했나?", [hit(text)], similarity=similarity)
    assert body_lines(answer) == ["한빛소프트는 2010년 본사를 판교로 이전했다."] and calls
