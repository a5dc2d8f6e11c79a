"""Answers with citations: an LLM through the openai SDK, or an extractive answer without one.

Sources are numbered [1]..[n] in retrieval order; both modes cite them the same way, and
``Answer.sources`` maps each number to its file, page or section, chunk id, score and text.

The extractive answer (``extractive_answer``) quotes sentences of the retrieved passages:

* every sentence that is not a heading (``heading_flags``) is a candidate, once however many
  overlapping chunks repeat it;
* its score: the IDF-weighted share of the question's content terms it holds (English words
  stemmed, ``_stem``, so "enforces" meets "enforced") + the embedding model's cosine to the
  question (min-max scaled over the front-runners) + its chunk's retrieval score (``_score``);
  for a question that is not Korean, when the embedding model gives a cosine, the front-runners
  are instead scored by a small learned ranker (``sentence_ranker``: its probability that the
  sentence answers, with the score of a cross-encoder that reads question and sentence together,
  ``sentence_reader``; ``ranker_rows``), and a second sentence joins more readily (SECOND_SENTENCE_RATIO);
* the best sentence is quoted; a sentence that points back ("It", "However", "이는") brings the
  one before, one that ends with ":" the one after, and a short one a neighbour
  (SHORT_SENTENCE_CHARS / SHORT_NEIGHBOURS / SHORT_NEIGHBOUR_SHARE);
* other sentences join only when they score nearly as well, within a length budget
  (SECOND_SENTENCE_RATIO, MAX_ANSWER_CHARS); quoted sentences are in reading order, and those
  that follow each other in one source form one line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from stack.contract import EXTRACTIVE_LABEL_EN, EXTRACTIVE_LABEL_KO, Answer, Source
from stack.pipeline import sentence_ranker, sentence_reader
from stack.pipeline.chunk import split_sentences
from stack.pipeline.errors import PipelineError
from stack.pipeline.lexical import tokenize_many
from stack.pipeline.retrieve import Hit, is_korean
from stack.pipeline.tables import is_cell_line

NO_SOURCES_EN = "No passage in the indexed documents matches this question."
NO_SOURCES_KO = "색인된 문서에서 이 질문과 관련된 내용을 찾지 못했습니다."

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources provided. Cite every claim with the "
    "source number in square brackets, like [1] or [2][3]. If the sources do not contain the "
    "answer, say so. Answer in the language of the question."
)


def sources_from_hits(hits: Sequence[Hit]) -> list[Source]:
    return [
        Source(
            n=i,
            file=hit.metadata.get("file_name", ""),
            location=hit.location,
            page=hit.metadata.get("page"),
            section=hit.metadata.get("section"),
            document_id=hit.document_id,
            chunk_id=hit.chunk_id,
            score=round(hit.score, 6),
            text=hit.text,
            heading=hit.metadata.get("heading"),
        )
        for i, hit in enumerate(hits, start=1)
    ]


#: How the extractive answer weighs its three signals for each candidate sentence: content-word
#: overlap with the question (IDF-weighted within the candidates), the embedding model's cosine
#: similarity of question and sentence (when a ``similarity`` is given), and the retrieval score of
#: the chunk the sentence comes from.  Tuned with bench/answers.py (docs/benchmarks.md).
LEXICAL_WEIGHT = 1.0
DENSE_WEIGHT = 0.8
RANK_WEIGHT = 0.3
#: How many of the best-scoring sentences (before the dense signal) the embedding model scores.
DENSE_CANDIDATES = 12
#: Another sentence joins the best one only when its score is at least this share of the best,
#: and while the quoted text stays within MAX_ANSWER_CHARS.  Korean sentences are shorter and
#: denser than English ones (a Hangul syllable carries what two or three Latin letters do), so a
#: Korean answer may take a second sentence more readily, within a smaller budget.  "ranker": the
#: values where the learned ranker scores (English with a cosine); its scores are probabilities that
#: sum to 1, so a second sentence with a twentieth of the best one's is a real doubt (the most
#: answers within 250 characters by 5-fold cross-validation on 1,804 SQuAD questions outside the
#: reported sample; docs/benchmarks.md).
SECOND_SENTENCE_RATIO = {"ko": 0.55, "other": 0.8, "ranker": 0.05}
MAX_ANSWER_CHARS = {"ko": 250, "other": 350, "ranker": 350}
#: A quoted sentence shorter than this (characters) is quoted with a neighbour that completes it,
#: tried in the order of SHORT_NEIGHBOURS (-1: the sentence before, 1: the one after).  A short
#: Korean sentence is mostly a fragment that continues the one before.  A short English
#: sentence is mostly a topic sentence whose facts follow ("Bowman was the director of the
#: society." -> the next sentence says what he did), and it costs few characters to complete:
#: on SQuAD questions outside the reported sample this gained 1.5 points for 10 characters more.
SHORT_SENTENCE_CHARS = {"ko": 20, "other": 100, "ranker": 100}
SHORT_NEIGHBOURS = {"ko": (-1, 1), "other": (1,), "ranker": (1,)}
#: ... and only by a neighbour that scores at least this share of the short sentence: one on the
#: question's subject, not the next topic of the passage ("Entry is free on Sundays.").  A neighbour
#: outside the ranker's shortlist scores 0 there.
SHORT_NEIGHBOUR_SHARE = {"ko": 0.0, "other": 0.5, "ranker": 0.1}
#: A table cell quoted with its headings ("2011년 10월 · 통합재정수지(누계): 30,050") answers alone:
#: another sentence joins it only when it scores nearly the same (the question does not tell them
#: apart), not merely as well as sentences do, since the cells beside it share its row or column words.
CELL_SECOND_RATIO = 0.95
#: How many sentences (the best by lexical overlap and retrieval score) the learned ranker judges;
#: the embedding model encodes each of them.
RANKER_CANDIDATES = 12

Similarity = Callable[[str, Sequence[str]], Sequence[float]]

_SENTENCE_PUNCT = tuple(".!?。！？…:;\"'”’」』")
_HEADING_NUMBER = re.compile(
    r"^\s*(?:제\s*\d+\s*[조장절항관편](?:의\s*\d+)?|第\s*\d+\s*[條章節]|\d+(?:\.\d+)*[.)]?|[IVXivx]+[.)]|"
    r"[가-하][.)]|\(\d+\)|\([가-하]\)|[\u2460-\u2473\u3260-\u327b]|(?:Article|Section|Chapter|Part)\s+\d+)"
)
# A statute heading glued to the sentence after it: "제1조 (연차 휴가) 입사 1년 이상 직원의 ..."
_LEADING_ARTICLE = re.compile(r"^제\s*\d+\s*조(?:의\s*\d+)?\s*[(（][^)）]{1,40}[)）]\s+(?=\S)")
# Words that point back to the sentence before: quoted alone, they do not say what they mean.
_POINTS_BACK_KO = re.compile(
    r"^(?:이는|이것은|이것이|이들은|이를|이에|이러한|이런|이와|이때|이후|그는|그녀는|그들은|그것은|그것이|그러나|하지만|"
    r"그런데|그래서|그러므로|따라서|또한|또|그리고|게다가|반면|한편|즉|이 |그 |해당 )"
)
_POINTS_BACK_EN = re.compile(
    r"^(?:this|these|that|those|it|its|they|their|he|she|his|her|him|them|such|however|but|also|thus|"
    r"therefore|hence|moreover|furthermore|in addition|additionally|as a result|consequently|instead|"
    r"otherwise|then|there)\b",
    re.IGNORECASE,
)
_PREDICATE_TAGS = ("VV", "VA", "VX", "VCP", "VCN", "XSV", "XSA", "EF", "EC", "EP")
# A "sentence" that ends in an initial or a title is a name cut in two by the splitter:
# "... a donation from oil magnate John D." + "Rockefeller." ("Dr.", "St.", "U.S." alike).
_CUT_AFTER = re.compile(r"(?:(?<![\w.])[A-Z]|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|Ft|Gen|Col|Lt|Sgt|Capt|Gov|Sen|Rep|Rev|"
                        r"Prof|Pres|vs|U\.S|U\.K|D\.C|e\.g|i\.e))\.$")


def _sentences(text: str) -> list[str]:
    """The text's sentences (chunk.split_sentences), with names cut at an initial joined again."""
    merged: list[str] = []
    for sentence in split_sentences(text):
        if merged and _CUT_AFTER.search(merged[-1]) and sentence[:1].isupper():
            merged[-1] = f"{merged[-1]} {sentence}"
        else:
            merged.append(sentence)
    return merged


