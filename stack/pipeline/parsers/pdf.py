"""PDF with pypdfium2: one block per paragraph, 1-based page numbers, careful line joining.

Numbered section headings ("1. Introduction", "2.1 Setup", "3 결과") give the blocks after them a
heading path, cited with the page ("p. 3 · 2. Method > 2.1 Setup").  Only what is cheap and
reliable: a short line of its own that reads as a title, numbered in sequence with the headings
before it (1, 2, 2.1, 2.2, 3 …), and not one of a run of numbered lines (a list or a table of
contents).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from stack.pipeline.document import Block, ParsedDocument, heading_path
from stack.pipeline.errors import CorruptDocument, NoText, PasswordProtected
from stack.pipeline.parsers.clean import clean_text

_HANGUL = re.compile("[\uac00-\ud7a3\u3131-\u318e]")
_SENTENCE_END = tuple('.!?。:;)」』”"')
# pdfium error codes (FPDF_ERR_*)
_ERR_FORMAT = 3
_ERR_PASSWORD = 4
_ERR_SECURITY = 5


def _is_hangul(ch: str) -> bool:
    return bool(ch) and bool(_HANGUL.match(ch))


# Hangul syllables that end most 어절 (particles, verb endings): a line ending in one is usually
# wrapped at a word boundary, not inside a word.
_WORD_FINAL = set("은는이가을를에의로와과도만서고며면다요한할된인적들께및등")
_PARTICLES = set("은는이가을를의에도만로와과")
_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


class _Vocabulary:
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


def join_lines(lines: list[tuple[str, bool]], vocabulary: _Vocabulary | None = None) -> list[str]:
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
            and _is_hangul(current[-1])
            and _is_hangul(text[0])
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


def _page_lines(textpage) -> list[tuple[str, bool]]:
    count = textpage.count_chars()
    if count <= 0:
        return []
    text = textpage.get_text_range(0, count)
    raw_lines = re.split(r"\r\n|\n|\r", text)
    # Right edge of every line from the character boxes, where the text maps 1:1 onto char indices.
    rights: list[float | None] = []
    lefts: list[float | None] = []
    geometry = len(text) == count
    index = 0
    for line in raw_lines:
        right = left = None
        if geometry and line.strip():
            try:
                stripped_end = len(line.rstrip())
                left_off = len(line) - len(line.lstrip())
                left = textpage.get_charbox(index + left_off)[0]
                right = textpage.get_charbox(index + stripped_end - 1)[2]
            except Exception:  # noqa: BLE001 - library boundary
                geometry = False
        rights.append(right)
        lefts.append(left)
        index += len(line) + 2
    lengths = [len(line.strip()) for line in raw_lines]
    result: list[tuple[str, bool]] = []
    if geometry and any(r is not None for r in rights):
        # Columns: a line is "full" when it reaches the right edge of the lines that start where it
        # starts (so a two-column page judges each column on its own).
        page_width = max((r for r in rights if r is not None), default=1.0) - min(
            (x for x in lefts if x is not None), default=0.0
        )
        page_width = max(page_width, 1.0)
        tolerance = 0.08 * page_width
        for i, (line, left, right) in enumerate(zip(raw_lines, lefts, rights)):
            full = False
            if right is not None and left is not None:
                column = [
                    r
                    for x, r in zip(lefts, rights)
                    if x is not None and r is not None and abs(x - left) <= tolerance
                ]
                column_right = max(column)
                # A wrapped line: the first word of the next line would not have fitted after it.
                next_line = raw_lines[i + 1].strip() if i + 1 < len(raw_lines) else ""
                next_word = next_line.split()[0] if next_line else ""
                chars = max(len(line.strip()), 1)
                char_width = max((right - left) / chars, 0.5)
                needed = (len(next_word) + 1) * char_width if next_word else 0.0
                if len(column) >= 2 and next_word:
                    full = right + needed >= column_right - 0.02 * page_width
            result.append((line, full and not line.rstrip().endswith(_SENTENCE_END)))
        return result
    longest = max(lengths) if lengths else 0
    for line, length in zip(raw_lines, lengths):
        full = longest > 0 and length >= 0.85 * longest
        result.append((line, full and not line.rstrip().endswith(_SENTENCE_END)))
    return result


_NUMBERED = re.compile(r"^(\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+(\S.{0,78})$")
HEADING_PART = 60


def _numbered(text: str) -> tuple[tuple[int, ...], str] | None:
    """(number, title) of a line that reads as a numbered section heading."""
    if "\n" in text:
        return None
    match = _NUMBERED.match(text.strip())
    if not match:
        return None
    title = match.group(2).strip()
    if (
        not (title[0].isupper() or _is_hangul(title[0]))
        or title[-1] in ".,;:!?"
        or len(title.split()) > 12
        or sum(ch.isalpha() for ch in title) < 2
        or "=" in title
        or sum(ch.isalpha() for ch in title) < 0.7 * len(title.replace(" ", ""))
    ):
        return None
    return tuple(int(n) for n in match.group(1).split(".")), title


def _follows(previous: tuple[int, ...], number: tuple[int, ...]) -> bool:
    """``number`` may come next after ``previous``: its first child, or the next at some level."""
    if not previous:
        return number in ((0,), (1,))
    if number == (*previous, 1):
        return True
    return any(number == (*previous[:i], previous[i] + 1) for i in range(len(previous)))


def heading_paths(blocks: list[Block]) -> list[Block]:
    """The blocks with their heading paths (numbered section headings in sequence)."""
    out: list[Block] = []
    trail: list[tuple[tuple[int, ...], str]] = []
    previous: tuple[int, ...] = ()
    numbered = [_numbered(block.text) for block in blocks]
    for index, block in enumerate(blocks):
        found = numbered[index]
        kind = block.kind
        if found is not None and _follows(previous, found[0]):
            after = numbered[index + 1] if index + 1 < len(blocks) else None
            if after is None or len(after[0]) != len(found[0]):  # a run of same-level lines is a list
                number = found[0]
                previous = number
                while trail and len(trail[-1][0]) >= len(number):
                    trail.pop()
                trail.append((number, block.text.strip()[:HEADING_PART]))
                kind = "heading"
        heading = heading_path(part for _, part in trail)
        out.append(replace(block, kind=kind, heading=heading))
    return out


def parse_pdf(path: Path) -> ParsedDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        message = str(exc).lower()
        if code in (_ERR_PASSWORD, _ERR_SECURITY) or "password" in message or "security" in message:
            raise PasswordProtected(
                f"{path.name} is a password-protected PDF (암호가 걸린 PDF): it cannot be opened "
                "without its password.",
                hint="Open it with the password, save or print an unprotected copy, and upload that.",
            ) from exc
        raise CorruptDocument(
            f"{path.name} is a damaged PDF that cannot be opened ({exc}).",
            hint="Get a fresh copy, or open it in a PDF viewer and save/print it as a new PDF.",
        ) from exc
    page_lines: list[list[tuple[str, bool]]] = []
    try:
        pages = len(pdf)
        for number in range(pages):
            try:
                page = pdf[number]
                textpage = page.get_textpage()
            except pdfium.PdfiumError as exc:
                raise CorruptDocument(
                    f"{path.name}: page {number + 1} of {pages} is damaged and cannot be read ({exc}).",
                    hint="Get a fresh copy, or open it in a PDF viewer and save/print it as a new PDF.",
                ) from exc
            try:
                page_lines.append(_page_lines(textpage))
            finally:
                textpage.close()
                page.close()
    finally:
        pdf.close()
    vocabulary = _Vocabulary([line for lines in page_lines for line, _ in lines])
    blocks: list[Block] = []
    for number, lines in enumerate(page_lines):
        for paragraph in join_lines(lines, vocabulary):
            text = clean_text(paragraph)
            if text:
                blocks.append(Block(text=text, page=number + 1))
    blocks = heading_paths(blocks)
    if not blocks:
        if pages == 0:
            raise CorruptDocument(
                f"{path.name} is a PDF with no pages.",
                hint="Get a fresh copy of the file; it may have been saved incompletely.",
            )
        raise NoText(
            f"{path.name} has {pages} page(s) but no text layer: it is probably a scan or images of "
            "text. OCR is not supported.",
            hint="Run OCR on it first (e.g. ocrmypdf) or upload the original document it was made from.",
        )
    return ParsedDocument(format="pdf", parser="pypdfium2", blocks=blocks, metadata={"pages": pages})
