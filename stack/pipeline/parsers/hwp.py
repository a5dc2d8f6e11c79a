"""HWP 5 (.hwp) and HWPX (.hwpx) with python-hwpx; unhwp as the fallback.

HWP 5 files are converted by python-hwpx into HWPX parts in memory, so both formats go through the
same walker over the OWPML section XML and give the same text for the same document: paragraphs,
tables (as rows, nested tables flattened into their cell), captions, text boxes, foot/endnotes,
headers and footers.
"""

from __future__ import annotations

import re
import struct
import warnings
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from stack.contract import ParseReport
from stack.pipeline.document import Block, ParsedDocument, location_label, table_block_of
from stack.pipeline.errors import (
    CorruptDocument,
    DistributionProtected,
    NoText,
    PasswordProtected,
    PipelineError,
)
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.headings import CAPTION_LIKE, HeadingTracker, caption_part
from stack.pipeline.parsers.pictures import Picture, PictureUnit, own_text_chars, read_pictures
from stack.pipeline.parsers.zipsafe import safe_unpack
from stack.pipeline.tables import Cell

# HWP 5 FileHeader property flags (HWP 5.0 spec, "파일 인식 정보").
FLAG_COMPRESSED = 1 << 0
FLAG_PASSWORD = 1 << 1
FLAG_DISTRIBUTION = 1 << 2

#: What unhwp returns instead of the body of a 배포용 document: never index it as text.
DISTRIBUTION_PLACEHOLDERS = ("이 문서는 상위 버전의 배포용 문서입니다", "배포용 문서입니다")

_SECTION_RE = re.compile(r"^Contents/section(\d+)\.xml$", re.IGNORECASE)
_MAX_XML_BYTES = 200 * 1024 * 1024

# Drawing objects whose text lives in hp:drawText / hp:caption sub-lists.
_SHAPES = {
    "rect",
    "ellipse",
    "arc",
    "polygon",
    "curve",
    "line",
    "connectLine",
    "container",
    "pic",
    "ole",
    "textart",
    "compose",
    "video",
    "chart",
    "switch",
    "case",
    "default",
}
_SKIP = {
    "secPr",
    "linesegarray",
    "equation",
    "fieldEnd",
    "markpenEnd",
    "bookmark",
    "pageNum",
    "pageNumCtrl",
    "pageHiding",
    "colPr",
    "newNum",
    "indexmark",
    "parameters",
}
_FORM = {"btn", "checkBtn", "radioBtn", "comboBox", "listBox", "edit", "scrollBar"}

#: Drawing objects whose content is not text, as (finding kind, why): reported when skipped.
_OPAQUE = {
    "ole": ("ole_object", "an embedded object (OLE: another program's data) is binary: only its caption is read"),
    "chart": ("chart", "a chart's data is not read, only its caption"),
    "video": ("media", "a video is not read"),
}
_PICTURE_WHY = "a picture with no caption or text box: text inside an image is not read"
_EQUATION_WHY = "an equation (수식) is not read as text"


def _int(element: ET.Element | None, name: str, default: int) -> int:
    try:
        return int(element.get(name, default)) if element is not None else default
    except ValueError:
        return default


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


_PASSWORD_HINT = (
    "Open it in Hancom Office (한글), remove the password (보안 → 문서 암호 해제), save, and upload it again."
)
_DIST_HINT = (
    "Ask the author for the original (non-distribution) file, or open it in Hancom Office and save a "
    "copy as PDF, then upload that."
)


def password_error(name: str) -> PasswordProtected:
    return PasswordProtected(
        f"{name} is password-protected (암호가 걸린 문서): its body is encrypted, so its text cannot be "
        "read without the password.",
        hint=_PASSWORD_HINT,
    )


def distribution_error(name: str) -> DistributionProtected:
    return DistributionProtected(
        f"{name} is a distribution-protected document (배포용 문서): Hancom encrypts its body for "
        "viewing only, so its text cannot be extracted.",
        hint=_DIST_HINT,
    )


def _corrupt(name: str, why: str) -> CorruptDocument:
    return CorruptDocument(
        f"{name} cannot be read: {why}. The file is truncated or damaged.",
        hint="Get a fresh copy (an interrupted download?), or open it in Hancom Office and save it again.",
    )



