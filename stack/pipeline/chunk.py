"""Split a parsed document into chunks sized in the embedding model's own tokens.

Sentence-aware for Korean and English: chunks end at sentence ends where they can, consecutive
sentences are packed up to the size, and the last sentences of a chunk are repeated at the start
of the next one up to the overlap.  A chunk never spans two locations (pages, sections), so each
one cites exactly one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stack.pipeline.document import Block, ParsedDocument

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

    def location(self) -> str:
        return Block(text="", page=self.page, section=self.section).location()


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def _split_long(sentence: str, tokens: int, limit: int) -> list[str]:
    """Cut one over-long sentence into pieces of about ``limit`` tokens, at spaces where possible."""
    pieces = max(2, -(-tokens // limit))
    words = sentence.split(" ")
    if len(words) >= pieces:
        per_piece = -(-len(words) // pieces)
        return [" ".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece)]
    per_piece = -(-len(sentence) // pieces)
    return [sentence[i : i + per_piece] for i in range(0, len(sentence), per_piece)]


def _units(blocks: Sequence[Block], count_tokens: TokenCounter, limit: int) -> list[tuple[str, int, Block]]:
    """(sentence, tokens, block) in reading order; each at most ``limit`` tokens."""
    sentences: list[tuple[str, Block]] = []
    for block in blocks:
        # A table row is its own unit: rows are what a reader of a table looks up.
        parts = block.text.split("\n") if block.kind == "table" else split_sentences(block.text)
        sentences.extend((part, block) for part in parts if part.strip())
    if not sentences:
        return []
    counts = count_tokens([text for text, _ in sentences])
    units: list[tuple[str, int, Block]] = []
    pending = list(zip(sentences, counts, strict=True))
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
    return units


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

    def location_of(unit: tuple[str, int, Block]) -> tuple[int | None, str | None]:
        return unit[2].page, unit[2].section

    def flush(keep_overlap: bool) -> None:
        nonlocal current
        if not current:
            return
        page, section = location_of(current[0])
        text = "\n".join(text for text, _, _ in current)
        chunks.append(Chunk(len(chunks), text, sum(t for _, t, _ in current), page, section))
        carried: list[tuple[str, int, Block]] = []
        if keep_overlap and overlap_tokens:
            budget = overlap_tokens
            for unit in reversed(current[1:]):  # never carry the whole chunk again
                if unit[1] > budget:
                    break
                carried.insert(0, unit)
                budget -= unit[1]
        current = carried

    for unit in _units(document.blocks, count_tokens, max_tokens):
        if current and location_of(current[0]) != location_of(unit):
            flush(keep_overlap=False)
        if current and sum(t for _, t, _ in current) + unit[1] > max_tokens:
            flush(keep_overlap=True)
            # The carried overlap must still leave room for the new sentence.
            while current and sum(t for _, t, _ in current) + unit[1] > max_tokens:
                current.pop(0)
        current.append(unit)
    flush(keep_overlap=False)
    return chunks