@dataclass
class _Candidate:
    n: int  # the source's number
    rank: int  # 0 for the best source
    index: int  # position of the sentence in its source
    text: str
    terms: list[str]
    score: float = 0.0


def _key(sentence: str) -> str:
    return " ".join(sentence.split()).casefold()


def _has_predicate(lines: Sequence[str]) -> list[bool]:
    """Whether each Korean line holds a verb, adjective, copula or ending (a sentence, not a title)."""
    if not lines:
        return []
    from stack.pipeline import lexical

    analyse = getattr(lexical, "kiwi_tokens", None) or getattr(lexical, "_tokens", None)
    if analyse is None:  # pragma: no cover - the analyzer moved: a Korean predicate ends in 다/요/...
        return [bool(re.search(r"(?:다|요|음|함|됨|임|고|며|서|면)\W*$", line)) for line in lines]
    return [any(token.tag.startswith(_PREDICATE_TAGS) for token in tokens) for tokens in analyse(list(lines))]


def heading_flags(sentences: Sequence[str]) -> list[bool]:
    """Which lines are headings or titles, never an answer on their own.

    A heading has no sentence-final punctuation and reads as a title: a numbered line
    ("제1조 (연차 휴가)", "1. 개요", "Article 3"), a Korean line without a predicate, or a short
    English line (few words, or mostly capitalised).  Table rows ("a | b") are data, not headings.
    """
    flags = [False] * len(sentences)
    korean_suspects: list[int] = []
    for i, sentence in enumerate(sentences):
        text = sentence.strip()
        if " | " in text or is_cell_line(text):
            continue
        words = text.split()
        ends_like_sentence = text.endswith(_SENTENCE_PUNCT)
        if ends_like_sentence and len(words) > 3:
            continue
        if is_korean(text):
            korean_suspects.append(i)
            continue
        numbered = bool(_HEADING_NUMBER.match(text))
        capitalised = sum(1 for word in words if word[:1].isupper() or not word[:1].isalpha())
        if ends_like_sentence:
            flags[i] = len(words) <= 2 and numbered
        else:
            flags[i] = numbered and len(words) <= 12 or len(words) <= 6 or capitalised >= 0.6 * len(words)
    predicates = _has_predicate([sentences[i] for i in korean_suspects])
    for i, has_predicate in zip(korean_suspects, predicates, strict=True):
        flags[i] = not has_predicate
    return flags


