"""Joining wrapped lines back into paragraphs (a PDF's text layer, an OCR'd page's lines).

Korean line wraps split words without hyphens; whether a wrap split a word is judged from the words
the document uses elsewhere.
"""

from __future__ import annotations

import re

_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]")


def is_hangul(ch: str) -> bool:
    return bool(ch) and bool(_HANGUL.match(ch))


# Hangul syllables that end most 어절 (particles, verb endings): a line ending in one is usually
# wrapped at a word boundary, not inside a word.
_WORD_FINAL = set("은는이가을를에의로와과도만서고며면다요한할된인적들께및등")
_PARTICLES = set("은는이가을를의에도만로와과")
_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


class Vocabulary:
    """Which words a document uses, to decide whether a wrapped Hangul line split a word."""

    def __init__(self, lines: list[str]) -> None:
        self.text = "\n".join(lines)
        self.tokens: set[str] = set()
        for line in lines:
            for token in line.split():
                token = _PUNCT.sub("", token)
                if token:
                    self.tokens.add(token)

    def joins(self, left: str, right: str) -> bool:
        """True when ``left`` + ``right`` (the end of one line, the start of the next) is one word."""
        a = _PUNCT.sub("", left.split()[-1]) if left.split() else ""
        b = _PUNCT.sub("", right.split()[0]) if right.split() else ""
        if not a or not b:
            return True
        if a + b in self.text or (len(b) >= 2 and a + b[:-1] in self.text):
            return True
        if len(b) == 1 and b in _PARTICLES:
            return True  # a particle wrapped onto the next line belongs to the word before it
        if len(a) == 1:
            return True
        if a in self.tokens and (b in self.tokens or b[:-1] in self.tokens):
            return False
        return a[-1] not in _WORD_FINAL


def join_lines(lines: list[tuple[str, bool]], vocabulary: Vocabulary | None = None) -> list[str]:
    """Join wrapped lines into paragraphs.

    ``lines`` holds (text, full) pairs where ``full`` says the line reaches the right margin (it was
    wrapped, not ended). A line that is not full ends its paragraph. Within a paragraph:
    Hangul|Hangul across a full line joins without a space when the wrap split a word (judged from
    the words the document uses elsewhere), an English word hyphenated across the break loses its
    hyphen, anything else joins with one space.
    """
    paragraphs: list[str] = []
    current = ""
    previous_full = False
    for text, full in lines:
        text = text.strip()
        if not text:
            if current:
                paragraphs.append(current)
            current, previous_full = "", False
            continue
        if not current:
            current = text
        elif (
            previous_full
            and is_hangul(current[-1])
            and is_hangul(text[0])
            and (vocabulary is None or vocabulary.joins(current, text))
        ):
            current += text
        elif (
            len(current) >= 2
            and current[-1] in "-\u2010\u00ad"
            and current[-2].isalpha()
            and text[0].islower()
        ):
            current = current[:-1] + text
        else:
            current += " " + text
        previous_full = full
        if not full:
            paragraphs.append(current)
            current, previous_full = "", False
    if current:
        paragraphs.append(current)
    return paragraphs
