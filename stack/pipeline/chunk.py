"""Split a parsed document into chunks sized in the embedding model's own tokens.

Sentence-aware for Korean and English: chunks end at sentence ends where they can, consecutive
sentences are packed up to the size, and the last sentences of a chunk are repeated at the start
of the next one up to the overlap.  A chunk never spans two locations (pages, sections, headings),
so each one cites exactly one place:

- a chunk breaks where the page, the section or the heading changes.  Sub-items under one heading
  (a 조's 항 ①②, the 호 1. 2. under them, list items "가." "나.") share a chunk, which then cites
  the path they have in common ("제3조(연차 휴가)"; "제3조(연차 휴가) > ②" when all of it is ②);
- a heading line is never a chunk of its own when its body follows: heading lines wait for the
  text under them and go into its chunk, which cites the body's place.  Heading lines that no
  body follows (a table of contents, an outline) are packed together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stack.pipeline.document import (
    Block,
    ParsedDocument,
    common_heading,
    heading_anchor,
    heading_parts,
    location_label,
)
from stack.pipeline.tables import header_line, row_lines

TokenCounter = Callable[[Sequence[str]], list[int]]

# A sentence ends at . ! ? (also full-width and ideographic) followed by space, or at a newline.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])\s+|\n+")


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    tokens: int
    page: int | None = None
    section: str | None = None
    heading: str | None = None
    ocr: bool = False

    def location(self) -> str:
        return location_label(self.page, self.section, self.heading, ocr=self.ocr)


# A list or outline marker ("1.", "가.", "3.1.", "IV.", "표 1."): the start of its line, not a sentence.
_MARKER_ONLY = re.compile(
    r"^(?:\S{1,6} )?(?:\d{1,3}(?:\.\d{1,3})*|[가-힣]|[IVXivx]{1,4}|[\u2160-\u216b]{1,3})\.$"
)


def split_sentences(text: str) -> list[str]:
    parts = [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]
    merged: list[str] = []
    for part in parts:
        if merged and _MARKER_ONLY.match(merged[-1]) and text.find(merged[-1] + " " + part) >= 0:
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    return merged


def _split_long(sentence: str, tokens: int, limit: int) -> list[str]:
    """Cut one over-long sentence into pieces of about ``limit`` tokens, at spaces where possible."""
    pieces = max(2, -(-tokens // limit))
    words = sentence.split(" ")
    if len(words) >= pieces:
        per_piece = -(-len(words) // pieces)
        return [" ".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece)]
    per_piece = -(-len(sentence) // pieces)
    return [sentence[i : i + per_piece] for i in range(0, len(sentence), per_piece)]


def _table_parts(block: Block) -> list[tuple[str, str]]:
    """(role, text) of a table with header rows: its header line ("header"), then each data row's
    cell lines ("row", one text, lines joined), so that a piece of the table always starts with its
    header and a row is never cut from its cells."""
    table = block.table()
    if table is None or not table.header_rows:
        return []
    parts = [("header", header_line(table))]
    parts.extend(("row", "\n".join(lines)) for lines in row_lines(table))
    return [(role, text) for role, text in parts if text.strip()]


def _units(
    blocks: Sequence[Block], count_tokens: TokenCounter, limit: int
) -> tuple[list[tuple[str, int, Block]], dict[int, tuple[str, int, Block]]]:
    """(sentence, tokens, block) in reading order, each at most ``limit`` tokens; and the header unit
    of each table with header rows (by ``id`` of its block), which each piece of that table repeats."""
    sentences: list[tuple[str, Block]] = []
    headers: dict[int, str] = {}
    for block in blocks:
        parts = _table_parts(block)
        if parts:
            headers[id(block)] = parts[0][1] if parts[0][0] == "header" else ""
            sentences.extend((text, block) for role, text in parts if role == "row")
            continue
        # A table row is its own unit: rows are what a reader of a table looks up.
        parts_text = block.text.split("\n") if block.kind == "table" else split_sentences(block.text)
        sentences.extend((part, block) for part in parts_text if part.strip())
    if not sentences:
        return [], {}
    header_texts = [text for text in headers.values() if text]
    counts = count_tokens([text for text, _ in sentences] + header_texts)
    header_counts = dict(zip(header_texts, counts[len(sentences):], strict=True))
    counts = counts[: len(sentences)]
    block_of = {id(block): block for _, block in sentences}
    header_units = {key: (text, header_counts[text], block_of[key])
                    for key, text in headers.items() if text and key in block_of}
    # A table row that does not fit beside its header is split into its cell lines, then as any text.
    pending_rows: list[tuple[tuple[str, Block], int]] = []
    for (text, block), tokens in zip(sentences, counts, strict=True):
        room = limit - (header_units[id(block)][1] if id(block) in header_units else 0)
        if id(block) in headers and tokens > room and "\n" in text:
            lines = text.split("\n")
            pending_rows.extend(zip([(line, block) for line in lines], count_tokens(lines), strict=True))
        else:
            pending_rows.append(((text, block), tokens))
    units: list[tuple[str, int, Block]] = []
    pending = pending_rows
    while pending:
        (text, block), tokens = pending.pop(0)
        if tokens <= limit:
            units.append((text, tokens, block))
            continue
        pieces = _split_long(text, tokens, limit)
        if len(pieces) <= 1 or pieces == [text]:
            units.append((text, tokens, block))  # cannot split further; the model truncates it
            continue
        pending[:0] = list(zip([(p, block) for p in pieces], count_tokens(pieces), strict=True))
    return units, header_units


def chunk_document(
    document: ParsedDocument,
    count_tokens: TokenCounter,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    if overlap_tokens >= max_tokens:
        raise ValueError(f"chunk overlap ({overlap_tokens}) must be smaller than the chunk size ({max_tokens})")
    chunks: list[Chunk] = []
    current: list[tuple[str, int, Block]] = []
    Unit = tuple[str, int, Block]

    def key_of(unit: Unit) -> tuple[int | None, str | None, str | None, bool]:
        block = unit[2]
        return block.page, block.section, heading_anchor(block.heading), block.ocr

    def is_lead(unit: Unit) -> bool:
        return unit[2].kind == "heading"

    def is_ancestor(lead: Unit, unit: Unit) -> bool:
        """The lead's heading path is the unit's path or one of its parents."""
        mine, theirs = heading_parts(lead[2].heading), heading_parts(unit[2].heading)
        return theirs[: len(mine)] == mine

    def emit(units: list[Unit]) -> None:
        body = [unit for unit in units if not is_lead(unit)] or units
        first = body[0][2]
        heading = common_heading(unit[2].heading for unit in body)
        text = "\n".join(text for text, _, _ in units)
        chunks.append(Chunk(len(chunks), text, sum(t for _, t, _ in units), first.page, first.section, heading,
                            ocr=first.ocr))

    def flush(keep_overlap: bool) -> None:
        nonlocal current
        if not current:
            return
        emit(current)
        carried: list[Unit] = []
        if keep_overlap and overlap_tokens:
            budget = overlap_tokens
            for unit in reversed(current[1:]):  # never carry the whole chunk again
                if unit[1] > budget:
                    break
                carried.insert(0, unit)
                budget -= unit[1]
        current = carried

    units, table_headers = _units(document.blocks, count_tokens, max_tokens)
    for unit in units:
        header = table_headers.get(id(unit[2]))
        if header is not None or (current and id(current[-1][2]) in table_headers):
            # A table with header rows is chunked on its own: whole when it fits, else in pieces that
            # each start with the header line; no overlap into or out of it.
            if not current or current[-1][2] is not unit[2]:
                if not (header is not None and current and all(is_lead(u) for u in current)):
                    flush(keep_overlap=False)  # heading lines just before the table stay with it
                if header is not None:
                    current = [*current, header]
            if header is not None and current and sum(t for _, t, _ in current) + unit[1] > max_tokens \
                    and len(current) > 1:
                flush(keep_overlap=False)
                current = [header]
            if header is not None:
                current.append(unit)
                continue
        if current and all(is_lead(u) for u in current):
            if not is_lead(unit):
                # Heading lines wait for their body; those that are not its parents go first.
                keep = len(current)
                while keep and is_ancestor(current[keep - 1], unit):
                    keep -= 1
                if keep:
                    head, current = current[:keep], current[keep:]
                    emit(head)
        elif current:
            body_key = key_of(next(u for u in current if not is_lead(u)))
            if body_key != key_of(unit):
                flush(keep_overlap=False)
        if current and sum(t for _, t, _ in current) + unit[1] > max_tokens:
            flush(keep_overlap=True)
            # The carried overlap must still leave room for the new sentence.
            while current and sum(t for _, t, _ in current) + unit[1] > max_tokens:
                current.pop(0)
        current.append(unit)
    flush(keep_overlap=False)
    return chunks