def _points_back(sentence: str, korean: bool) -> bool:
    return bool((_POINTS_BACK_KO if korean else _POINTS_BACK_EN).match(sentence))


_LATIN_WORD = re.compile(r"[a-z][a-z'\-]*")
# One suffix each, longest first: inflections (-ing, -ed, -s) and the commonest derivations.
_SUFFIXES = ("ational", "ization", "fulness", "ousness", "iveness", "ement", "ments", "ment", "ings", "ing",
             "edly", "ed", "ers", "er", "ly", "ions", "ion", "ies", "es", "s")


def _stem(term: str) -> str:
    """An English word reduced to a crude stem, so that the forms a question and its answer
    sentence use for the same word meet: "enforces"/"enforced", "represented"/"representing",
    "completed"/"completion", "donated"/"donation", "players"/"played".  The index's own analyser
    only folds plurals (a wider stem there would change every BM25 score); here it only decides
    which sentence of already retrieved passages to quote.  Other terms (Korean morphemes, numbers) are unchanged."""
    if not _LATIN_WORD.fullmatch(term):
        return term
    for suffix in _SUFFIXES:
        if suffix == "s" and term.endswith(("ss", "us", "is")):  # "class", "census", "analysis"
            break
        if term.endswith(suffix) and len(term) - len(suffix) >= 3:
            term = term[: -len(suffix)]
            break
    if len(term) > 3 and term[-1] == term[-2] and term[-1] not in "lsz":  # "stopped" -> "stop"
        term = term[:-1]
    if term.endswith("e") and len(term) > 3:  # "donate" and "donat(ion)" meet
        term = term[:-1]
    if term.endswith("y") and len(term) > 3:  # "play" and "plai(ed)" meet
        term = term[:-1] + "i"
    return term


