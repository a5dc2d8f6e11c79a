"""One document model for every format: ordered blocks, each with where it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

BlockKind = Literal["paragraph", "heading", "table", "header", "footer", "note", "caption", "list"]
Format = Literal["hwp", "hwpx", "pdf", "docx", "html", "markdown", "text"]


@dataclass(frozen=True)
class Block:
    """A run of text in reading order.

    ``page`` is 1-based where the format has pages (PDF); ``section`` names the part of the
    document it sits in where the format has no pages (HWP section, DOCX header, Markdown heading).
    Tables keep their ``rows``; their ``text`` is the rows joined by " | " and newlines.
    """

    text: str
    kind: BlockKind = "paragraph"
    page: int | None = None
    section: str | None = None
    rows: tuple[tuple[str, ...], ...] | None = None

    def location(self) -> str:
        """Human label for citations: "p. 3", "section 2", or ""."""
        if self.page is not None:
            return f"p. {self.page}"
        return self.section or ""

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


def table_block(rows: list[list[str]], *, page: int | None = None, section: str | None = None) -> Block:
    """A table block: empty rows dropped, text laid out one row per line."""
    cleaned = tuple(tuple(cell.strip() for cell in row) for row in rows if any(cell.strip() for cell in row))
    text = "\n".join(" | ".join(cell for cell in row if cell) for row in cleaned)
    return Block(text=text, kind="table", page=page, section=section, rows=cleaned)
