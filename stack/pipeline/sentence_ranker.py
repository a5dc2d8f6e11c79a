"""A small learned ranker for the extractive answer's sentence (English questions).

A linear model (a softmax over one question's candidate sentences: conditional logistic
regression) over general features of each candidate: how much of the question it holds (stemmed,
IDF-weighted; word pairs), the embedding model's cosine to the question (raw, and against the
other candidates), its passage's retrieval score and rank, its place in the passage, its length,
what its neighbours hold of the question, whether it points back, answer-type cues (a year for
"when", a number for "how many", a capitalised name the question does not hold for "who"/"where"),
and the score of the sentence reader (``sentence_reader``: a cross-encoder that reads question and
sentence together, which none of the other signals does).

The weights are a constant here, not a download.  They were made by ``bench/train_sentence_ranker.py``
(numpy only) on SQuAD questions outside the reported benchmark sample (see docs/benchmarks.md,
"English sentence choice"); run it again to reproduce them.  ``stack.pipeline.answer`` uses the
ranker for questions that are not Korean when the embedding model gives a cosine; Korean questions
keep the hand-set score (the ranker was trained on English questions only; its answer-type cues are
English, and the Korean goal is met by the hand-set rules).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from stack.pipeline import sentence_reader

#: One entry per feature, in the order of ``features``.
FEATURES = (
    "lexical",  # IDF-weighted share of the question's content terms the sentence holds
    "lexical_vs_best",  # ... divided by the best candidate's
    "matched_share",  # unweighted share of the question's terms it holds
    "pairs",  # share of the question's adjacent term pairs found adjacent in the sentence
    "cosine",  # embedding cosine of question and sentence
    "cosine_vs_best",  # cosine minus the best candidate's (within one softmax the same signal as cosine)
    "cosine_scaled",  # min-max scaled over the candidates
    "lexical_rank",  # 1 / (1 + place among the candidates by lexical)
    "cosine_rank",  # 1 / (1 + place by cosine)
    "retrieval",  # its passage's retrieval score / the best passage's
    "top_passage",  # 1 for the best passage
    "passage_rank",  # log(1 + rank of its passage)
    "first_sentence",  # 1 for a passage's first sentence
    "position",  # place in the passage, 0 (first) .. 1 (last)
    "log_chars",  # log of its length in characters
    "novel_share",  # share of its terms the question does not hold
    "before_lexical",  # lexical of the sentence before (0 without one)
    "after_lexical",  # lexical of the sentence after
    "points_back",  # starts with "It", "However", "This" ...
    "has_number",
    "has_year",
    "new_names",  # capitalised words (not the first) that the question does not hold, up to 3, / 3
    "when_x_year",  # question asks when / what year, and the sentence holds a year or a month
    "count_x_number",  # question asks how many / how much / what percentage, sentence holds a number
    "who_x_name",  # question asks who / whom / whose, sentence holds a new name
    "where_x_name",  # question asks where / what country|city..., sentence holds a new name
    "reader",  # the sentence reader's score (a cross-encoder's logit: sentence_reader)
    "reader_vs_best",  # ... minus the best candidate's
    "reader_rank",  # 1 / (1 + place by the reader's score)
    "reader_share",  # softmax of the reader's scores over the candidates
)

#: Weights per feature, for the raw (unscaled) features (a softmax needs no bias).  Made by
#: ``python bench/train_sentence_ranker.py --dataset ../shared/corpus/eval/squad_v1.1_dev_a.json
#: --questions 1654 --l2 0.1 --readers SKIP_EVEN SKIP_ODD --write``: 1,804 SQuAD dev questions outside
#: the reported sample (1,654 training + 150 validation), each with the scores of a sentence reader
#: that never saw its article (bench/train_sentence_reader.py --skip-articles), numpy, full-batch
#: Adam.  Do not edit by hand.
WEIGHTS: dict[str, float] = {
    "lexical": 0.70432,
    "lexical_vs_best": 0.45347,
    "matched_share": -0.13172,
    "pairs": 0.85405,
    "cosine": 3.34329,
    "cosine_vs_best": 3.35646,
    "cosine_scaled": 0.50472,
    "lexical_rank": 0.81433,
    "cosine_rank": 0.79151,
    "retrieval": 1.13401,
    "top_passage": 0.32763,
    "passage_rank": -0.27322,
    "first_sentence": -0.15695,
    "position": 0.14801,
    "log_chars": -0.19568,
    "novel_share": 0.15342,
    "before_lexical": 0.52497,
    "after_lexical": -0.07995,
    "points_back": 0.1595,
    "has_number": 0.09337,
    "has_year": -0.08122,
    "new_names": 0.03956,
    "when_x_year": 1.07575,
    "count_x_number": 0.39589,
    "who_x_name": 0.25806,
    "where_x_name": 0.50034,
    "reader": 0.05048,
    "reader_vs_best": 0.04309,
    "reader_rank": 0.56027,
    "reader_share": 0.79878,
}


@dataclass
class Sentence:
    """What the ranker knows of one candidate sentence."""

    text: str
    terms: Sequence[str]  # content terms, stemmed as the question's are
    rank: int  # its passage's place in the retrieval order (0: best)
    index: int  # its place in its passage
    count: int  # sentences in its passage
    retrieval: float  # its passage's retrieval score / the best passage's
    cosine: float
    reader: float = 0.0  # sentence_reader's score
    before: Sequence[str] | None = None  # terms of the sentence before, if any
    after: Sequence[str] | None = None  # ... after
    points_back: bool = False


_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b")
_MONTH = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b")
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                     r"fifty|hundred|thousand|million|billion|dozen)\b", re.IGNORECASE)
_NAME = re.compile(r"(?<=\s)[A-Z][\w\-]+")
_WHEN = re.compile(r"^\s*when\b|\bwhat (?:year|decade|century|date|month|day|time)\b|\bin which (?:year|decade|century)\b"
                   r"|\bhow long ago\b", re.IGNORECASE)
_COUNT = re.compile(r"\bhow (?:many|much|long|old|far|large|big|tall|high)\b|\bwhat (?:percentage|percent|number|amount)\b",
                    re.IGNORECASE)
_WHO = re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE)
_WHERE = re.compile(r"\bwhere\b|\b(?:what|which) (?:country|city|state|town|region|place|continent|county|river)\b",
                    re.IGNORECASE)


def _share(weights: dict[str, float], question_terms: set[str], terms: Sequence[str] | None) -> float:
    if not terms:
        return 0.0
    total = sum(weights.values()) or 1.0
    return sum(weights.get(term, 0.0) for term in question_terms & set(terms)) / total


def _places(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    place = [0.0] * len(values)
    for position, i in enumerate(order):
        place[i] = 1.0 / (1 + position)
    return place


def features(question: str, question_terms: Sequence[str], sentences: Sequence[Sentence],
             idf: dict[str, float]) -> list[list[float]]:
    """One row of FEATURES per sentence.  ``idf`` weighs the question's terms (computed over the
    candidates, as the hand-set score does)."""
    qset = set(question_terms)
    weights = {term: idf.get(term, 0.0) for term in qset}
    pairs = {(a, b) for a, b in pairwise(question_terms) if a != b}
    question_words = {word.casefold() for word in re.findall(r"[\w\-]+", question)}
    when, count = bool(_WHEN.search(question)), bool(_COUNT.search(question))
    who, where = bool(_WHO.search(question)), bool(_WHERE.search(question))

    lexical = [_share(weights, qset, s.terms) for s in sentences]
    best_lexical = max(lexical, default=0.0) or 1.0
    cosines = [s.cosine for s in sentences]
    best_cosine, low = max(cosines, default=0.0), min(cosines, default=0.0)
    span = best_cosine - low
    lexical_place, cosine_place = _places(lexical), _places(cosines)
    readers = [s.reader for s in sentences]
    best_reader = max(readers, default=0.0)
    reader_place = _places(readers)
    reader_exp = [math.exp(r - best_reader) for r in readers]
    reader_total = sum(reader_exp) or 1.0
    rows = []
    for i, s in enumerate(sentences):
        terms = set(s.terms)
        sentence_pairs = set(pairwise(s.terms))
        new_names = {m.casefold() for m in _NAME.findall(s.text)} - question_words
        has_year = bool(_YEAR.search(s.text) or _MONTH.search(s.text))
        has_number = bool(_NUMBER.search(s.text))
        name_share = min(3, len(new_names)) / 3
        rows.append([
            lexical[i],
            lexical[i] / best_lexical,
            len(qset & terms) / len(qset) if qset else 0.0,
            len(pairs & sentence_pairs) / len(pairs) if pairs else 0.0,
            s.cosine,
            s.cosine - best_cosine,
            (s.cosine - low) / span if span > 1e-9 else 0.0,
            lexical_place[i],
            cosine_place[i],
            s.retrieval,
            1.0 if s.rank == 0 else 0.0,
            math.log1p(s.rank),
            1.0 if s.index == 0 else 0.0,
            s.index / (s.count - 1) if s.count > 1 else 0.0,
            math.log(max(1, len(s.text))),
            len(terms - qset) / len(terms) if terms else 0.0,
            _share(weights, qset, s.before),
            _share(weights, qset, s.after),
            1.0 if s.points_back else 0.0,
            1.0 if has_number else 0.0,
            1.0 if has_year else 0.0,
            name_share,
            1.0 if when and has_year else 0.0,
            1.0 if count and has_number else 0.0,
            name_share if who else 0.0,
            name_share if where else 0.0,
            s.reader,
            s.reader - best_reader,
            reader_place[i],
            reader_exp[i] / reader_total,
        ])
    return rows


def available() -> bool:
    """Whether the ranker can score: its weights are shipped, and the reader it takes features from loads."""
    return bool(WEIGHTS) and sentence_reader.available()


def probabilities(rows: Sequence[Sequence[float]], weights: dict[str, float] | None = None) -> list[float]:
    """The ranker's probability that each row's sentence is the one that answers (they sum to 1)."""
    weights = WEIGHTS if weights is None else weights
    vector = [weights.get(name, 0.0) for name in FEATURES]
    logits = [sum(w * x for w, x in zip(vector, row, strict=True)) for row in rows]
    if not logits:
        return []
    top = max(logits)
    exps = [math.exp(logit - top) for logit in logits]
    total = sum(exps)
    return [e / total for e in exps]
