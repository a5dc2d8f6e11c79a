"""Plain text, Markdown (headings name the section of what follows) and HTML (stdlib parser).

Markdown (# / ## / setext) and HTML (h1–h6) headings also give every block its heading path
("배포 노트 > 절차"); ``section`` stays the nearest heading, as before.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from stack.contract import ParseReport
from stack.pipeline.document import Block, ParsedDocument, heading_path, table_block, table_block_of
from stack.pipeline.errors import CorruptDocument
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.headings import cap
from stack.pipeline.sniff import Sniffed
from stack.pipeline.tables import Cell

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _read(path: Path, encoding: str | None) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise CorruptDocument(
            f"{path.name} is not valid {encoding or 'UTF-8'} text past its beginning ({exc}).",
            hint="Save it again as UTF-8 text and upload that.",
        ) from exc


def _paragraphs(text: str) -> list[str]:
    return [p for p in (clean_text(chunk) for chunk in re.split(r"\n\s*\n", text)) if p]


def parse_text(path: Path, sniffed: Sniffed) -> ParsedDocument:
    text = _read(path, sniffed.encoding)
    if sniffed.format == "html":
        report = ParseReport()
        return ParsedDocument(format="html", parser="html.parser", blocks=html_blocks(text, report), report=report)
    if sniffed.format == "markdown":
        return ParsedDocument(format="markdown", parser="markdown", blocks=markdown_blocks(text))
    blocks = [Block(text=p) for p in _paragraphs(text)]
    return ParsedDocument(format="text", parser="text", blocks=blocks)


# ------------------------------------------------------------------------------- Markdown


HEADING_PART = 60


def _span(attrs, name: str) -> int:
    value = dict(attrs).get(name) or "1"
    return max(1, min(int(value), 1000)) if value.strip().isdigit() else 1


def _placed(rows: list[list[tuple[str, int, int, bool]]]) -> list[Cell]:
    """HTML cells (text, rowspan, colspan, th) at their grid positions: a cell goes to the first
    column that a rowspan from above does not already fill."""
    taken: set[tuple[int, int]] = set()
    cells = []
    for r, row in enumerate(rows):
        col = 0
        for text, rowspan, colspan, header in row:
            while (r, col) in taken:
                col += 1
            cells.append(Cell(text, r, col, rowspan, colspan, header))
            taken.update((r + dr, col + dc) for dr in range(rowspan) for dc in range(colspan))
            col += colspan
    return cells


class _Trail:
    """Open headings by level: a heading closes those at its level and below."""

    def __init__(self) -> None:
        self.open: list[tuple[int, str]] = []

    def push(self, level: int, text: str) -> None:
        while self.open and self.open[-1][0] >= level:
            self.open.pop()
        self.open.append((level, cap(text, HEADING_PART)))

    @property
    def path(self) -> str | None:
        return heading_path(part for _, part in self.open)


def _split_row(line: str) -> list[str]:
    line = line.strip()
    line = line.removeprefix("|")
    line = line.removesuffix("|")
    return [cell.strip() for cell in line.split("|")]


def markdown_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section: str | None = None
    trail = _Trail()
    buf: list[str] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    def flush() -> None:
        if buf:
            para = clean_text("\n".join(buf))
            if para:
                kind = "list" if re.match(r"^\s*([-*+]|\d+[.)])\s", buf[0]) else "paragraph"
                blocks.append(Block(text=para, kind=kind, section=section, heading=trail.path))  # type: ignore[arg-type]
            buf.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush()
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            code = []
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(fence):
                code.append(lines[i])
                i += 1
            body = clean_text("\n".join(code))
            if body:
                blocks.append(Block(text=body, section=section, heading=trail.path))
            i += 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            title = clean_text(atx.group(2))
            section = title or section
            if title:
                trail.push(len(atx.group(1)), title)
                blocks.append(Block(text=title, kind="heading", section=section, heading=trail.path))
            i += 1
            continue
        if buf and len(buf) == 1 and _SETEXT.match(line) and line.strip():
            title = clean_text(buf[0])
            buf.clear()
            section = title or section
            if title:
                trail.push(1 if line.strip().startswith("=") else 2, title)
                blocks.append(Block(text=title, kind="heading", section=section, heading=trail.path))
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
            flush()
            rows = [_split_row(line)]  # a Markdown table's first row is its header
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_split_row(lines[i]))
                i += 1
            block = table_block([[clean_text(c) for c in row] for row in rows], section=section, heading=trail.path,
                                header_rows=1)
            if block.text:
                blocks.append(block)
            continue
        if not line.strip():
            flush()
        else:
            buf.append(line)
        i += 1
    flush()
    return blocks


# ----------------------------------------------------------------------------------- HTML

_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "nav",
    "blockquote",
    "pre",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "address",
    "form",
    "fieldset",
    "hr",
    "br",
    "body",
    "html",
    "caption",
}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP = {"script", "style", "noscript", "template", "head", "title", "svg", "iframe", "object"}


class _HtmlBlocks(HTMLParser):
    def __init__(self, report: ParseReport | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.report = report if report is not None else ParseReport()  # what was not kept, and why
        self.blocks: list[Block] = []
        self.section: str | None = None
        self.trail = _Trail()
        self.level = 1
        self.buf: list[str] = []
        self.skip = 0
        self.heading: list[str] | None = None
        self.tables: list[dict] = []  # stack: {"rows": [...], "row": [...]|None, "cell": [...]|None}
        self.title: str | None = None
        self._in_title = False

    # text routing
    def _sink(self) -> list[str]:
        if self.tables and self.tables[-1]["cell"] is not None:
            return self.tables[-1]["cell"]
        if self.heading is not None:
            return self.heading
        return self.buf

    def flush(self) -> None:
        if self.tables:
            return
        text = clean_text(" ".join("".join(self.buf).split(" ")))
        self.buf.clear()
        if text:
            self.blocks.append(Block(text=text, section=self.section, heading=self.trail.path))

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if tag in _HEADINGS:
            self.flush()
            self.heading = []
            self.level = int(tag[1])
        elif tag == "table":
            self.flush()
            self.tables.append({"rows": [], "row": None, "cell": None, "nested": 0})
        elif tag == "tr" and self.tables:
            self.tables[-1]["row"] = []
        elif tag in ("td", "th") and self.tables:
            if self.tables[-1]["row"] is None:
                self.tables[-1]["row"] = []
            self.tables[-1]["cell"] = []
            self.tables[-1]["spans"] = (_span(attrs, "rowspan"), _span(attrs, "colspan"), tag == "th")
        elif tag == "br":
            self._sink().append("\n")
        elif tag in _BLOCK_TAGS:
            if self.tables and self.tables[-1]["cell"] is not None:
                self.tables[-1]["cell"].append("\n")
            else:
                self.flush()

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in _SKIP:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _HEADINGS and self.heading is not None:
            text = clean_text("".join(self.heading))
            self.heading = None
            if text:
                self.section = text
                if self.tables and self.tables[-1]["cell"] is not None:
                    self.tables[-1]["cell"].append(text)  # a heading in a cell opens no heading path
                else:
                    self.trail.push(self.level, text)
                    self.blocks.append(Block(text=text, kind="heading", section=text, heading=self.trail.path))
        elif tag in ("td", "th") and self.tables:
            table = self.tables[-1]
            if table["cell"] is not None:
                if table["row"] is None:
                    table["row"] = []
                table["row"].append((clean_text("".join(table["cell"])), *table.get("spans", (1, 1, False))))
                table["cell"] = None
        elif tag == "tr" and self.tables:
            table = self.tables[-1]
            if table["row"] is not None:
                table["rows"].append(table["row"])
            table["row"] = None
        elif tag == "table" and self.tables:
            table = self.tables.pop()
            if table["row"]:
                table["rows"].append(table["row"])
            block = table_block_of(_placed(table["rows"]), section=self.section, heading=self.trail.path,
                                   report=self.report, nested=table["nested"])
            if self.tables and self.tables[-1]["cell"] is not None:
                self.tables[-1]["cell"].append("\n" + block.text + "\n")  # nested table: into its cell
                self.tables[-1]["nested"] += bool(block.text)
            elif block.text:
                self.blocks.append(block)
        elif tag in _BLOCK_TAGS and not self.tables:
            self.flush()

    def handle_data(self, data):
        if self._in_title and self.title is None:
            self.title = data.strip() or None
        if self.skip:
            return
        self._sink().append(re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        while self.tables:
            self.handle_endtag("table")
        self.flush()


def html_blocks(text: str, report: ParseReport | None = None) -> list[Block]:
    """The blocks of an HTML page; ``report`` is told of the tables not kept whole."""
    parser = _HtmlBlocks(report)
    parser.feed(text)
    parser.close()
    return parser.blocks
