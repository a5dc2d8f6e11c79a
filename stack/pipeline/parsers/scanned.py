"""Pages read by OCR, as blocks: one per paragraph tesseract found, with page, ``ocr`` and confidence.

Shared by the image parser (PNG, JPEG, TIFF, BMP) and the PDF parser (pages with no text layer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from stack.contract import ParseReport
from stack.pipeline.document import Block
from stack.pipeline.errors import NoText
from stack.pipeline.ocr import OcrLine, OcrOptions, OcrPage, read_pages, report
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.lines import Vocabulary, join_lines

if TYPE_CHECKING:
    from PIL.Image import Image

_SENTENCE_END = tuple('.!?。:;)」』”"')
_HANGUL = re.compile("[\uac00-\ud7a3]")


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def ocr_blocks(pages: list[OcrPage]) -> list[Block]:
    """Each page's paragraphs, wrapped lines joined as a text layer's are: a line was wrapped when
    the next line's first word would not have fitted after it (so a short line ends its paragraph),
    and a Korean word split by the wrap is joined again."""
    vocabulary = Vocabulary([line.text for page in pages for paragraph in page.paragraphs for line in paragraph])
    found: list[tuple[str, int, float | None]] = []
    for page in pages:
        for paragraph in page.paragraphs:
            found += [(text, page.page, confidence) for text, confidence in _joined(paragraph, vocabulary)]
    texts = _respaced([text for text, _, _ in found])
    return [Block(text=clean_text(text), page=number, ocr=True, confidence=confidence)
            for text, (_, number, confidence) in zip(texts, found) if clean_text(text)]


def _joined(lines: list[OcrLine], vocabulary: Vocabulary) -> list[tuple[str, float | None]]:
    """(paragraph text, its words' mean confidence) for one block of lines tesseract found."""
    right_edge = max(line.right for line in lines)
    flagged = []
    for i, line in enumerate(lines):
        # Tesseract splits Korean words into syllables, so the next line's first "word" says nothing
        # of the word that did not fit: a line ending within a long word's width of the edge
        # (ten characters) was wrapped.
        char_width = (line.right - line.left) / max(len(line.text), 1)
        wrapped = i + 1 < len(lines) and line.right >= right_edge - 10 * char_width
        flagged.append((line.text, wrapped and not line.text.endswith(_SENTENCE_END)))
    texts = join_lines(flagged, vocabulary)
    # Confidence per paragraph: the lines are consumed in order, a paragraph ending at each unwrapped line.
    out, start = [], 0
    for text in texts:
        count, taken = 0, []
        while start + count < len(lines):
            taken.append(lines[start + count])
            count += 1
            if not flagged[start + count - 1][1]:
                break
        start += count
        out.append((text, _mean([c for line in taken for c in line.confidences])))
    return out


def _respaced(texts: list[str]) -> list[str]:
    """Korean paragraphs with their spacing restored (tesseract reads "출 근 한" for "출근한"; the
    retriever's morphemes and the reader's quotes need the words whole); others as read."""
    korean = [i for i, text in enumerate(texts) if _HANGUL.search(text)]
    if not korean:
        return texts
    from stack.pipeline.lexical import korean_spacing

    spaced = korean_spacing([texts[i] for i in korean])
    out = list(texts)
    for i, text in zip(korean, spaced):
        out[i] = text
    return out


def page_label(page: int) -> str:
    return f"p. {page}"


def add_findings(findings: ParseReport, summary: dict, where: Callable[[int], str] = page_label) -> None:
    """Name in the file's parse report the pages OCR could not read and those it read under the
    confidence threshold (their text is indexed, but a reader should check it against the scan),
    from ``summary`` (the OCR report :func:`stack.pipeline.ocr.report` made for the metadata)."""
    threshold = summary.get("min_confidence") or 0.0
    for page in summary.get("pages") or []:
        if page.get("error"):
            findings.add("ocr_failed", where(page["page"]), page["error"])
        elif page.get("confidence") is not None and page["confidence"] < threshold:
            findings.add("ocr_low_confidence", where(page["page"]),
                         f"mean word confidence {page['confidence']:.0f}, under the threshold of "
                         f"{threshold:.0f} (ocr_min_confidence): words may be misread")


def read_scanned(
    name: str, pages: Iterable[tuple[int, Callable[[], Image]]], total: int, options: OcrOptions,
    *, empty_ok: bool = False, findings: ParseReport | None = None,
    where: Callable[[int], str] = page_label,
) -> tuple[list[Block], dict]:
    """OCR ``pages`` of the file ``name``: their blocks and the OCR report for its metadata; pages
    failed or under the confidence threshold go into ``findings`` (the file's parse report), named
    by ``where``.

    NoText when every page failed or held no words (a blank scan, a photo without text), unless
    ``empty_ok`` (a PDF whose other pages have text)."""
    read = list(read_pages(pages, total, options))
    blocks = ocr_blocks(read)
    summary = report(read, options)
    if findings is not None:
        add_findings(findings, summary, where)
    if not blocks and read and not empty_ok:
        failed = [page for page in read if page.error]
        why = (f"tesseract could not read its pages ({failed[0].error})" if len(failed) == len(read)
               else "OCR found no text on its pages")
        raise NoText(
            f"{name} has {len(read)} page image(s) but {why}.",
            hint="Check the scan shows text (not a blank or a photo); a clearer scan at 300 dpi reads best.",
        )
    return blocks, summary
