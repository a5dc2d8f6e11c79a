"""One document model for every format: ordered blocks, each with where it came from."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from stack.contract import location_label

BlockKind = Literal["paragraph", "heading", "table", "header", "footer", "note", "caption", "list"]
Format = Literal["hwp", "hwpx", "pdf", "docx", "html", "markdown", "text"]


@dataclass(frozen=True)
class Block:
    """A run of text in reading order.

    ``page`` is 1-based where the format has pages (PDF); ``section`` names the part of the
    document it sits in where the format has no pages (HWP section, DOCX header, Markdown heading).
    ``heading`` is the heading path a reader can follow to the block, parts joined by " > "
    ("제3조(연차 휴가) > ②", "1. 개요 > 가. 목적", "Expense Policy > Daily limits"); a table's
    caption is the last part of its table's heading.
    Tables keep their ``rows``; their ``text`` is the rows joined by " | " and newlines.
    """

    text: str
    kind: BlockKind = "paragraph"
    page: int | None = None
    section: str | None = None
    rows: tuple[tuple[str, ...], ...] | None = None
    heading: str | None = None

    def location(self) -> str:
        """Human label for citations: "p. 3", "p. 3 · 2. Method", "제3조(연차 휴가) > ②", "section 2", or ""."""
        return location_label(self.page, self.section, self.heading)

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.rows is not None:
            data["rows"] = [list(row) for row in self.rows]
        return data


@dataclass
class ParsedDocument:
    format: Format
    parser: str
    blocks: list[Block]
    metadata: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks if block.text)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "parser": self.parser,
            "metadata": self.metadata,
            "blocks": [block.to_dict() for block in self.blocks],
        }


def table_block(
    rows: list[list[str]], *, page: int | None = None, section: str | None = None, heading: str | None = None
) -> Block:
    """A table block: empty rows dropped, text laid out one row per line."""
    cleaned = tuple(tuple(cell.strip() for cell in row) for row in rows if any(cell.strip() for cell in row))
    text = "\n".join(" | ".join(cell for cell in row if cell) for row in cleaned)
    return Block(text=text, kind="table", page=page, section=section, rows=cleaned, heading=heading)


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


