"""Heading paths from paragraph text: Korean statute structure and numbered outlines.

Used by the HWP/HWPX walker (whose documents carry structure in their text, not in styles):

- statutes and regulations: 편, 장, 절, 관 ("제1장 총칙"), 조 ("제3조(연차 휴가)"), then inside a 조
  its 항 (①), 호 (1.) and 목 (가.); 부칙, 별표 and 별지 close the articles before them;
- numbered outlines of ordinary documents (보도자료, 계획서): "Ⅰ. 서론", "1. 개요", "가. 목적",
  "1)", "가)", "(1)", "(가)", "①", "□ 추진배경", "3.1."; a marker's level is found from the markers
  already open (the same kind again is a sibling, a new kind is a child), as a reader does;
- outline paragraphs (개요 문단) whose level the document states.

A line is a heading when it is short and reads as a title (no sentence end); a numbered line that
is a sentence ("1. 신청은 3일 전까지 한다.") opens its item with the marker alone ("1. 개요 > 나."),
so what follows still cites the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stack.pipeline.document import heading_path

MAX_PART = 40

_HANGUL_SEQ = "가나다라마바사아자차카타파하"
_CIRCLED = "\u2460-\u2473"

_STATUTE_MAJOR = re.compile(r"^제\s*(\d{1,3})\s*(편|장|절|관)(?=\s|$|[(（.:])\s*(.*)$")
_ARTICLE = re.compile(
    r"^제\s*(\d{1,4})\s*조(?:\s*의\s*(\d{1,3}))?"
    r"(?:\s*([(（][^()（）\n]{1,40}[)）]))?"
    r"(?=\s|$|[" + _CIRCLED + r"])\s*(.*)$",
    re.DOTALL,
)
_NOT_ARTICLE_BODY = re.compile(r"^(?:제\s*\d|및|또는|내지|부터|까지|와|과|에|의|중|는|을|를|,|·)")
_SUPPLEMENT = re.compile(r"^(부\s*칙)(?=\s|$|[(（<〈:：\[])\s*[:：]?\s*(.*)$", re.DOTALL)
_ANNEX = re.compile(r"^[\[［【<〈]?\s*(별\s*표|별\s*지|부\s*록|서\s*식)(?:\s*(?:제\s*)?\d+(?:\s*호)?)?(?!\S*[을를이가은는에의])")
#: The first cell of a one-row title box ("Ⅰ | 사업개요", "참 고 | 해외직접투자 개념").
_BOX_NUMBER = re.compile(r"^(?:[\u2160-\u216b]{1,3}|[IVX]{1,4}|\d{1,2})\.?$")
_BOX_APPENDIX = re.compile(r"^(?:참\s*고|별\s*첨|붙\s*임|부\s*록)\s*\d{0,2}\.?$")
_PARAGRAPH_MARK = re.compile(r"^([" + _CIRCLED + r"])\s*(.*)$", re.DOTALL)

#: (family, regex): group 1 the marker as written, group 2 the rest of the line.
_MARKERS: list[tuple[str, re.Pattern]] = [
    ("decimal", re.compile(r"^(\d{1,2}(?:\.\d{1,2}){1,4}\.?)(?=\s)\s*(.*)$", re.DOTALL)),
    ("roman", re.compile(r"^([\u2160-\u216b]{1,3}\.?|[IVX]{1,4}\.)(?=\s|[가-힣])\s*(.*)$", re.DOTALL)),
    ("digit_dot", re.compile(r"^(\d{1,2}\.)(?![\d.])\s*(?=\S)(.*)$", re.DOTALL)),
    ("hangul_dot", re.compile(r"^([" + _HANGUL_SEQ + r"]\.)(?![\d.])\s*(?=\S)(.*)$", re.DOTALL)),
    ("digit_paren", re.compile(r"^(\d{1,2}\))\s*(?=\S)(.*)$", re.DOTALL)),
    ("hangul_paren", re.compile(r"^([" + _HANGUL_SEQ + r"]\))\s*(?=\S)(.*)$", re.DOTALL)),
    ("paren_digit", re.compile(r"^(\(\d{1,2}\))\s*(?=\S)(.*)$", re.DOTALL)),
    ("paren_hangul", re.compile(r"^(\([" + _HANGUL_SEQ + r"]\))\s*(?=\S)(.*)$", re.DOTALL)),
    ("circled", re.compile(r"^([" + _CIRCLED + r"])\s*(?=\S)(.*)$", re.DOTALL)),
    ("square", re.compile(r"^([□■])\s*(?=\S)(.*)$", re.DOTALL)),
]
_SENTENCE_END = re.compile(r"(?:[.!?。]|다|니다|함|음|임|됨|것)[\"'”’)\]]*$")

# Statute ranks: a part of a higher rank closes everything below it.
_RANK = {"편": 1, "장": 2, "부칙": 2, "별표": 2, "절": 3, "관": 4, "조": 5, "항": 6, "호": 7, "목": 8}


UNIT_NOTE = re.compile(r"\s*[(（]\s*단위\s*[:：][^)）]*[)）]")


def cap(text: str, limit: int = MAX_PART) -> str:
    """A heading part: one line, without a "(단위: 억 달러)" note, at most ``limit`` characters."""
    text = " ".join(UNIT_NOTE.sub("", text).split()) or " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def title_like(text: str) -> bool:
    """A short line that reads as a title, not as a sentence."""
    text = text.strip()
    return (
        0 < len(text) <= MAX_PART
        and "\n" not in text
        and sum(ch.isalpha() for ch in text) >= 2  # "① ② ③ ④ ⑤" (answer choices) is no title
        and not _SENTENCE_END.search(text)
    )


def _label(text: str) -> str:
    """The label of "과업기간 : 2024년 1월" is "과업기간"."""
    head = re.split(r"\s*[:：]\s*", text, maxsplit=1)[0]
    return head or text


@dataclass
class _Entry:
    family: str  # "statute", "outline" or a marker family
    depth: int  # statute rank, outline level, decimal depth; 0 for other markers
    part: str


class HeadingTracker:
    """The open headings of a document as its paragraphs go by."""

    def __init__(self) -> None:
        self.stack: list[_Entry] = []
        # The marker line just before, as (family, depth, taken for a heading, its path as a list item).
        self._last_item: tuple[str, int, bool, str | None] | None = None
        #: Set by paragraph() when the line before, taken for a heading, proves to be the first item of
        #: a list (a sibling marker follows at once): (its path as a heading, its path as an item).
        self.demoted: tuple[str | None, str | None] | None = None

    def interrupt(self) -> None:
        """Something other than a paragraph (a table) came between two lines."""
        self._last_item = None

    @property
    def path(self) -> str | None:
        return heading_path(entry.part for entry in self.stack)

    def with_part(self, part: str | None) -> str | None:
        """The current path with one more part (a table's caption)."""
        return heading_path([*(entry.part for entry in self.stack), cap(part or "")])

    # -- stack operations
    def _in_article(self) -> bool:
        return any(e.family == "statute" and e.depth == _RANK["조"] for e in self.stack)

    def _push_statute(self, rank: int, part: str) -> None:
        while self.stack and (
            (self.stack[-1].family == "statute" and self.stack[-1].depth >= rank)
            or self.stack[-1].family not in ("statute", "outline")
        ):
            self.stack.pop()
        self.stack.append(_Entry("statute", rank, part))

    def _push_marker(self, family: str, depth: int, part: str | None) -> None:
        """A marker of ``family``: a sibling of the open one of its kind (closing what is under it),
        else a child of the innermost open heading.  ``part`` None closes siblings only."""
        for index, entry in enumerate(self.stack):
            if entry.family == family and entry.depth >= depth:
                del self.stack[index:]
                break
        if part:
            self.stack.append(_Entry(family, depth, part))

    def outline(self, level: int, text: str, number: str = "") -> tuple[str | None, bool]:
        """An outline paragraph (개요 문단) at ``level`` (0 = top), ``text`` starting with the
        ``number`` Hancom draws: a heading, unless it reads as a sentence (body text written in an
        outline style), which is filed under its number alone.  Returns (path, is it a heading)."""
        while self.stack and not (self.stack[-1].family == "outline" and self.stack[-1].depth < level):
            self.stack.pop()
        first = text.strip().split("\n", 1)[0]
        title = first[len(number):].strip() if number and first.startswith(number) else first
        heading = not number or (len(title) <= MAX_PART and not _SENTENCE_END.search(title))
        if first:
            self.stack.append(_Entry("outline", level, cap(first) if heading else number))
        return self.path, heading

    def box(self, cells: list[str]) -> str | None:
        """A one-row table used as a title box: "Ⅰ | 사업개요" opens a numbered heading, "참고 | …" or
        "별첨 | …" an appendix at the top.  Returns the new path, or None when it is no title box."""
        cells = [" ".join(cell.split()) for cell in cells if cell.strip()]
        if not 1 <= len(cells) <= 3 or any("\n" in c for c in cells) or sum(len(c) for c in cells) > 60:
            return None
        first, rest = cells[0], " ".join(cells[1:])
        if _BOX_APPENDIX.match(first):
            self.stack = [_Entry("appendix", 0, cap(" ".join(cells)))]
            return self.path
        if _BOX_NUMBER.match(first) and rest and title_like(rest):
            self.paragraph(f"{first.rstrip('.')}. {rest}")
            return self.path
        if len(cells) == 1 and _MARKERS[1][1].match(first):  # one cell: "Ⅱ. 과업 세부내용"
            path, heading = self.paragraph(first)
            return path if heading else None
        return None

    # -- a body paragraph
    def paragraph(self, text: str) -> tuple[str | None, bool]:
        """Update the open headings with a body paragraph; return (its heading path, is it a heading).

        A numbered line right after a sibling of its kind ("2." after "1.") is a list item, not a
        heading: it is filed under its marker alone, and so is the first item, when it had been
        taken for a heading (see ``demoted``)."""
        previous, self._last_item, self.demoted = self._last_item, None, None
        return self._paragraph(text, previous)

    def _paragraph(self, text: str, previous: tuple[str, int, bool, str | None] | None) -> tuple[str | None, bool]:
        line = text.strip().split("\n", 1)[0].strip()
        if not line:
            return self.path, False
        # 편 / 장 / 절 / 관
        match = _STATUTE_MAJOR.match(line)
        if match and len(line) <= MAX_PART + 10:
            number, unit, title = match.groups()
            part = cap(f"제{number}{unit} {title}".strip())
            self._push_statute(_RANK[unit], part)
            return self.path, True
        # 조
        match = _ARTICLE.match(line)
        if match:
            number, sub, title, rest = match.groups()
            if title or not rest or not _NOT_ARTICLE_BODY.match(rest):
                label = f"제{number}조" + (f"의{sub}" if sub else "")
                if title:
                    label += "(" + " ".join(title[1:-1].split()) + ")"
                self._push_statute(_RANK["조"], label)
                rest = rest.strip()
                mark = _PARAGRAPH_MARK.match(rest)
                if mark:
                    self.stack.append(_Entry("statute", _RANK["항"], mark.group(1)))
                return self.path, not rest
        # 부칙, 별표, 별지
        match = _SUPPLEMENT.match(line)
        if match and (not match.group(2) or len(line) <= MAX_PART or ":" in line[:6] or "：" in line[:6]):
            self._push_statute(_RANK["부칙"], "부칙")
            return self.path, not match.group(2).strip() or title_like(match.group(2))
        match = _ANNEX.match(line)
        if match and len(line) <= MAX_PART + 20:
            self._push_statute(_RANK["별표"], cap(line))
            return self.path, True
        # 항 / 호 / 목 inside an article
        if self._in_article():
            mark = _PARAGRAPH_MARK.match(line)
            if mark:
                self._push_statute(_RANK["항"], mark.group(1))
                return self.path, False
            for family, unit in (("digit_dot", "호"), ("hangul_dot", "목")):
                mark = dict(_MARKERS)[family].match(line)
                if mark:
                    self._push_statute(_RANK[unit], mark.group(1))
                    return self.path, False
        # numbered outline lines
        for family, pattern in _MARKERS:
            mark = pattern.match(line)
            if not mark:
                continue
            marker, rest = mark.group(1), mark.group(2).strip()
            depth = marker.rstrip(".").count(".") + 1 if family == "decimal" else 0
            if family == "roman" and not (title_like(rest) or len(rest) <= MAX_PART):
                break  # "I. " starting an English sentence
            # "1) 사업기간 : 24개월" is a labelled item, not a title.
            heading = title_like(rest) and _label(rest) == rest
            if previous is not None and previous[:2] == (family, depth):
                if previous[2]:
                    self.demoted = (self.path, previous[3])
                heading = False
            item = None if family == "square" else marker
            self._push_marker(family, depth, cap(f"{marker} {rest}") if heading else item)
            parents = [e.part for e in self.stack[:-1]] if heading or item else [e.part for e in self.stack]
            self._last_item = (family, depth, heading, heading_path([*parents, item] if item else parents))
            return self.path, heading
        return self.path, False


#: A paragraph that titles the table after it: "< 분기별 동향(억 달러) >", "[표 2] 예산", "표 3. 인력".
CAPTION_LIKE = re.compile(
    r"^(?:[<〈《【［\[]\s*[^\n]{2,60}?\s*[>〉》】］\]][^\n]{0,30}|(?:표|그림|Table|Figure)\s*\d+(?:[.:)]|\s)[^\n]{0,60})$"
)


def caption_part(text: str) -> str:
    """A caption's text as a heading: its first line, without the brackets that frame it."""
    first = text.strip().split("\n", 1)[0].strip()
    match = re.match(r"^[<〈《【［\[]\s*(.+?)\s*[>〉》】］\]]$", first)
    return cap(match.group(1) if match else first)
