"""Tables as readers use them: a grid of cells, the header rows over it, the row headings down its
left, and each value named by its two headings ("2011년 10월 · 통합재정수지(누계): 30,050").

Parsers give the cells as the format stores them (with their row/column spans); :func:`build_table`
spreads merged cells to every position they cover, finds the header rows (those the format marks,
else the first row when it is text over numbers, then the rows a merged group heading or a tall
header cell reaches into) and the row-heading columns (the leading columns whose data cells are all
text).  :func:`cell_lines` writes each data cell with its headings; chunks index those lines
so that a question about one cell finds it, and the extractive answer can quote it alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Between a cell's row heading and its column heading, and before its value.
HEADING_JOIN = " · "
VALUE_JOIN = ": "
#: A row heading made of several leading columns; a column heading made of several header rows.
MAX_ROW_HEADING_COLUMNS = 3
MAX_HEADER_ROWS = 4

# A number as tables print it: 1,234  -5.6  △2,006  ▲3  12%  15일  3.5배  (1,234)  -  ‒
_NUMBER = re.compile(
    r"^[(\[]?[△▲▽▼+\-−–‒]?\s*[$₩€£]?\s*\d[\d,]*(?:\.\d+)?\s*(?:%|%p|％|[가-힣]{1,2}|[a-zA-Z]{1,3})?[)\]]?$"
)
# An amount as English tables print one, with its words: $50 per day  USD 1,200  €30/night  up to $50
# 1.2 million  40 hours a week  < 5 %.  Unit words are measures only, so that "Level 3", "Room 12"
# and "2 bedrooms" stay text (headings).
_AMOUNT = re.compile(
    r"^(?:(?:up to|about|approx\.?|approximately|max\.?|maximum|min\.?|minimum|at least|at most|over|under|"
    r"less than|more than)\s+|[~≈<>≤≥]\s*)?"
    r"(?:(?:USD|US\$|KRW|EUR|GBP|JPY|CNY|CAD|AUD|CHF|HKD|SGD)\s*)?[$₩€£¥]?\s*\d[\d,]*(?:\.\d+)?"
    r"(?:\s*(?:%|percent|per cent|thousand|million|billion|trillion|seconds?|minutes?|hours?|days?|nights?|"
    r"weeks?|months?|years?|times|[a-zA-Z]{1,3}\b))?"
    r"(?:\s*(?:/|per|a|an|each)\s*[a-zA-Z]{1,12})?$",
    re.IGNORECASE,
)
_DASH = re.compile(r"^[-−–‒—·…]+$")
#: A line that :func:`cell_lines` wrote: "ROW · COLUMN: VALUE" or "COLUMN: VALUE".
_CELL_LINE = re.compile(r"^[^\n:]{1,200}?: \S")


@dataclass(frozen=True)
class Cell:
    """One cell as the format stores it: its top-left position and how far it spans."""

    text: str
    row: int
    col: int
    rowspan: int = 1
    colspan: int = 1
    header: bool = False  # the format marks it as a header cell (HWPX tc header, DOCX tblHeader, HTML th)


@dataclass(frozen=True)
class Table:
    """``rows``: the full grid, a merged cell's text in every position it covers.  ``header_rows``:
    how many rows at the top are headings; ``row_heading_columns``: how many columns at the left are."""

    rows: tuple[tuple[str, ...], ...]
    header_rows: int = 0
    row_heading_columns: int = 0
    #: the text of each cell once (merged cells not repeated), row by row: the table as prose reads it
    own_rows: tuple[tuple[str, ...], ...] = ()
    #: cells whose every position another cell already covers (a damaged or hand-edited table): their
    #: text stays in ``own_rows``, but no position of the grid holds it
    overlapped: int = 0


_SPACED_SYLLABLES = re.compile(r"(?<!\S)[가-힣](?: [가-힣](?!\S))+")


def normalise(text: str) -> str:
    """One line: a cell's wrapped lines ("세입\\n세출외") joined by spaces, and letters spaced out to
    fill a heading cell ("구   분", "합 계") written as the word they are."""
    return _SPACED_SYLLABLES.sub(lambda m: m.group(0).replace(" ", ""), " ".join(text.split()))


def is_number(text: str) -> bool:
    """Whether a cell holds a value to read under headings: a number, an amount with its unit and
    rate ("$50 per day", "USD 1,200", "3.5 km", "12 %"), or a dash for none."""
    text = text.strip()
    return bool(text) and bool(_NUMBER.match(text) or _AMOUNT.match(text) or _DASH.match(text))


def _is_text(text: str) -> bool:
    return bool(text.strip()) and not is_number(text)


# Numbers that name a row rather than measure it: a year, a month, a quarter ("2023년", "2011. 10월",
# "‘23.1Q", "3분기", "2024").
_PERIOD = re.compile(
    r"^[‘’'`]?(?:(?:19|20)?\d{2}\s*(?:년|\.\s*\d{1,2}\s*(?:월|Q|분기)?|\.?\s*[1-4]\s*Q)|(?:19|20)\d{2}|\d{1,2}\s*(?:월|분기|학기))"
    r"(?:\s*\d{1,2}\s*(?:월|분기|Q))?\s*(?:\(?[pP잠정]+\)?)?$"
)


def _is_label(text: str) -> bool:
    return _is_text(text) or bool(_PERIOD.match(text.strip()))


def build_table(cells: Sequence[Cell]) -> Table:
    """The table of ``cells``: merged cells spread, empty rows dropped, headings found."""
    cells = [Cell(normalise(c.text), c.row, c.col, max(1, c.rowspan), max(1, c.colspan), c.header) for c in cells]
    if not cells:
        return Table(rows=())
    height = max(c.row + c.rowspan for c in cells)
    width = max(c.col + c.colspan for c in cells)
    grid = [[""] * width for _ in range(height)]
    origin: list[list[Cell | None]] = [[None] * width for _ in range(height)]
    own = [[""] * width for _ in range(height)]
    overlapped = 0
    for cell in cells:
        # Two cells at one address: the text of both is kept (said once each), the grid keeps the first.
        mine = own[cell.row][cell.col]
        if not mine or (cell.text and cell.text != mine):
            own[cell.row][cell.col] = f"{mine} {cell.text}".strip()
        placed = False
        for r in range(cell.row, cell.row + cell.rowspan):
            for c in range(cell.col, cell.col + cell.colspan):
                if origin[r][c] is None:
                    grid[r][c], origin[r][c] = cell.text, cell
                    placed = True
        overlapped += not placed and bool(cell.text)
    keep = [r for r in range(height) if any(grid[r])]
    grid = [grid[r] for r in keep]
    origin = [origin[r] for r in keep]
    own_rows = tuple(tuple(cell for cell in own[r] if cell) for r in keep)
    header = _header_rows(grid, origin)
    row_headings = _row_heading_columns(grid, header) if header else 0
    for r in range(header + 1, len(grid)):
        # A blank heading cell under a group heading belongs to that group ("통합재정수입 (A)" over "경상수입").
        for c in range(row_headings - 1):
            if not grid[r][c] and any(grid[r][c + 1 : row_headings]):
                grid[r][c] = grid[r - 1][c]
    return Table(tuple(tuple(row) for row in grid), header, row_headings, own_rows, overlapped)


def _header_rows(grid: list[list[str]], origin: list[list[Cell | None]]) -> int:
    """How many top rows are headings: those the format marks, else the first row when it is text
    over numbers; then rows a header cell spans into, and the row under a merged group heading
    ("일반 회계 | 특별 회계" over "세입 | 세출외") while it is text too."""
    if len(grid) < 2:
        return 0
    marked = 0
    while marked < len(grid) - 1 and all(cell is None or cell.header for cell in origin[marked]) and any(
        cell is not None and cell.header for cell in origin[marked]
    ):
        marked += 1
    count = marked
    if not count:
        first, rest = grid[0], grid[1:]
        texts = [cell for cell in first if cell]
        if not texts or not all(_is_text(cell) for cell in texts) or len(set(texts)) < 2 and len(first) > 1:
            return 0
        if not any(first[c] and any(is_number(row[c]) and row[c].strip() for row in rest) for c in range(len(first))):
            return 0
        count = 1
    while count < min(len(grid) - 1, MAX_HEADER_ROWS):
        spans_down = any(cell is not None and cell.row < count and cell.row + cell.rowspan > count
                         for cell in origin[count])
        below = grid[count]
        group_above = any(cell is not None and cell.colspan > 1 and cell.col > 0 for cell in origin[count - 1])
        all_text = all(not cell or _is_text(cell) for cell in below)
        if (spans_down or group_above) and all_text and any(
            cell is not None and cell.row == count for cell in origin[count]
        ):
            count += 1
        else:
            break
    return count


def _row_heading_columns(grid: list[list[str]], header: int) -> int:
    """The leading columns whose data cells are all text (at least one of them given)."""
    data = grid[header:]
    if not data:
        return 0
    width = len(grid[0])
    count = 0
    while count < min(width - 1, MAX_ROW_HEADING_COLUMNS):
        column = [row[count] for row in data]
        if any(cell and not _is_label(cell) for cell in column) or not any(column):
            break
        # A column of long prose is content, not a heading of its row.
        if sum(len(cell) for cell in column) / max(1, sum(1 for cell in column if cell)) > 40:
            break
        count += 1
    return count


def _join_parts(parts: Sequence[str]) -> str:
    """Heading parts in order, each once: "통합재정수지" + "(누계)" → "통합재정수지(누계)"."""
    out: list[str] = []
    for part in parts:
        if not part or part in out:
            continue
        out.append(part)
    text = ""
    for part in out:
        text = f"{text}{part}" if not text or part.startswith(("(", "（")) else f"{text} {part}"
    return text


def column_headings(table: Table) -> list[str]:
    if not table.header_rows:
        return [""] * (len(table.rows[0]) if table.rows else 0)
    return [_join_parts([table.rows[r][c] for r in range(table.header_rows)]) for c in range(len(table.rows[0]))]


def row_heading(table: Table, row: Sequence[str]) -> str:
    return _join_parts(row[: table.row_heading_columns])


@dataclass(frozen=True)
class CellLine:
    """A data cell with its headings: ``row`` and ``col`` index ``Table.rows``."""

    row: int
    col: int
    row_heading: str
    column_heading: str
    value: str

    @property
    def text(self) -> str:
        names = HEADING_JOIN.join(part for part in (self.row_heading, self.column_heading) if part)
        return f"{names}{VALUE_JOIN}{self.value}" if names else self.value

    def to_dict(self) -> dict:
        return {"row": self.row, "col": self.col, "row_heading": self.row_heading,
                "column_heading": self.column_heading, "value": self.value}


def cell_lines(table: Table) -> list[CellLine]:
    """Every data cell that has a value and a heading to name it, in reading order."""
    if not table.header_rows and not table.row_heading_columns:
        return []
    columns = column_headings(table)
    lines = []
    for r in range(table.header_rows, len(table.rows)):
        row = table.rows[r]
        name = row_heading(table, row)
        for c in range(table.row_heading_columns, len(row)):
            value = row[c]
            if not value or not (name or columns[c]) or (c > 0 and value == row[c - 1] and c > table.row_heading_columns):
                continue  # empty, unnamed, or a merged cell already said
            lines.append(CellLine(r, c, name, columns[c], value))
    return lines


def header_line(table: Table) -> str:
    """The header rows as one line of column headings ("구 분 | 일반 회계 | …")."""
    columns = column_headings(table)
    return " | ".join(dict.fromkeys(heading for heading in columns if heading))


def row_lines(table: Table) -> list[list[str]]:
    """What a chunk indexes for each data row: one line per cell with both its headings
    ("ROW · COLUMN: VALUE"), so that a question about one cell finds that line; a row without a row
    heading is one line of "COLUMN: VALUE" pairs ("순번: 1 | 사용일자: 2021-01-07"); a row with no
    headings at all, its plain " | " line."""
    by_row: dict[int, list[CellLine]] = {}
    for line in cell_lines(table):
        by_row.setdefault(line.row, []).append(line)
    out = []
    for r in range(table.header_rows, len(table.rows)):
        lines = by_row.get(r)
        if lines and lines[0].row_heading:
            out.append([line.text for line in lines])
        elif lines:
            out.append([" | ".join(line.text for line in lines)])
        else:
            out.append([" | ".join(dict.fromkeys(cell for cell in table.rows[r] if cell))])
    return out


def is_cell_line(text: str) -> bool:
    """Whether a line reads "ROW · COLUMN: VALUE" (a cell with its headings): data, never a title."""
    return HEADING_JOIN in text and bool(_CELL_LINE.match(text))


def markdown(table: Table) -> str:
    """The table as a Markdown table (the header rows folded into one; a table without header
    rows gets an empty one, as Markdown needs a header)."""
    if not table.rows:
        return ""
    width = len(table.rows[0])

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    head = column_headings(table) if table.header_rows else [""] * width
    out = [line(head), "|" + "|".join(["---"] * width) + "|"]
    out.extend(line(row) for row in table.rows[table.header_rows:])
    return "\n".join(out)