def _normalised(values: Sequence[float]) -> list[float]:
    low, high = min(values), max(values)
    span = high - low
    return [(value - low) / span if span > 1e-9 else 0.0 for value in values]


def _idf(question_terms: set[str], candidates: Sequence[_Candidate]) -> dict[str, float]:
    """The question's terms weighted by how rare they are among the candidate sentences."""
    document_frequency: Counter[str] = Counter()
    for candidate in candidates:
        document_frequency.update(set(candidate.terms))
    total = len(candidates)
    return {term: math.log(1 + total / document_frequency[term]) for term in question_terms if document_frequency[term]}


def _score(question: str, candidates: list[_Candidate], sources: Sequence[Source],
           similarity: Similarity | None) -> None:
    """Set each candidate's score: lexical + dense + retrieval rank, each in [0, 1] before weights."""
    question_terms = {_stem(term) for term in tokenize_many([question])[0]}
    total = len(candidates)
    idf = _idf(question_terms, candidates)
    question_weight = sum(idf.values()) or 1.0
    lexical = [sum(idf.get(term, 0.0) for term in question_terms & set(c.terms)) / question_weight for c in candidates]

    best_source = max((source.score for source in sources), default=0.0)
    by_number = {source.n: source for source in sources}
    for c, lex in zip(candidates, lexical, strict=True):
        retrieval = by_number[c.n].score / best_source if best_source > 0 else 1.0 / (1 + c.rank)
        c.score = LEXICAL_WEIGHT * lex + RANK_WEIGHT * retrieval
    if similarity is None or total < 2:
        return
    # Encoding sentences costs time on a CPU: only the front-runners are asked about.
    shortlist = sorted(candidates, key=lambda c: -c.score)[:DENSE_CANDIDATES]
    dense = _normalised([float(s) for s in similarity(question, [c.text for c in shortlist])])
    for c, den in zip(shortlist, dense, strict=True):
        c.score += DENSE_WEIGHT * den


def _passage_sentences(text: str) -> list[str]:
    return [_LEADING_ARTICLE.sub("", sentence) for sentence in _sentences(text)]


def _quotable(sentences: Sequence[str]) -> list[tuple[int, str]]:
    """(index, sentence) of each sentence that may be quoted: not a heading, not empty."""
    return [(index, sentence) for index, (sentence, heading) in enumerate(zip(sentences, heading_flags(sentences), strict=True))
            if not heading and _key(sentence)]


def quotable_sentences(text: str) -> list[str]:
    """The sentences of one passage that an extractive answer may quote, once each
    (bench/train_sentence_reader.py trains the reader on these)."""
    return list(dict.fromkeys(sentence for _, sentence in _quotable(_passage_sentences(text))))


