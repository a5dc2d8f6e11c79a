"""One document model for every format: ordered blocks, each with where it came from."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from stack.contract import ParseReport, location_label
from stack.pipeline.tables import Cell, Table, build_table, cell_lines, markdown

BlockKind = Literal["paragraph", "heading", "table", "header", "footer", "note", "caption", "list"]
Format = Literal["hwp", "hwpx", "pdf", "docx", "html", "markdown", "text", "image"]


@dataclass(frozen=True)
class Block:
    """A run of text in reading order.

    ``page`` is 1-based where the format has pages (PDF); ``section`` names the part of the
    document it sits in where the format has no pages (HWP section, DOCX header, Markdown heading).
    ``heading`` is the heading path a reader can follow to the block, parts joined by " > "
    ("제3조(연차 휴가) > ②", "1. 개요 > 가. 목적", "Expense Policy > Daily limits"); a table's
    caption is the last part of its table's heading.
    ``ocr`` marks text read from a page image, with ``confidence`` its words' mean confidence (0-100).
    Tables keep their ``rows`` (the full grid, merged cells spread to each position they cover),
    how many of them are header rows and how many leading columns are row headings
    (:mod:`stack.pipeline.tables`); their ``text`` is each cell once, rows joined by " | " and newlines.
    """

    text: str
    kind: BlockKind = "paragraph"
    page: int | None = None
    section: str | None = None
    rows: tuple[tuple[str, ...], ...] | None = None
    heading: str | None = None
    ocr: bool = False
    confidence: float | None = None
    header_rows: int = 0
    row_heading_columns: int = 0

    def location(self) -> str:
        """Human label for citations: "p. 3", "p. 3 (OCR)", "p. 3 · 2. Method", "제3조(연차 휴가) > ②", "section 2"."""
        return location_label(self.page, self.section, self.heading, ocr=self.ocr)

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.rows is not None:
            data["rows"] = [list(row) for row in self.rows]
        table = self.table()
        if table is not None:
            data["cells"] = [line.to_dict() for line in cell_lines(table)]
        else:
            data.pop("header_rows")
            data.pop("row_heading_columns")
        return data

    def table(self) -> Table | None:
        """The table this block holds (None for other blocks)."""
        if self.kind != "table" or self.rows is None:
            return None
        return Table(self.rows, self.header_rows, self.row_heading_columns)


@dataclass
class ParsedDocument:
    format: Format
    parser: str
    blocks: list[Block]
    metadata: dict = field(default_factory=dict)
    #: The parts the parser skipped, and why (images with no text, OLE objects, pages without text…).
    report: ParseReport = field(default_factory=ParseReport)

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks if block.text)

    def markdown(self) -> str:
        """The text for a reader: blocks apart by blank lines, tables as Markdown tables."""
        parts = []
        for block in self.blocks:
            table = block.table()
            # A one-row or one-column table is a box around text on the page, not a table to read.
            grid = table is not None and len(table.rows) > 1 and len(table.rows[0]) > 1
            parts.append(markdown(table) if grid else block.text)  # type: ignore[arg-type]
        return "\n\n".join(part for part in parts if part)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "parser": self.parser,
            "metadata": self.metadata,
            "report": self.report.to_dict(),
            "blocks": [block.to_dict() for block in self.blocks],
        }


def table_block(
    rows: list[list[str]], *, page: int | None = None, section: str | None = None, heading: str | None = None,
    header_rows: int = 0,
) -> Block:
    """A table block from rows of unmerged cells (``header_rows``: how many the format marks as headers)."""
    cells = [Cell(text, r, c, header=r < header_rows) for r, row in enumerate(rows) for c, text in enumerate(row)]
    return table_block_of(cells, page=page, section=section, heading=heading)


#: Why a table is not kept whole (the parse report's kind "table_truncated"), one phrase per way.
NESTED_TABLE_WHY = ("a table inside a table cell is read as that cell's text: its own rows, cells and "
                    "headings are not kept")
OVERLAPPING_CELLS_WHY = ("cells overlap other cells (a damaged or hand-edited table): their text is kept, "
                         "but not under their row and column headings")


def table_block_of(
    cells: list[Cell], *, page: int | None = None, section: str | None = None, heading: str | None = None,
    report: ParseReport | None = None, nested: int = 0,
) -> Block:
    """A table block from its cells (with spans): empty rows dropped, headings found
    (:func:`stack.pipeline.tables.build_table`), text laid out one row per line, each cell once.

    ``report`` is told what of the table could not be kept as cells: ``nested`` tables its cells held
    (flattened into their cell's text by the parser), and cells that overlap others."""
    table = build_table(cells)
    text = "\n".join(" | ".join(row) for row in table.own_rows if row)
    block = Block(text=text, kind="table", page=page, section=section, rows=table.rows, heading=heading,
                  header_rows=table.header_rows, row_heading_columns=table.row_heading_columns)
    if report is not None:
        if nested:
            report.add("table_truncated", block.location(), NESTED_TABLE_WHY, nested)
        if table.overlapped:
            report.add("table_truncated", block.location(), OVERLAPPING_CELLS_WHY, table.overlapped)
    return block


# ------------------------------------------------------------------------------ heading paths

HEADING_SEPARATOR = " > "

#: A path part that is only a list/statute marker ("②", "1.", "가.", "(1)", "가)"): a sub-item of the
#: heading before it, not a heading of its own.
_BARE_MARKER = re.compile(
    r"^(?:[\u2460-\u2473\u3260-\u327b]|\(?\d{1,3}[.)]|\(?[가-힣][.)]|\(\d{1,3}\)|\([가-힣]\)|[a-zA-Z][.)])$"
)


def heading_path(parts) -> str | None:
    """Join heading parts into one path ("a > b"), dropping empty parts; None when there are none."""
    cleaned = [" ".join(str(part).replace(HEADING_SEPARATOR, " - ").split()) for part in parts]
    cleaned = [part for part in cleaned if part]
    return HEADING_SEPARATOR.join(cleaned) if cleaned else None


def heading_parts(heading: str | None) -> list[str]:
    return heading.split(HEADING_SEPARATOR) if heading else []


def is_bare_marker(part: str) -> bool:
    return bool(_BARE_MARKER.match(part.strip()))


def heading_anchor(heading: str | None) -> str | None:
    """The path up to its last real heading: "제3조(연차 휴가) > ② > 1." → "제3조(연차 휴가)".

    Chunks break where the anchor changes; sub-items (항, 호, 목, list markers) under one heading
    may share a chunk, which then cites their common path.
    """
    parts = heading_parts(heading)
    while parts and is_bare_marker(parts[-1]):
        parts.pop()
    return HEADING_SEPARATOR.join(parts) if parts else None


def common_heading(headings) -> str | None:
    """The longest path every one of ``headings`` starts with (None when they share nothing)."""
    paths = [heading_parts(h) for h in headings]
    if not paths:
        return None
    common = paths[0]
    for parts in paths[1:]:
        n = 0
        while n < len(common) and n < len(parts) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return HEADING_SEPARATOR.join(common) if common else None