# ------------------------------------------------------------------------ paragraph numbering
# Hancom draws outline numbers (개요 번호), paragraph numbers (문단 번호) and bullets in front of
# paragraphs whose paragraph shape (hh:paraPr in header.xml) has an hh:heading of type OUTLINE,
# NUMBER or BULLET.  They are not in the text, so they are generated here as Hancom does: one
# counter per level and numbering, deeper levels restarting after a shallower one, a skipped
# level counting from its start, and format strings such as "^1." or "(^5)" (^n: level n's
# number in level n's own format).

_HANGUL_SYLLABLES = "가나다라마바사아자차카타파하"
_HANGUL_JAMO = "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ"
_VOWEL_OFFSETS = (0, 4, 8, 13, 18, 20)  # ㅏ ㅓ ㅗ ㅜ ㅡ ㅣ among the 21 medials
_IDEOGRAPHS = "一二三四五六七八九十"
_HANGUL_DIGITS = "일이삼사오육칠팔구십"


def _roman(n: int) -> str:
    out = []
    for value, numeral in (
        (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
    ):
        while n >= value:
            out.append(numeral)
            n -= value
    return "".join(out)


def _hangul_syllable(n: int) -> str:
    """가, 나, … 하, then 거, 너, … (the same consonants with the next vowel)."""
    index = (n - 1) % (len(_HANGUL_SYLLABLES) * len(_VOWEL_OFFSETS))
    vowel, consonant = divmod(index, len(_HANGUL_SYLLABLES))
    return chr(ord(_HANGUL_SYLLABLES[consonant]) + _VOWEL_OFFSETS[vowel] * 28)


def format_number(n: int, fmt: str) -> str:
    """``n`` (1-based) written in an OWPML numFormat (DIGIT, HANGUL_SYLLABLE, CIRCLED_DIGIT, …)."""
    fmt = (fmt or "DIGIT").upper()
    n = max(n, 1)
    if fmt == "CIRCLED_DIGIT":
        return chr(0x2460 + n - 1) if n <= 20 else str(n)
    if fmt == "ROMAN_CAPITAL":
        return _roman(n)
    if fmt == "ROMAN_SMALL":
        return _roman(n).lower()
    if fmt in ("LATIN_CAPITAL", "LATIN_SMALL", "CIRCLED_LATIN_CAPITAL", "CIRCLED_LATIN_SMALL"):
        letter = chr(ord("A") + (n - 1) % 26)
        if fmt == "LATIN_SMALL":
            return letter.lower()
        if fmt == "CIRCLED_LATIN_CAPITAL":
            return chr(0x24B6 + (n - 1) % 26)
        if fmt == "CIRCLED_LATIN_SMALL":
            return chr(0x24D0 + (n - 1) % 26)
        return letter
    if fmt == "HANGUL_SYLLABLE":
        return _hangul_syllable(n)
    if fmt == "CIRCLED_HANGUL_SYLLABLE":
        return chr(0x326E + (n - 1) % 14)
    if fmt == "HANGUL_JAMO":
        return _HANGUL_JAMO[(n - 1) % 14]
    if fmt == "CIRCLED_HANGUL_JAMO":
        return chr(0x3260 + (n - 1) % 14)
    if fmt == "HANGUL_PHONETIC":
        return _HANGUL_DIGITS[n - 1] if n <= 10 else str(n)
    if fmt in ("IDEOGRAPH", "CIRCLED_IDEOGRAPH"):
        if n <= 10:
            return chr(0x3280 + n - 1) if fmt == "CIRCLED_IDEOGRAPH" else _IDEOGRAPHS[n - 1]
        return str(n)
    return str(n)


class Numbering:
    """Paragraph shapes, numberings and bullets of one document (header.xml), and the counters."""

    def __init__(self, header: bytes | None = None) -> None:
        self.heads: dict[str, tuple[str, str, int]] = {}  # paraPr id → (type, idRef, level 0-based)
        self.formats: dict[str, dict[int, tuple[int, str, str]]] = {}  # numbering id → level → (start, numFormat, text)
        self.bullets: dict[str, str] = {}
        self.counters: dict[str, list[int]] = {}
        self.outline_id = "1"
        if header:
            try:
                self._read(ET.fromstring(header))
            except ET.ParseError:
                pass

    def _read(self, root: ET.Element) -> None:
        for element in root.iter():
            tag = _local(element.tag)
            if tag == "paraPr":
                heading = next((e for e in element.iter() if _local(e.tag) == "heading"), None)
                if heading is not None and (heading.get("type") or "NONE").upper() != "NONE":
                    try:
                        level = int(heading.get("level") or 0)
                    except ValueError:
                        level = 0
                    self.heads[element.get("id", "")] = (
                        heading.get("type", "").upper(), heading.get("idRef") or "0", level
                    )
            elif tag == "numbering":
                levels: dict[int, tuple[int, str, str]] = {}
                for head in element:
                    if _local(head.tag) != "paraHead":
                        continue
                    try:
                        level = int(head.get("level") or 0)
                        start = int(head.get("start") or 1)
                    except ValueError:
                        continue
                    levels[level] = (start, head.get("numFormat") or "DIGIT", head.text or "")
                self.formats[element.get("id", "")] = levels
            elif tag == "bullet":
                self.bullets[element.get("id", "")] = element.get("char") or ""

    def set_outline(self, section: ET.Element) -> None:
        """The outline numbering of a section (hp:secPr outlineShapeIDRef)."""
        for element in section.iter():
            if _local(element.tag) == "secPr":
                ref = element.get("outlineShapeIDRef")
                if ref and ref != "0":
                    self.outline_id = ref
                return

    def head(self, p: ET.Element) -> tuple[str, str, int] | None:
        """(type, numbering key, level) of a paragraph with a heading, else None."""
        found = self.heads.get(p.get("paraPrIDRef") or "")
        if found is None:
            return None
        kind, ref, level = found
        if kind == "OUTLINE":
            return kind, self.outline_id, level
        return kind, ref, level

    def prefix(self, p: ET.Element) -> tuple[str, int | None]:
        """The number or bullet Hancom draws before this paragraph (advancing the counters), and the
        outline level when it is an outline paragraph."""
        head = self.head(p)
        if head is None:
            return "", None
        kind, ref, level = head
        if kind == "BULLET":
            return self.bullets.get(ref, ""), None
        if kind not in ("OUTLINE", "NUMBER"):
            return "", None
        formats = self.formats.get(ref)
        if not formats:
            return "", level if kind == "OUTLINE" else None
        depth = level + 1  # paraHead levels are 1-based
        counters = self.counters.setdefault(f"{kind}:{ref}", [0] * 11)
        if depth >= len(counters):
            return "", level if kind == "OUTLINE" else None
        start = formats.get(depth, (1, "DIGIT", ""))[0]
        counters[depth] = counters[depth] + 1 if counters[depth] else start
        for deeper in range(depth + 1, len(counters)):
            counters[deeper] = 0
        for shallower in range(1, depth):
            if not counters[shallower]:
                counters[shallower] = formats.get(shallower, (1, "DIGIT", ""))[0]
        text = formats.get(depth, (1, "DIGIT", ""))[2]

        def number(match: re.Match) -> str:
            n = int(match.group(1))
            if not 1 <= n < len(counters):
                return ""
            return format_number(counters[n], formats.get(n, (1, "DIGIT", ""))[1])

        text = text.replace("^N", f"^{depth}").replace("^n", f"^{depth}")  # ^N: this level's number
        return re.sub(r"\^(10|[1-9])", number, text), level if kind == "OUTLINE" else None

# ------------------------------------------------------------------------------ OWPML walker


class _Walker:
    """Turns OWPML section XML into blocks, in reading order.

    ``numbering`` generates the outline and paragraph numbers Hancom draws (shared by every walker
    of a document, cells included, so counters run on as in Hancom); ``tracker`` follows the heading
    path of the body (None in cells, notes and master pages, whose text does not open headings).
    """

    def __init__(
        self, section: str | None, numbering: Numbering | None = None, tracker: HeadingTracker | None = None,
        report: ParseReport | None = None, pictures: list[Picture] | None = None,
    ) -> None:
        self.section = section
        self.numbering = numbering if numbering is not None else Numbering()
        self.tracker = tracker
        self.report = report if report is not None else ParseReport()  # what was skipped, and why
        #: a section's own pictures, for OCR to decide on (pictures.py); None: report them as skipped
        self.pictures = pictures
        self.blocks: list[Block] = []
        self._prefix = ""  # the number of the paragraph being walked, until its first text is emitted
        self._outline: int | None = None
        self._fresh = False  # the paragraph's first text not yet emitted: it may open a heading
        self._tracking = True  # False inside drawing objects (text boxes do not open headings)

    @property
    def heading(self) -> str | None:
        return self.tracker.path if self.tracker is not None else None

    def skipped(self, kind: str, reason: str) -> None:
        """A part not read into text: told to the document's parse report, with where it was."""
        self.report.add(kind, location_label(None, self.section, self.heading), reason)

    # -- emitting
    def emit(self, text: str, kind: str = "paragraph") -> None:
        number = self._prefix if kind == "paragraph" else ""
        if number:
            text = f"{number} {clean_text(text)}" if clean_text(text) else ""
        text = clean_text(text)
        if not text:
            return
        heading = None
        if kind == "paragraph":
            self._prefix = ""
            heading = self.heading
            if self.tracker is not None and self._fresh and self._tracking:
                if self._outline is not None:
                    heading, is_heading = self.tracker.outline(self._outline, text, number=clean_text(number))
                    kind = "heading" if is_heading else kind
                else:
                    heading, is_heading = self.tracker.paragraph(text)
                    kind = "heading" if is_heading else kind
                    if self.tracker.demoted is not None:
                        self._demote(*self.tracker.demoted)
            self._fresh = False
        elif kind in ("note", "caption"):
            heading = self.heading
        self.blocks.append(Block(text=text, kind=kind, section=self.section, heading=heading))  # type: ignore[arg-type]

    def _demote(self, old: str | None, new: str | None) -> None:
        """The paragraph before, taken for a heading, was the first item of a list: file it (and any
        note after it) under its marker."""
        for index in range(len(self.blocks) - 1, -1, -1):
            block = self.blocks[index]
            if block.heading != old:
                break
            kind = "paragraph" if block.kind == "heading" else block.kind
            self.blocks[index] = replace(block, kind=kind, heading=new)
            if block.kind == "heading":
                break

    def sublist_text(self, element: ET.Element | None) -> str:
        """All text under a sub-list (cell, note, text box) flattened, one line per paragraph."""
        if element is None:
            return ""
        inner = _Walker(self.section, self.numbering, report=self.report)
        inner.paragraphs(element)
        return "\n".join(block.text for block in inner.blocks)

    def cells(self, tbl: ET.Element) -> tuple[list[list[str]], list[Cell], list[str], int]:
        """A table's rows as stored (cell texts), its cells at their addresses with their spans and
        header marks, the notes its cells hold, and how many tables its cells hold (flattened into
        their cell's text)."""
        rows: list[list[str]] = []
        cells: list[Cell] = []
        notes: list[str] = []
        nested = 0
        for r, tr in enumerate(_children(tbl, "tr")):
            row = []
            for c, tc in enumerate(_children(tr, "tc")):
                inner = _Walker(self.section, self.numbering, report=self.report)  # a cell's parts count too
                sub = _child(tc, "subList")
                if sub is not None:
                    inner.paragraphs(sub)
                text = clean_text("\n".join(b.text for b in inner.blocks if b.kind != "note"))
                nested += sum(1 for b in inner.blocks if b.kind == "table")
                notes.extend(b.text for b in inner.blocks if b.kind == "note")
                row.append(text)
                address, span = _child(tc, "cellAddr"), _child(tc, "cellSpan")
                cells.append(Cell(
                    text,
                    _int(address, "rowAddr", r), _int(address, "colAddr", c),
                    _int(span, "rowSpan", 1), _int(span, "colSpan", 1),
                    header=(tc.get("header") or "0") in ("1", "true"),
                ))
            rows.append(row)
        return rows, cells, notes, nested

    # -- structure
    def paragraphs(self, container: ET.Element) -> None:
        """Walk the paragraphs directly under a section or sub-list."""
        for child in container:
            tag = _local(child.tag)
            if tag == "p":
                self.paragraph(child)
            elif tag == "subList":
                self.paragraphs(child)

    def paragraph(self, p: ET.Element) -> None:
        saved = (self._prefix, self._outline, self._fresh)  # a text box's paragraphs nest in ours
        prefix, outline = self.numbering.prefix(p)
        self._prefix, self._outline, self._fresh = prefix, outline, True
        buf: list[str] = []
        after: list[tuple[str, str]] = []
        for run in p:
            rtag = _local(run.tag)
            if rtag != "run":
                if rtag in {"t"}:
                    self.text_element(run, buf)
                continue
            for child in run:
                self.inline(child, buf, after)
        self.emit("".join(buf))
        self._prefix, self._outline, self._fresh = saved
        for text, kind in after:
            self.emit(text, kind)

    def flush(self, buf: list[str]) -> None:
        if buf:
            self.emit("".join(buf))
            buf.clear()

    def inline(self, child: ET.Element, buf: list[str], after: list[tuple[str, str]]) -> None:
        tag = _local(child.tag)
        if tag == "t":
            self.text_element(child, buf)
        elif tag == "tab":
            buf.append("\t")
        elif tag == "lineBreak":
            buf.append("\n")
        elif tag in {"nbSpace", "fwSpace"}:
            buf.append(" ")
        elif tag == "ctrl":
            for item in child:
                self.control(item, buf, after)
        elif tag in {"footNote", "endNote", "header", "footer", "autoNum"}:
            self.control(child, buf, after)
        elif tag == "tbl":
            self.flush(buf)
            self.table(child)
        elif tag in _SHAPES:
            self.flush(buf)
            self.shape(child)
        elif tag == "dutmal":
            main = _child(child, "mainText")
            if main is not None and main.text:
                buf.append(main.text)
        elif tag == "equation":
            self.skipped("equation", _EQUATION_WHY)
        elif tag in _FORM:
            self.skipped("form_control", f"a form control ({tag}) is not read")
        elif tag in _SKIP:
            return
        else:
            # Unknown element: keep any paragraphs it holds rather than lose text.
            if any(_local(e.tag) == "p" for e in child.iter()):
                self.flush(buf)
                for sub in child.iter():
                    if _local(sub.tag) == "subList":
                        self.paragraphs(sub)
                        break
            else:
                self.skipped("unsupported_control", f"an element this parser does not know ({tag}) was skipped")

    def text_element(self, t: ET.Element, buf: list[str]) -> None:
        if t.text:
            buf.append(t.text)
        for child in t:
            tag = _local(child.tag)
            if tag == "lineBreak":
                buf.append("\n")
            elif tag == "tab":
                buf.append("\t")
            elif tag in {"nbSpace", "fwSpace"}:
                buf.append(" ")
            elif tag in {
                "insertBegin",
                "insertEnd",
                "deleteBegin",
                "deleteEnd",
                "markpenBegin",
                "markpenEnd",
                "hyphen",
                "titleMark",
            }:
                pass
            else:
                self.text_element(child, buf)
            if child.tail:
                buf.append(child.tail)

    def control(self, item: ET.Element, buf: list[str], after: list[tuple[str, str]]) -> None:
        tag = _local(item.tag)
        if tag in {"footNote", "endNote"} or tag == "hiddenComment":
            text = self.sublist_text(_child(item, "subList"))
            if text:
                after.append((text, "note"))
        elif tag in {"header", "footer"}:
            text = self.sublist_text(_child(item, "subList"))
            if text:
                after.append((text, tag))
        elif tag == "autoNum":
            num = item.get("num")
            if num and item.get("numType", "").upper() != "PAGE":
                fmt = _child(item, "autoNumFormat")
                prefix = fmt.get("prefixChar", "") if fmt is not None else ""
                suffix = fmt.get("suffixChar", "") if fmt is not None else ""
                buf.append(f"{prefix}{num}{suffix}")

    def shape(self, element: ET.Element) -> None:
        tag = _local(element.tag)
        caption = _child(element, "caption")
        if tag == "textart":
            text = element.get("text")
            if text:
                self.emit(text)
        draw = _child(element, "drawText")
        tracking, self._tracking = self._tracking, False
        try:
            if draw is not None:
                for sub in _children(draw, "subList"):
                    self.paragraphs(sub)
            for child in element:
                if _local(child.tag) in _SHAPES:
                    self.shape(child)
        finally:
            self._tracking = tracking
        caption_text = self.sublist_text(_child(caption, "subList")) if caption is not None else ""
        if caption_text:
            self.emit(caption_text, "caption")
        if tag in _OPAQUE:
            self.skipped(*_OPAQUE[tag])
        elif tag == "pic" and not caption_text and draw is None:
            if self.pictures is None:
                self.skipped("image_no_text", _PICTURE_WHY)
            else:
                image = next((e for e in element.iter() if _local(e.tag) == "img"), None)
                self.pictures.append(Picture(
                    image.get("binaryItemIDRef") if image is not None else None,
                    location_label(None, self.section, self.heading), self.section, self.heading))

    def table(self, tbl: ET.Element) -> None:
        caption = _child(tbl, "caption")
        caption_text = self.sublist_text(_child(caption, "subList")) if caption is not None else ""
        below = caption is not None and (caption.get("side") or "").upper() == "BOTTOM"
        heading = self.heading
        if self.tracker is not None:
            if caption_text:
                heading = self.tracker.with_part(caption_part(caption_text))
            elif (
                self.blocks
                and self.blocks[-1].kind == "paragraph"
                and self.blocks[-1].heading == heading
                and CAPTION_LIKE.match(self.blocks[-1].text)
            ):
                # The paragraph just before titles the table ("< 업종별 동향(억 달러, %) >").
                previous = self.blocks.pop()
                heading = self.tracker.with_part(caption_part(previous.text))
                self.blocks.append(Block(text=previous.text, kind="caption", section=self.section, heading=heading))
        if caption_text and not below:
            self.blocks.append(Block(text=clean_text(caption_text), kind="caption", section=self.section, heading=heading))
        rows, cells, notes, nested = self.cells(tbl)
        block = table_block_of(cells, section=self.section, heading=heading, report=self.report, nested=nested)
        if self.tracker is not None and self._tracking:
            self.tracker.interrupt()
        if block.text and self.tracker is not None and self._tracking and not caption_text and len(rows) == 1:
            boxed = self.tracker.box(rows[0])
            if boxed is not None:  # a title box ("Ⅰ | 사업개요"): a heading, not a table
                text = " ".join(cell for cell in rows[0] if cell)
                block = Block(text=text, kind="heading", section=self.section, heading=boxed)
        if block.text:
            self.blocks.append(block)
        for note in notes:  # notes in cells follow the table, so that headings stay short
            self.blocks.append(Block(text=note, kind="note", section=self.section, heading=heading))
        if caption_text and below:
            self.blocks.append(Block(text=clean_text(caption_text), kind="caption", section=self.section, heading=heading))


def blocks_from_sections(
    sections: list[bytes], master_pages: list[bytes] | None = None, header: bytes | None = None,
    report: ParseReport | None = None, units: list[PictureUnit] | None = None,
) -> list[Block]:
    """Blocks of a document's sections (and master pages); ``header`` (Contents/header.xml) gives
    the paragraph shapes and numberings that outline and paragraph numbers are generated from.
    ``report`` collects the parts skipped (pictures, OLE objects, equations, form controls).
    With ``units``, each section's own pictures are collected there for OCR (pictures.py) instead
    of being reported as skipped."""
    report = report if report is not None else ParseReport()
    blocks: list[Block] = []
    numbering = Numbering(header)
    tracker = HeadingTracker()  # headings run on across sections
    for index, data in enumerate(sections):
        root = ET.fromstring(data)
        numbering.set_outline(root)
        walker = _Walker(f"section {index + 1}", numbering, tracker, report,
                         pictures=[] if units is not None else None)
        walker.paragraphs(root)
        blocks.extend(walker.blocks)
        if units is not None and walker.pictures:
            units.append(PictureUnit(own_text_chars(walker.blocks), len(blocks), walker.pictures))
    # 바탕쪽 (master pages): text printed on every page, kept once as header blocks.
    seen: set[str] = set()
    for data in master_pages or []:
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            continue
        walker = _Walker("master page", report=report)
        walker.paragraphs(root)
        for block in walker.blocks:
            if block.text not in seen:
                seen.add(block.text)
                blocks.append(Block(text=block.text, kind="header", section="master page", rows=block.rows))
    return blocks


def _master_parts(files: dict[str, bytes]) -> list[bytes]:
    names = sorted(n for n in files if re.match(r"^Contents/masterpage\d+\.xml$", n, re.IGNORECASE))
    return [files[n] for n in names]


def _header_part(files: dict[str, bytes]) -> bytes | None:
    for name, data in files.items():
        if name.lower() == "contents/header.xml":
            return data
    return None


def _section_parts(files: dict[str, bytes]) -> list[bytes]:
    numbered = []
    for name in files:
        match = _SECTION_RE.match(name)
        if match:
            numbered.append((int(match.group(1)), name))
    numbered.sort()
    return [files[name] for _, name in numbered]


# ----------------------------------------------------------------------------------- HWP 5


def read_hwp5_flags(path: Path) -> int:
    """The FileHeader property flags of an HWP 5 file (bit 1 password, bit 2 배포용)."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            header = ole.openstream("FileHeader").read(256)
    except Exception as exc:
        raise _corrupt(path.name, f"its OLE2 container or FileHeader stream is damaged ({exc})") from exc
    if len(header) < 40 or not header.startswith(b"HWP Document File"):
        raise _corrupt(path.name, "its FileHeader stream is too short or lacks the HWP signature")
    return struct.unpack_from("<I", header, 36)[0]


def _check_unhwp_text(text: str, name: str) -> str:
    if any(marker in text for marker in DISTRIBUTION_PLACEHOLDERS):
        raise distribution_error(name)
    return text


def _unhwp_blocks(path: Path) -> list[Block]:
    import unhwp

    text = _check_unhwp_text(unhwp.extract_text(str(path)), path.name)
    blocks = []
    tracker = HeadingTracker()
    for para in re.split(r"\n\s*\n", text):
        para = clean_text(para)
        if para and not set(para) <= set("-=_ "):
            heading, is_heading = tracker.paragraph(para)
            blocks.append(Block(text=para, kind="heading" if is_heading else "paragraph", heading=heading))
    return blocks


def parse_hwp5(path: Path, *, max_unzipped_bytes: int = 500 * 1024 * 1024, ocr: OcrOptions | None = None) -> ParsedDocument:
    flags = read_hwp5_flags(path)
    if flags & FLAG_PASSWORD:
        raise password_error(path.name)
    if flags & FLAG_DISTRIBUTION:
        raise distribution_error(path.name)
    data = path.read_bytes()
    parser = "python-hwpx"
    warnings_seen: list[str] = []
    report = ParseReport()
    ocr_summary: dict = {}
    try:
        from hwpx.hwp5.package import convert

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            converted = convert(data)
        warnings_seen = [str(w.message) for w in caught]
        sections = _section_parts(converted.files)
        if sum(len(s) for s in converted.files.values()) > max_unzipped_bytes:
            raise _corrupt(path.name, "its sections and pictures expand past the size limit")
        units: list[PictureUnit] = []
        blocks = blocks_from_sections(sections, _master_parts(converted.files), _header_part(converted.files), report,
                                      units)
    except PipelineError:
        raise
    except Exception as primary:  # python-hwpx failed on this file: try unhwp  # noqa: BLE001 - library boundary
        parser, report = "unhwp", ParseReport()
        try:
            blocks = _unhwp_blocks(path)
        except PipelineError:
            raise
        except Exception as exc:
            raise _corrupt(path.name, f"python-hwpx failed ({primary}) and so did unhwp ({exc})") from exc
        warnings_seen = [f"python-hwpx failed: {primary}"]
        report.add("fallback_parser", "", _fallback_why(primary))
    else:
        blocks, ocr_summary = read_pictures(path.name, blocks, units, _picture_loader(converted.files),
                                            ocr or OcrOptions(), report)
    if not blocks:
        raise NoText(
            f"{path.name} parsed as HWP but contains no text ({_only(report)}).",
            hint=_NO_TEXT_HINT,
        )
    metadata: dict = {"warnings": warnings_seen} if warnings_seen else {}
    if parser == "python-hwpx" and ocr_summary:
        metadata["ocr"] = ocr_summary
    return ParsedDocument(
        format="hwp",
        parser=parser + ("+tesseract" if "ocr" in metadata else ""),
        blocks=blocks,
        metadata=metadata,
        report=report,
    )


_NO_TEXT_HINT = ("If its text is in pictures: OCR reads the pictures of a section with no text of its own "
                 "(ocr = \"auto\"); the report above says why these were not read.")


def _picture_loader(files: dict[str, bytes]):
    """``load(item id)``: the bytes of the picture an ``hc:img binaryItemIDRef`` names, through the
    package manifest (Contents/content.hpf), else the BinData part of that name."""
    parts: dict[str, str] = {}
    manifest = next((data for name, data in files.items() if name.lower() == "contents/content.hpf"), None)
    if manifest is not None:
        try:
            for item in ET.fromstring(manifest).iter():
                if _local(item.tag) == "item" and item.get("id") and item.get("href"):
                    parts[item.get("id")] = item.get("href")
        except ET.ParseError:
            pass
    by_stem = {name.rsplit("/", 1)[-1].rsplit(".", 1)[0]: name for name in files if name.startswith("BinData/")}

    def load(item: str) -> bytes:
        name = parts.get(item) or by_stem.get(item)
        if name is None or name not in files:
            raise KeyError(f"the file has no picture part for {item!r}")
        return files[name]
    return load


def _only(report: ParseReport) -> str:
    """What a document with no text holds instead, for its NoText message."""
    return f"only {report.summary()}" if report else "an empty document, or only images"


def _fallback_why(primary: Exception) -> str:
    return (f"python-hwpx could not read it ({type(primary).__name__}: {primary}); unhwp read its text "
            "without its tables as tables, its headings or notes, and without a list of the pictures or objects it skipped")


# ------------------------------------------------------------------------------------ HWPX


def _hwpx_encrypted(files: dict[str, bytes]) -> bool:
    manifest = files.get("META-INF/manifest.xml", b"").lower()
    if b"encryption-data" in manifest or b"encryptiondata" in manifest or b"encrypt" in manifest:
        return True
    for name, payload in files.items():
        if (
            _SECTION_RE.match(name)
            and payload
            and not payload.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<")
        ):
            return True  # a section that is not XML: encrypted bytes
    return False


def parse_hwpx(path: Path, *, max_unzipped_bytes: int = 500 * 1024 * 1024, ocr: OcrOptions | None = None) -> ParsedDocument:
    files = safe_unpack(path, max_unzipped_bytes=max_unzipped_bytes)
    if _hwpx_encrypted(files):
        raise password_error(path.name)
    sections = _section_parts(files)
    parser = "python-hwpx"
    report = ParseReport()
    ocr_summary: dict = {}
    try:
        if not sections:
            raise ValueError("no Contents/section*.xml part")
        units: list[PictureUnit] = []
        blocks = blocks_from_sections(sections, _master_parts(files), _header_part(files), report, units)
    except ET.ParseError as primary:
        parser, report = "unhwp", ParseReport()
        report.add("fallback_parser", "", _fallback_why(primary))
        try:
            blocks = _unhwp_blocks(path)
        except PipelineError:
            raise
        except Exception as exc:
            raise _corrupt(
                path.name, f"its section XML is malformed ({primary}); unhwp failed too ({exc})"
            ) from exc
    except ValueError as exc:
        raise _corrupt(path.name, str(exc)) from exc
    else:
        blocks, ocr_summary = read_pictures(path.name, blocks, units, _picture_loader(files), ocr or OcrOptions(),
                                            report)
    if not blocks:
        raise NoText(
            f"{path.name} parsed as HWPX but contains no text ({_only(report)}).",
            hint=_NO_TEXT_HINT,
        )
    if ocr_summary:
        return ParsedDocument(format="hwpx", parser=parser + "+tesseract", blocks=blocks,
                              metadata={"ocr": ocr_summary}, report=report)
    return ParsedDocument(format="hwpx", parser=parser, blocks=blocks, metadata={}, report=report)