def _candidates(sources: Sequence[Source]) -> tuple[dict[int, list[str]], list[_Candidate]]:
    """Each source's sentences, and the candidates: every sentence that is not a heading, once."""
    per_source: dict[int, list[str]] = {}
    candidates: list[_Candidate] = []
    seen: set[str] = set()
    for rank, source in enumerate(sources):
        sentences = per_source[source.n] = _passage_sentences(source.text)
        for index, sentence in _quotable(sentences):
            key = _key(sentence)
            if key in seen:  # overlapping chunks repeat sentences: count each once
                continue
            seen.add(key)
            candidates.append(_Candidate(source.n, rank, index, sentence, []))
    return per_source, candidates


def _set_terms(candidates: Sequence[_Candidate], per_source: dict[int, list[str]] | None = None) -> dict[str, list[str]]:
    """Stemmed content terms of each candidate (and of every sentence of ``per_source``, when given),
    analysed in one call; returns them by sentence text."""
    texts = list(dict.fromkeys([c.text for c in candidates] + [t for ss in (per_source or {}).values() for t in ss]))
    terms_of = {text: [_stem(term) for term in terms] for text, terms in zip(texts, tokenize_many(texts), strict=True)}
    for candidate in candidates:
        candidate.terms = terms_of[candidate.text]
    return terms_of


def _use_ranker(korean: bool, similarity: Similarity | None, candidates: Sequence[_Candidate]) -> bool:
    """The learned ranker chooses English sentences when the embedding model gives a cosine."""
    return not korean and similarity is not None and len(candidates) >= 2 and sentence_ranker.available()


def ranker_rows(question: str, candidates: list[_Candidate], sources: Sequence[Source],
                per_source: dict[int, list[str]], similarity: Similarity,
                reader: Similarity = sentence_reader.scores) -> tuple[list[_Candidate], list[list[float]]]:
    """The shortlist the learned ranker judges (the RANKER_CANDIDATES best by the hand-set lexical and
    retrieval score, as the dense shortlist is), and its feature rows (``sentence_ranker.features``).
    Candidates' terms must be set (``_set_terms`` with ``per_source``).  ``reader`` scores each
    sentence against the question.  bench/train_sentence_ranker.py calls this too, so that training
    and answering see the same features (it passes readers that never saw the question's article)."""
    terms_of = {c.text: c.terms for c in candidates}
    missing = [t for ss in per_source.values() for t in ss if t not in terms_of]
    if missing:
        terms_of.update(_set_terms([_Candidate(0, 0, 0, t, []) for t in dict.fromkeys(missing)]))
    _score(question, candidates, sources, None)
    shortlist = sorted(candidates, key=lambda c: (-c.score, c.rank, c.index))[:RANKER_CANDIDATES]
    cosines = [float(value) for value in similarity(question, [c.text for c in shortlist])]
    read = [float(value) for value in reader(question, [c.text for c in shortlist])]
    question_terms = [_stem(term) for term in tokenize_many([question])[0]]
    idf = _idf(set(question_terms), candidates)
    best_source = max((source.score for source in sources), default=0.0)
    by_number = {source.n: source for source in sources}
    sentences = []
    for c, cosine, score in zip(shortlist, cosines, read, strict=True):
        around = per_source[c.n]
        sentences.append(sentence_ranker.Sentence(
            text=c.text, terms=c.terms, rank=c.rank, index=c.index, count=len(around),
            retrieval=by_number[c.n].score / best_source if best_source > 0 else 1.0 / (1 + c.rank),
            cosine=cosine,
            reader=score,
            before=terms_of.get(around[c.index - 1]) if c.index > 0 else None,
            after=terms_of.get(around[c.index + 1]) if c.index + 1 < len(around) else None,
            points_back=_points_back(c.text, False),
        ))
    return shortlist, sentence_ranker.features(question, question_terms, sentences, idf)


