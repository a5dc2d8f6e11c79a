"""``ragctl eval generate``: a first question set from a collection's own documents, without an LLM.

From each document's chunks, sentences that carry a checkable fact — a date, an amount, an article
number (제3조), a percentage, a number with its unit, a named organisation — become a question whose
answer is that fact: the fact is replaced by the matching question word (언제, 얼마, 몇 조, 몇 명 …;
when, how much, how many …) and the sentence turned into a question.  Questions are spread across
files (round robin), one fact per sentence, no answer twice in a file.  The result is a draft to be
reviewed: the sentence it came from travels with each question (``context``).

Standard library only: it reads chunks through the backend (embedded pipeline or the stack's client).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass

_KO_UNITS = {"일": "며칠", "개월": "몇 개월", "년": "몇 년", "명": "몇 명", "시간": "몇 시간", "분": "몇 분",
             "초": "몇 초", "회": "몇 회", "번": "몇 번", "건": "몇 건", "개": "몇 개", "주": "몇 주", "세": "몇 세",
             "층": "몇 층", "배": "몇 배", "살": "몇 살", "점": "몇 점", "등": "몇 등", "차": "몇 차"}
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
#: (kind, pattern, Korean question word, English question word), most specific first.
_FACTS = [
    ("date", re.compile(r"\d{4}\s*년\s*\d{1,2}\s*월(?:\s*\d{1,2}\s*일)?|\d{4}[.\-/]\s?\d{1,2}[.\-/]\s?\d{1,2}\.?"
                        r"|(?:January|February|March|April|May|June|July|August|September|October|November|"
                        r"December)\s+\d{1,2},?\s+\d{4}|\d{1,2}\s+(?:January|February|March|April|May|June|July|"
                        r"August|September|October|November|December)\s+\d{4}"), "언제", "when"),
    ("article", re.compile(r"제\s?\d+\s?조(?:의\s?\d+)?(?:\s?제\s?\d+\s?항)?"), "몇 조", "which article"),
    ("amount", re.compile(rf"(?:{_NUM})\s?(?:천|만|억|조)?\s?(?:원|달러|유로|엔)|[$€£₩]\s?(?:{_NUM})"
                          r"(?:\s?(?:million|billion|thousand))?|(?:" + _NUM + r")\s?(?:dollars|euros|won)\b"),
     "얼마", "how much"),
    ("percent", re.compile(rf"(?:{_NUM})\s?(?:%|퍼센트|percent\b)"), "몇 퍼센트", "what percentage"),
    ("year", re.compile(r"(?<!\d)(?:1[89]\d{2}|20\d{2})\s?년(?!\s?\d)|\b(?:in|since|by|from)\s(?:1[89]\d{2}|20\d{2})\b"),
     "몇 년", "what year"),
    ("quantity", re.compile(rf"(?<![\d,.])(?:{_NUM})\s?(?:{'|'.join(sorted(_KO_UNITS, key=len, reverse=True))})"
                            r"(?![가-힣])|(?<![\d,.])(?:" + _NUM + r")\s?(?:MB|GB|KB|TB|days?|hours?|minutes?|seconds?|"
                            r"years?|months?|weeks?|people|employees|members|times|pages|copies|km|kg|m)\b"),
     None, "how many"),
    ("organisation", re.compile(r"[가-힣]{2,}(?:위원회|연구원|공단|공사|재단|협회|진흥원|은행|대학교|시청|구청|"
                                r"[가-힣]{2}부|[가-힣]{2}청)(?=[이가은는을를의에와과도로]|[^가-힣]|$)|\(주\)\s?[가-힣A-Za-z]+"
                                r"|[A-Z][A-Za-z&]+(?:\s[A-Z][A-Za-z&]+)*"
                                r"\s(?:Inc\.|Ltd\.?|Corporation|Company|University|Institute|Agency|Ministry|Association)"),
     "어느 기관", "which organisation"),
]
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|(?<=다\.)|\n+")
_HANGUL = re.compile(r"[가-힣]")
_KO_ENDINGS = [("같다.", "같은가?"), ("이다.", "인가?"), ("였다.", "였는가?"), ("했다.", "했는가?"), ("한다.", "하는가?"), ("된다.", "되는가?"),
               ("있다.", "있는가?"), ("없다.", "없는가?"), ("이었다.", "이었는가?"), ("다.", "는가?")]


@dataclass
class Candidate:
    question: str
    answer: str
    file: str
    kind: str
    context: str
    collection: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["collection"] is None:
            del data["collection"]
        return data


def sentences(text: str) -> list[str]:
    parts = [" ".join(p.split()) for p in _SENTENCE_END.split(text)]
    return [p for p in parts if 15 <= len(p) <= 220]


def _korean_word(kind: str, fact: str) -> str:
    if kind == "quantity":
        unit = re.sub(rf"^(?:{_NUM})\s?", "", fact)
        return _KO_UNITS.get(unit, "몇 " + unit)
    return next(word for k, _, word, _ in _FACTS if k == kind)


_PARTICLES = {"을": "를", "이": "가", "은": "는", "과": "와", "를": "을", "가": "이", "는": "은", "와": "과"}


def _particle(word: str, following: str) -> str:
    """The particle that starts ``following``, made to agree with ``word``'s last syllable."""
    if not following or following[0] not in _PARTICLES or (len(following) > 1 and _HANGUL.match(following[1])):
        return following
    last = word[-1]
    closed = "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0
    wanted = {True: "을이은과", False: "를가는와"}[closed]
    head = following[0]
    return (head if head in wanted else _PARTICLES[head]) + following[1:]


