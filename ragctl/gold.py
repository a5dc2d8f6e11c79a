"""Whether an answer holds a gold answer: the one definition the benchmarks (bench/answers.py) and
``ragctl eval`` share.  Standard library only (a base install scores a stack's answers with it).

* :func:`answer_body` — the answer without its extractive label line and without its [n] markers;
* :func:`contains_gold` — some gold text occurs in a text, whitespace removed and case folded;
* :func:`answer_has_gold` — :func:`contains_gold` on the answer's body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stack.contract import EXTRACTIVE_LABEL_EN, EXTRACTIVE_LABEL_KO

MARKER = re.compile(r"\s*\[(\d+)\]")
_SPACE = re.compile(r"\s+")


def answer_body(text: str) -> str:
    """The answer without its label line and without its [n] markers."""
    lines = [line for line in text.splitlines() if line.strip() not in (EXTRACTIVE_LABEL_EN, EXTRACTIVE_LABEL_KO)]
    return MARKER.sub("", "\n".join(lines)).strip()


def cited_numbers(text: str) -> set[int]:
    """The source numbers an answer cites with [n]."""
    return {int(n) for n in MARKER.findall(text)}


def squash(text: str) -> str:
    """Whitespace removed, case folded: how gold answers are matched."""
    return _SPACE.sub("", text).casefold()


def contains_gold(text: str, golds: Iterable[str]) -> bool:
    haystack = squash(text)
    return any(squash(gold) and squash(gold) in haystack for gold in golds)


def answer_has_gold(answer_text: str, golds: Iterable[str]) -> bool:
    """The answer's body (:func:`answer_body`) contains one of the gold texts."""
    return contains_gold(answer_body(answer_text), golds)