def _chosen(ranked: Sequence[_Candidate], language: str, max_sentences: int) -> list[_Candidate]:
    """The best sentence, and the next best while they score nearly as well (SECOND_SENTENCE_RATIO)."""
    best = ranked[0]
    chosen = [best]
    length = len(best.text)
    ratio = SECOND_SENTENCE_RATIO[language]
    if is_cell_line(best.text):  # the other cells of its row and column share most of its words
        ratio = max(ratio, CELL_SECOND_RATIO)
    for other in ranked[1:max_sentences]:
        if best.score <= 0 or other.score < ratio * best.score:
            break
        if length + len(other.text) <= MAX_ANSWER_CHARS[language]:  # short sentences may join
            chosen.append(other)
            length += len(other.text)
    return chosen


def extractive_answer(
    question: str,
    hits: Sequence[Hit],
    *,
    max_sentences: int = 3,
    similarity: Similarity | None = None,
) -> Answer:
    """The sentence of the retrieved passages that answers the question, quoted with its source.

    Each sentence of the passages is scored against the question (see ``_score``; English word
    forms are folded by ``_stem``); headings are never quoted alone, and a sentence repeated by
    overlapping chunks counts once.  The best sentence is quoted, with the sentence before it
    when it points back ("이는", "However", "It"), the one after when it introduces it (":"),
    and a neighbour when it is too short to stand alone (SHORT_SENTENCE_CHARS: in English the
    next sentence, if it is on the question's subject); another sentence joins only when it
    scores nearly as well.  Quoted sentences that follow each other in one source are one line.
    """
    sources = sources_from_hits(hits)
    korean = is_korean(question)
    if not sources:
        return Answer(question, NO_SOURCES_KO if korean else NO_SOURCES_EN, "extractive", [])
    per_source, candidates = _candidates(sources)
    label = EXTRACTIVE_LABEL_KO if korean else EXTRACTIVE_LABEL_EN
    if not candidates:  # only headings were found: quote the best passage as it is
        return Answer(question, f"{label}\n{sources[0].text.strip()} [{sources[0].n}]", "extractive", sources)
    learned = _use_ranker(korean, similarity, candidates)
    _set_terms(candidates, per_source if learned else None)
    if learned:
        shortlist, rows = ranker_rows(question, candidates, sources, per_source, similarity)
        for c in candidates:
            c.score = 0.0
        for c, probability in zip(shortlist, sentence_ranker.probabilities(rows), strict=True):
            c.score = probability
    else:
        _score(question, candidates, sources, similarity)
    ranked = sorted(candidates, key=lambda c: (-c.score, c.rank, c.index))
    language = "ranker" if learned else "ko" if korean else "other"
    chosen = _chosen(ranked, language, max_sentences)
    quoted_keys = {_key(c.text) for c in chosen}

    def joinable(sentences: list[str], index: int) -> str | None:
        if not 0 <= index < len(sentences):
            return None
        neighbour = sentences[index]
        if _key(neighbour) in quoted_keys or heading_flags([neighbour])[0]:
            return None
        return neighbour

    score_of = {_key(candidate.text): candidate.score for candidate in candidates}

    def with_neighbour(c: _Candidate) -> tuple[str, int, int]:
        """The quoted text, and the first and last sentence index it covers in its source."""
        text, first, last = c.text, c.index, c.index
        introduces = text.endswith((":", "："))
        points_back = _points_back(text, korean)
        # A table cell quoted with its headings stands alone: its neighbours are other cells.
        short = len(text) < SHORT_SENTENCE_CHARS[language] and not (points_back or introduces or is_cell_line(text))
        order = ((-1,) if points_back else ()) + ((1,) if introduces else SHORT_NEIGHBOURS[language] if short else ())
        for step in order:
            neighbour = joinable(per_source[c.n], c.index + step)
            # A short sentence is completed only by a neighbour on the question's subject.
            share = SHORT_NEIGHBOUR_SHARE[language]
            if short and neighbour is not None and score_of.get(_key(neighbour), 0.0) < share * c.score:
                neighbour = None
            if neighbour is not None:
                quoted_keys.add(_key(neighbour))
                text = f"{neighbour} {text}" if step < 0 else f"{text} {neighbour}"
                first, last = min(first, c.index + step), max(last, c.index + step)
                break
        return text, first, last

    chosen.sort(key=lambda c: (c.rank, c.index))  # reading order
    # Sentences that follow each other in one source read as one passage: one line, one label.
    lines: list[tuple[int, str, int]] = []  # (source, text, last index)
    for c in chosen:
        text, first, last = with_neighbour(c)
        if lines and lines[-1][0] == c.n and lines[-1][2] + 1 == first:
            lines[-1] = (c.n, f"{lines[-1][1]} {text}", last)
        else:
            lines.append((c.n, text, last))
    body = "\n".join(f"{text} [{n}]" for n, text, _ in lines)
    return Answer(question, f"{label}\n{body}", "extractive", sources)