def _korean_question(sentence: str, start: int, end: int, kind: str, fact: str) -> str:
    word = _korean_word(kind, fact)
    text = (sentence[:start] + word + _particle(word, sentence[end:])).strip()
    text = re.sub(r"\s*\[\d+\]", "", text)
    for ending, replacement in _KO_ENDINGS:
        if text.endswith(ending):
            return text[: -len(ending)] + replacement
    return text.rstrip(".。!") + "?"


def _english_question(sentence: str, start: int, end: int, kind: str, fact: str) -> str:
    word = next(e for k, _, _, e in _FACTS if k == kind)
    if kind == "quantity":
        word += " " + re.sub(rf"^(?:{_NUM})\s?", "", fact)
    text = (sentence[:start] + word + sentence[end:]).strip().rstrip(".!")
    return text[:1].upper() + text[1:] + "?"


_HEADING = re.compile(r"^제\s?\d+\s?조(?:의\s?\d+)?\s?(?:\([^)]*\))?\s*")
_ITEM = re.compile(r"^(?:[①-⑳]|\d{1,2}[.)]|[가-하][.)])\s*")


def _question(sentence: str, start: int, end: int, kind: str, fact: str) -> str:
    """The sentence with its fact asked for; a table row (cells joined by " | ") as "label: value?"."""
    korean = bool(_HANGUL.search(sentence))
    if " | " in sentence:
        cells = sentence.split(" | ")
        offset = 0
        for index, cell_text in enumerate(cells):
            if offset <= start < offset + len(cell_text):
                break
            offset += len(cell_text) + 3
        local = start - offset
        cell_q = (_korean_question(cell_text, local, local + end - start, kind, fact) if korean
                  else _english_question(cell_text, local, local + end - start, kind, fact))
        if not korean:
            cell_q = cell_q[:1].lower() + cell_q[1:]
        label = cells[0] if index else (cells[1] if len(cells) > 1 else "")
        return f"{label.strip()}: {cell_q}" if label.strip() else cell_q
    if kind == "article" and start == 0:  # "제1조(목적) 이 규정은 …": which article says this?
        rest = _HEADING.sub("", sentence).strip()
        return f"「{rest}」는 몇 조의 내용인가?" if korean else f"Which article says: \"{rest}\"?"
    heading = _HEADING.match(sentence)
    cut = heading.end() if heading and heading.end() <= start else 0
    item = _ITEM.match(sentence[cut:])
    if item and cut + item.end() <= start:
        cut += item.end()
    sentence, start, end = sentence[cut:], start - cut, end - cut
    return (_korean_question(sentence, start, end, kind, fact) if korean
            else _english_question(sentence, start, end, kind, fact))


def facts_of(sentence: str) -> list[tuple[str, int, int, str]]:
    """(kind, start, end, text) of each fact in the sentence; overlapping later kinds are dropped."""
    taken: list[tuple[int, int]] = []
    found = []
    for kind, pattern, _, _ in _FACTS:
        for match in pattern.finditer(sentence):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            found.append((kind, start, end, match.group().strip()))
    return found


def candidates_from(text: str, file: str, *, collection: str | None = None) -> list[Candidate]:
    """One candidate per sentence with a fact (the most specific kind), no answer twice."""
    seen_answers: set[str] = set()
    out = []
    order = [k for k, *_ in _FACTS]
    for sentence in sentences(text):
        # A fact that opens the sentence is usually its heading ("제3조(연차 휴가) …"): the others first.
        found = sorted(facts_of(sentence), key=lambda f: (f[1] == 0, order.index(f[0])))
        for kind, start, end, fact in found:
            if fact in seen_answers or len(fact) < 2:
                continue
            if kind == "year" and not _HANGUL.search(sentence):
                fact = re.sub(r"^\w+\s", "", fact)  # "in 1998" → "1998"
                start = end - len(fact)
            question = _question(sentence, start, end, kind, fact)
            seen_answers.add(fact)
            out.append(Candidate(question, fact, file, kind, sentence, collection))
            break
    return out


def generate(backend, n: int, *, collection: str | None = None, seed: int = 0) -> tuple[list[Candidate], int]:
    """Up to ``n`` candidates from the collection's documents, spread across files (round robin, in a
    seeded order within each file); also how many documents were read."""
    records = [r for r in backend.documents(collection=collection) if r.status == "done"]
    rng = random.Random(seed)
    per_file: list[list[Candidate]] = []
    for record in sorted(records, key=lambda r: r.file_name):
        text = "\n".join(chunk_text for _, chunk_text, _ in backend.chunks_of(record))
        found = candidates_from(text, record.file_name, collection=collection)
        unique = list({c.question: c for c in found}.values())
        rng.shuffle(unique)
        if unique:
            per_file.append(unique)
    chosen: list[Candidate] = []
    while len(chosen) < n and any(per_file):
        for queue in per_file:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen, len(records)
