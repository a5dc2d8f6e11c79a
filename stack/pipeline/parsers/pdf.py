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

from stack.contract import ParseReport
from stack.pipeline.document import Block, ParsedDocument, heading_path
from stack.pipeline.errors import CorruptDocument, NoText, PasswordProtected
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.lines import Vocabulary, join_lines
from stack.pipeline.parsers.lines import is_hangul as _is_hangul
from stack.pipeline.parsers.pdf_tables import PlacedTable, join_continued, page_parts
from stack.pipeline.parsers.scanned import add_findings as add_ocr_findings

_SENTENCE_END = tuple('.!?。:;)」』”"')
# pdfium error codes (FPDF_ERR_*)
_ERR_FORMAT = 3
_ERR_PASSWORD = 4
_ERR_SECURITY = 5


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
        # A table's caption (pdf_tables) ends the heading path of the caption and of its table.
        caption = [block.heading] if block.kind in ("caption", "table") and block.heading else []
        heading = heading_path([*(part for _, part in trail), *caption])
        out.append(replace(block, kind=kind, heading=heading))
    return out


def parse_pdf(path: Path, ocr: OcrOptions | None = None) -> ParsedDocument:
    """The text layer of every page; pages without one are read by OCR (``ocr``; see scanned.py)."""
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
    pages_parts: list[list] = []  # each page's text runs and ruled tables, in reading order
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
                pages_parts.append(page_parts(page, textpage, page_lines[-1], number + 1))
            finally:
                textpage.close()
                page.close()
        ocr = ocr or OcrOptions()
        scanned = [number for number, lines in enumerate(page_lines)
                   if ocr.mode == "always" or not any(line.strip() for line, _ in lines)]
        ocr_by_page, ocr_report = _ocr_pages(path, pdf, scanned if ocr.mode != "off" else [], ocr)
    finally:
        pdf.close()
    vocabulary = Vocabulary([line for lines in page_lines for line, _ in lines])
    blocks: list[Block] = []
    for number, parts in enumerate(join_continued(pages_parts, skip=set(ocr_by_page))):
        if number + 1 in ocr_by_page:
            blocks += ocr_by_page[number + 1]
            continue
        for part in parts:
            if isinstance(part, PlacedTable):
                blocks.append(part.block)
                continue
            if isinstance(part, Block):
                blocks.append(part)
                continue
            for paragraph in join_lines(part, vocabulary):
                text = clean_text(paragraph)
                if text:
                    blocks.append(Block(text=text, page=number + 1))
    blocks = heading_paths(blocks)
    report = ParseReport()
    add_ocr_findings(report, ocr_report)  # pages OCR failed on or read under the threshold
    failed = set(ocr_report.get("failed_pages") or ())
    for number in sorted(set(range(1, pages + 1)) - {block.page for block in blocks} - failed):
        report.add("page_no_text", f"p. {number}",
                   "the page has no text layer and OCR found no text on it" if ocr_report else
                   "the page has no text layer (a scan or an image of text), so nothing on it is indexed")
    metadata = {"pages": pages} | ({"ocr": ocr_report} if ocr_report else {})
    if not blocks:
        if pages == 0:
            raise CorruptDocument(
                f"{path.name} is a PDF with no pages.",
                hint="Get a fresh copy of the file; it may have been saved incompletely.",
            )
        if ocr.mode == "off":
            raise NoText(
                f"{path.name} has {pages} page(s) but no text layer: it is probably a scan or images of "
                "text, and OCR is off (ocr = \"off\").",
                hint="Turn OCR on with: ragctl config set ocr auto (or upload the original document).",
            )
        raise NoText(
            f"{path.name} has {pages} page(s) with no text layer, and OCR found no text on them "
            "(blank pages, drawings or photos).",
            hint="Check the scan shows text; a clearer scan at 300 dpi reads best.",
        )
    parser = "pypdfium2+tesseract" if ocr_report else "pypdfium2"
    return ParsedDocument(format="pdf", parser=parser, blocks=blocks, metadata=metadata, report=report)


def _ocr_pages(path: Path, pdf, numbers: list[int], options: OcrOptions) -> tuple[dict[int, list[Block]], dict]:
    """OCR the pages ``numbers`` (0-based) of the open ``pdf``: their blocks by 1-based page, and the report."""
    if not numbers:
        return {}, {}
    from stack.pipeline.ocr import DPI, require
    from stack.pipeline.parsers.scanned import read_scanned

    require(options.languages, path.name, f"has {len(numbers)} page(s) with no text layer (scanned)")

    def render(number: int):
        def page_image():
            page = pdf[number]
            try:
                return page.render(scale=DPI / 72, grayscale=True).to_pil()
            finally:
                page.close()
        return page_image

    blocks, report = read_scanned(path.name, ((n + 1, render(n)) for n in numbers), len(numbers), options,
                                  empty_ok=True)
    by_page: dict[int, list[Block]] = {}  # a page OCR found nothing on keeps its text layer, if any
    for block in blocks:
        by_page.setdefault(block.page, []).append(block)
    return by_page, report