_CITATION = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")


def check_citations(text: str, n_sources: int) -> tuple[str, list[int]]:
    """``text`` with every citation of a source that was not given removed, and those numbers.

    Sources are numbered 1..n_sources; "[7]" with five sources is dropped, "[2, 7]" becomes "[2]".
    """
    invalid: list[int] = []

    def keep(match: re.Match) -> str:
        numbers = [int(part) for part in match.group(1).split(",")]
        valid = [n for n in numbers if 1 <= n <= n_sources]
        invalid.extend(n for n in numbers if n not in valid and n not in invalid)
        if len(valid) == len(numbers):
            return match.group(0)
        if not valid:
            return ""
        return match.group(0)[: match.start(1) - match.start(0)] + ", ".join(map(str, valid)) + "]"

    return _CITATION.sub(keep, text), invalid


def build_messages(question: str, sources: Sequence[Source]) -> list[dict[str, str]]:
    context = "\n\n".join(
        f"[{source.n}] {source.file}{', ' + source.location if source.location else ''}\n{source.text}"
        for source in sources
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Sources:\n{context}\n\nQuestion: {question}"},
    ]


def _client(api_key: str, base_url: str | None, timeout_s: float):
    from openai import OpenAI

    return OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=2)


def llm_answer(
    question: str,
    hits: Sequence[Hit],
    *,
    api_key: str,
    model: str,
    base_url: str | None = None,
    timeout_s: float = 60.0,
) -> Answer:
    sources = sources_from_hits(hits)
    if not sources:
        return Answer(question, NO_SOURCES_KO if is_korean(question) else NO_SOURCES_EN, "llm", [], model)
    import openai

    try:
        response = _client(api_key, base_url, timeout_s).chat.completions.create(
            model=model, messages=build_messages(question, sources), temperature=0
        )
    except openai.APIError as exc:
        raise PipelineError(
            f"The LLM at {base_url or 'api.openai.com'} failed: {exc}",
            hint="Check OPENAI_API_KEY, OPENAI_BASE_URL and RAG_LLM_MODEL, or unset OPENAI_API_KEY "
            "for extractive answers",
        ) from exc
    text, invalid = check_citations(response.choices[0].message.content or "", len(sources))
    return Answer(question, text, "llm", sources, model, invalid_citations=invalid)


def stream_llm_answer(
    question: str,
    sources: Sequence[Source],
    *,
    api_key: str,
    model: str,
    base_url: str | None = None,
    timeout_s: float = 60.0,
) -> Iterator[str]:
    """Text deltas of the LLM's answer, as they arrive."""
    stream = _client(api_key, base_url, timeout_s).chat.completions.create(
        model=model, messages=build_messages(question, sources), temperature=0, stream=True
    )
    for event in stream:
        if event.choices and event.choices[0].delta.content:
            yield event.choices[0].delta.content
