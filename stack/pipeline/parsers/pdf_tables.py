"""Ruled tables in a PDF's text layer, read with pypdfium2 alone: the page's ruling lines give the
grid, the text layer's character boxes fill its cells, and :mod:`stack.pipeline.tables` finds the
headings as it does for HWP, HWPX and DOCX.

Why pypdfium2 and not pdfplumber: the PDF is already open in pdfium for its text; pdfplumber would
parse every page a second time in pure Python (pdfminer.six) and add a dependency to the image's
wheelhouse.  A page's path objects are walked once (cheap, C calls), and the grid is built only
where they hold ruling lines that cross into at least a 2 × 2 grid, so a page of plain text pays
for a walk over its objects and nothing more (measured in docs/benchmarks.md).

Only ruled tables (the lattice kind: government statistics, forms, HWP and Word printouts); a table
laid out by whitespace alone stays text.  A missing outer border (open sides, common in Korean
statistics tables) is fine: the grid's outer edges are the ends of its rules.  A merged cell is a
grid cell whose border to its neighbour is not drawn.
"""

from __future__ import annotations

import ctypes
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import pairwise

from stack.pipeline.document import Block, table_block_of
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.headings import CAPTION_LIKE, UNIT_NOTE, caption_part
from stack.pipeline.parsers.lines import Vocabulary, join_lines
from stack.pipeline.tables import Cell

#: Points: rules closer than this are one rule; a rule reaches a crossing within this.
SNAP = 2.5
#: Points: a filled rectangle thinner than this is a rule (HWP and some printers draw borders so).
THIN = 3.0
#: Points: grid lines closer than this are one (no cell is narrower than a letter).
MIN_CELL = 6.0
#: Points: an empty band narrower than this between grid lines is a gap, not a row or column.
NARROW = 12.0
#: A page with more axis-aligned segments than this is a drawing or a chart, not tables to read.
MAX_SEGMENTS = 3000
#: A single path with more segments than this is a plot or a drawing.
MAX_PATH_SEGMENTS = 2000
#: A page with more boxes and polylines than this (besides its rules) is a page of drawings.
MAX_SHAPES = 400

#: Points: a table on the next page continues one when each of its column edges is this close.
CONTINUED_X = 3.0
#: A table still ends its page (or opens the next) with at most this many short lines after it (or
#: before it): a page number, a running header or footer.
MARGIN_LINES = 2
MARGIN_LINE_CHARS = 60

_SEPARATOR = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True)
class _Rule:
    """A horizontal rule (``at`` is its y, ``start``/``end`` its x) or a vertical one (the other way)."""

    at: float
    start: float
    end: float


@dataclass(frozen=True)
class PageTable:
    """A table found on a page: its bounds (left, bottom, right, top in PDF points), its column
    and row edges (left to right, top to bottom) and its cells (grid positions with spans)."""

    bbox: tuple[float, float, float, float]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    cells: tuple[Cell, ...]  # text filled in by :func:`_fill`
    vertical: tuple[_Rule, ...] = ()


@dataclass(frozen=True)
class PlacedTable:
    """A table read from a page: its block, the cells it was built from (spans kept) and its column
    edges, which tell a table continued on the next page (:func:`join_continued`)."""

    block: Block
    cells: tuple[Cell, ...]
    xs: tuple[float, ...]


#: A page's parts in reading order: runs of text lines, tables, and captions (blocks).
Part = list[tuple[str, bool]] | PlacedTable | Block


def _transform(matrix: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = matrix
    return a * x + c * y + e, b * x + d * y + f


def _compose(inner: tuple[float, ...], outer: tuple[float, ...]) -> tuple[float, ...]:
    a, b, c, d, e, f = inner
    a2, b2, c2, d2, e2, f2 = outer
    return (a * a2 + b * c2, a * b2 + b * d2, c * a2 + d * c2, c * b2 + d * d2, e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2)


def _matrix(raw) -> tuple[float, ...]:
    import pypdfium2.raw as pdfium_c

    m = pdfium_c.FS_MATRIX()
    if not pdfium_c.FPDFPageObj_GetMatrix(raw, ctypes.byref(m)):
        return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    return (m.a, m.b, m.c, m.d, m.e, m.f)


def _paths(objects: Iterator, outer: tuple[float, ...]) -> Iterator[tuple[object, tuple[float, ...]]]:
    """Every path object with its container's matrix to page space (the page's, or a form
    XObject's: stamps, headers), form XObjects entered."""
    import pypdfium2.raw as pdfium_c

    for raw in objects:
        kind = pdfium_c.FPDFPageObj_GetType(raw)
        if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
            yield raw, outer
        elif kind == pdfium_c.FPDF_PAGEOBJ_FORM:
            inner = _compose(_matrix(raw), outer)
            count = pdfium_c.FPDFFormObj_CountObjects(raw)
            yield from _paths((pdfium_c.FPDFFormObj_GetObject(raw, i) for i in range(count)), inner)


def _subpaths(raw, matrix: tuple[float, ...]) -> Iterator[list[tuple[float, float]]]:
    """The points (in page space) of each straight-line subpath, a closed one back to its start;
    curves end a subpath."""
    import pypdfium2.raw as pdfium_c

    points: list[tuple[float, float]] = []
    x, y = ctypes.c_float(), ctypes.c_float()
    for i in range(pdfium_c.FPDFPath_CountSegments(raw)):
        segment = pdfium_c.FPDFPath_GetPathSegment(raw, i)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y))
        point = _transform(matrix, x.value, y.value)
        if kind == pdfium_c.FPDF_SEGMENT_LINETO and points:
            points.append(point)
        else:
            if len(points) > 1:
                yield points
            points = [point] if kind != pdfium_c.FPDF_SEGMENT_BEZIERTO else []
            continue
        if pdfium_c.FPDFPathSegment_GetClose(segment):
            yield [*points, points[0]]
            points = [point]
    if len(points) > 1:
        yield points


def _visible(raw, *, fill: bool, stroke: bool) -> bool:
    """Whether the path paints something other than white or nothing."""
    import pypdfium2.raw as pdfium_c

    rgba = [ctypes.c_uint() for _ in range(4)]
    for painted, getter in ((fill, pdfium_c.FPDFPageObj_GetFillColor), (stroke, pdfium_c.FPDFPageObj_GetStrokeColor)):
        if painted and getter(raw, *(ctypes.byref(v) for v in rgba)):
            red, green, blue, alpha = (v.value for v in rgba)
            if alpha > 0 and min(red, green, blue) < 240:
                return True
    return False


def ruling_lines(page) -> tuple[list[_Rule], list[_Rule]]:
    """The page's horizontal and vertical rules: stroked straight segments, and thin filled
    rectangles (a border drawn as a filled bar), in page space."""
    import pypdfium2.raw as pdfium_c

    horizontal: list[_Rule] = []
    vertical: list[_Rule] = []
    count = pdfium_c.FPDFPage_CountObjects(page.raw)
    top_level = (pdfium_c.FPDFPage_GetObject(page.raw, i) for i in range(count))
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    bounds = [ctypes.c_float() for _ in range(4)]
    shapes: list[tuple[object, tuple[float, ...], int, int]] = []  # paths to walk segment by segment
    for raw, outer in _paths(top_level, (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)):
        if not pdfium_c.FPDFPath_GetDrawMode(raw, ctypes.byref(fill), ctypes.byref(stroke)):
            continue
        if not fill.value and not stroke.value:
            continue  # a clipping path: nothing is drawn
        if not pdfium_c.FPDFPageObj_GetBounds(raw, *(ctypes.byref(v) for v in bounds)):
            continue
        # The bounds first (one call): most paths are dots, glyph-sized marks or single rules, and
        # walking every path's segments in Python is what would slow a page of figures down.
        x0, y0 = _transform(outer, bounds[0].value, bounds[1].value)
        x1, y1 = _transform(outer, bounds[2].value, bounds[3].value)
        left, right, bottom, top = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        width, height = right - left, top - bottom
        if max(width, height) < THIN:
            continue
        if min(width, height) >= THIN:
            shapes.append((raw, outer, fill.value, stroke.value))
            continue
        if not _visible(raw, fill=bool(fill.value), stroke=bool(stroke.value)):
            continue  # white boxes behind text lines (LibreOffice, some LaTeX classes) rule nothing
        if width >= height:  # a rule, or a bar drawn as one
            horizontal.append(_Rule((bottom + top) / 2, left, right))
        else:
            vertical.append(_Rule((left + right) / 2, bottom, top))
    if len(shapes) > MAX_SHAPES:
        shapes = []  # a page of drawings: its rectangles and polylines are figures, not table borders
    for raw, outer, filled, stroked in shapes:
        if pdfium_c.FPDFPath_CountSegments(raw) > MAX_PATH_SEGMENTS:
            continue  # a plot or a drawing
        if not _visible(raw, fill=bool(filled), stroke=bool(stroked)):
            continue
        for points in _subpaths(raw, _compose(_matrix(raw), outer)):
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            width, height = max(xs) - min(xs), max(ys) - min(ys)
            if len(points) <= 5 and min(width, height) < THIN and max(width, height) >= THIN:
                # A bar inside a bigger path: one rule along its long side.
                if width >= height:
                    horizontal.append(_Rule((min(ys) + max(ys)) / 2, min(xs), max(xs)))
                else:
                    vertical.append(_Rule((min(xs) + max(xs)) / 2, min(ys), max(ys)))
                continue
            for (x0, y0), (x1, y1) in pairwise(points):
                if abs(y1 - y0) < 0.5 and abs(x1 - x0) >= THIN:
                    horizontal.append(_Rule((y0 + y1) / 2, min(x0, x1), max(x0, x1)))
                elif abs(x1 - x0) < 0.5 and abs(y1 - y0) >= THIN:
                    vertical.append(_Rule((x0 + x1) / 2, min(y0, y1), max(y0, y1)))
    if len(horizontal) + len(vertical) > MAX_SEGMENTS:
        return [], []
    return _merge(horizontal), _merge(vertical)


def _merge(rules: list[_Rule]) -> list[_Rule]:
    """Rules on (nearly) the same line that touch or overlap, as one rule."""
    out: list[_Rule] = []
    lines: list[list[_Rule]] = []
    for rule in sorted(rules, key=lambda r: r.at):
        if lines and rule.at - lines[-1][-1].at <= SNAP:
            lines[-1].append(rule)
        else:
            lines.append([rule])
    for line in lines:
        at = sum(rule.at for rule in line) / len(line)
        for rule in sorted(line, key=lambda r: r.start):
            if out and out[-1].at == at and rule.start <= out[-1].end + SNAP:
                out[-1] = _Rule(at, out[-1].start, max(out[-1].end, rule.end))
            else:
                out.append(_Rule(at, rule.start, rule.end))
    return out


def _clusters(values: list[float]) -> list[tuple[float, float]]:
    """(lowest, highest) of each run of values closer than MIN_CELL, sorted: one grid line each (a
    border drawn twice, as Hancom prints each cell's own border, is one line)."""
    groups: list[list[float]] = []
    for value in sorted(values):
        if groups and value - groups[-1][-1] < MIN_CELL:
            groups[-1].append(value)
        else:
            groups.append([value])
    return [(group[0], group[-1]) for group in groups]


def _components(horizontal: list[_Rule], vertical: list[_Rule]) -> list[tuple[list[_Rule], list[_Rule]]]:
    """Groups of rules that cross or touch each other: one group per table."""
    parent = list(range(len(horizontal) + len(vertical)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, h in enumerate(horizontal):
        for j, v in enumerate(vertical):
            if h.start - SNAP <= v.at <= h.end + SNAP and v.start - SNAP <= h.at <= v.end + SNAP:
                parent[find(i)] = find(len(horizontal) + j)
    groups: dict[int, tuple[list[_Rule], list[_Rule]]] = {}
    for i, h in enumerate(horizontal):
        groups.setdefault(find(i), ([], []))[0].append(h)
    for j, v in enumerate(vertical):
        groups.setdefault(find(len(horizontal) + j), ([], []))[1].append(v)
    return list(groups.values())


def _covers(rules: list[_Rule], at: tuple[float, float], point: float) -> bool:
    """Whether a rule on the grid line ``at`` (lowest, highest) runs past ``point``."""
    return any(at[0] - SNAP <= rule.at <= at[1] + SNAP and rule.start - SNAP <= point <= rule.end + SNAP
               for rule in rules)


def _close_gaps(lines: list[tuple[float, float]], text_at: list[float]) -> list[tuple[float, float]]:
    """Grid lines with the narrow empty gaps between them closed: shaded cells printed apart (a
    white gap between two grey boxes) border the same cells, not a column of their own."""
    out = lines[:1]
    for lo, hi in lines[1:]:
        gap_lo = out[-1][1]
        if lo - gap_lo < NARROW and not any(gap_lo < at < lo for at in text_at):
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _grid(horizontal: list[_Rule], vertical: list[_Rule], centers: list[tuple[float, float]] | None) -> PageTable | None:
    """The table these crossing rules draw, or None when they draw less than 2 × 2 cells; ``centers``
    (the middle of each character) close the empty gaps between shaded cells (None: not yet known)."""
    left = min(min(h.start for h in horizontal), min(v.at for v in vertical))
    right = max(max(h.end for h in horizontal), max(v.at for v in vertical))
    bottom = min(min(v.start for v in vertical), min(h.at for h in horizontal))
    top = max(max(v.end for v in vertical), max(h.at for h in horizontal))
    # The outer edges count even where no rule is drawn there (a table open at its sides).
    x_lines = _clusters([v.at for v in vertical] + [left, right])
    y_lines = _clusters([h.at for h in horizontal] + [bottom, top])
    if centers is not None:
        inside = [(x, y) for x, y in centers if left <= x <= right and bottom <= y <= top]
        x_lines = _close_gaps(x_lines, [x for x, _ in inside])
        y_lines = _close_gaps(y_lines, [y for _, y in inside])
    y_lines = y_lines[::-1]  # top to bottom
    xs = [(lo + hi) / 2 for lo, hi in x_lines]
    ys = [(lo + hi) / 2 for lo, hi in y_lines]
    rows, columns = len(ys) - 1, len(xs) - 1
    if rows < 2 or columns < 2:
        return None
    mid_x = [(xs[c] + xs[c + 1]) / 2 for c in range(columns)]
    mid_y = [(ys[r] + ys[r + 1]) / 2 for r in range(rows)]
    parent = list(range(rows * columns))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Neighbouring grid cells with no rule drawn between them are one merged cell.
    for r in range(rows):
        for c in range(columns):
            if c + 1 < columns and not _covers(vertical, x_lines[c + 1], mid_y[r]):
                parent[find(r * columns + c)] = find(r * columns + c + 1)
            if r + 1 < rows and not _covers(horizontal, y_lines[r + 1], mid_x[c]):
                parent[find(r * columns + c)] = find((r + 1) * columns + c)
    spans: dict[int, list[int]] = {}
    for r in range(rows):
        for c in range(columns):
            box = spans.setdefault(find(r * columns + c), [r, c, r, c])
            box[2], box[3] = max(box[2], r), max(box[3], c)
    cells = tuple(Cell("", r0, c0, r1 - r0 + 1, c1 - c0 + 1) for r0, c0, r1, c1 in sorted(spans.values()))
    if len(cells) < max(2, rows * columns / 2):
        return None  # mostly merged: a plot's axes and tick lines, a drawing's frame, not a table
    return PageTable((left, bottom, right, top), tuple(xs), tuple(ys), cells, tuple(vertical))


def find_tables(horizontal: list[_Rule], vertical: list[_Rule],
                centers: list[tuple[float, float]] | None) -> list[PageTable]:
    """The tables a page's rules draw (their cells still without text), top to bottom; ``centers``:
    the middle of each character on the page (None: candidates from the rules alone)."""
    tables = []
    for h, v in _components(horizontal, vertical):
        if len(h) >= 2 and len(v) >= 2:
            table = _grid(h, v, centers)
            if table is not None:
                tables.append(table)
    return sorted(tables, key=lambda t: -t.bbox[3])


def _slots(table: PageTable) -> dict[tuple[int, int], int]:
    """Which cell (index into ``table.cells``) covers each grid position."""
    return {(r, c): i for i, cell in enumerate(table.cells)
            for r in range(cell.row, cell.row + cell.rowspan) for c in range(cell.col, cell.col + cell.colspan)}


def _locate(tables: list[PageTable], slots: list[dict[tuple[int, int], int]], x: float, y: float) -> tuple[int, int] | None:
    """(table, cell) that the point falls in."""
    for t, table in enumerate(tables):
        left, bottom, right, top = table.bbox
        if not (left <= x <= right and bottom <= y <= top):
            continue
        column = min(max(bisect_left(table.xs, x) - 1, 0), len(table.xs) - 2)
        row = min(max(len(table.ys) - 1 - bisect_left(table.ys[::-1], y), 0), len(table.ys) - 2)
        cell = slots[t].get((row, column))
        if cell is not None:
            return t, cell
    return None


def page_parts(page, textpage, lines: list[tuple[str, bool]], number: int) -> list[Part]:
    """The page in reading order: runs of its text lines (as ``_page_lines`` gave them) and its
    tables as table blocks, each where its first line was; a table's lines leave the text, so
    nothing is said twice.  A page without ruled tables is one run, unchanged."""
    try:
        return _page_parts(page, textpage, lines, number)
    except Exception:  # noqa: BLE001 - library boundary: a drawing pdfium reads oddly keeps the page as text
        return [lines]


def _page_parts(page, textpage, lines: list[tuple[str, bool]], number: int) -> list[Part]:
    if not lines:
        return [lines]
    horizontal, vertical = ruling_lines(page)
    if len(horizontal) < 2 or len(vertical) < 2:  # not even one box: the common page of text
        return [lines]
    count = textpage.count_chars()
    text = textpage.get_text_range(0, count) if count > 0 else ""
    if len(text) != count:
        return [lines]  # the text does not map onto character boxes: keep it as text
    candidates = find_tables(horizontal, vertical, None)
    if not candidates:
        return [lines]
    boxes = _char_boxes(textpage, text, _lines_within(textpage, text, [t.bbox for t in candidates]))
    centers = [((left + right) / 2, (bottom + top) / 2) for left, bottom, right, top in boxes.values()]
    tables = [table for table in find_tables(horizontal, vertical, centers) if not _cuts_text(table, boxes.values())]
    if not tables:
        return [lines]
    owner: list[tuple[int, int] | None] = [None] * count
    slots = [_slots(table) for table in tables]
    for i, (left, bottom, right, top) in boxes.items():
        owner[i] = _locate(tables, slots, (left + right) / 2, (bottom + top) / 2)
    texts = _fill(text, owner, Vocabulary([line for line, _ in lines]))
    blocks: list[PlacedTable | None] = []
    for t, table in enumerate(tables):
        cells = [Cell(texts.get((t, i), ""), c.row, c.col, c.rowspan, c.colspan) for i, c in enumerate(table.cells)]
        filled = [cell for cell in cells if cell.text.strip()]
        # An empty grid (a form's blank boxes, a plot's axes and grid lines with a few labels) stays
        # text: a table to read has text in most of its cells.
        keep = len(filled) >= max(2, len(cells) / 2)
        blocks.append(PlacedTable(table_block_of(cells, page=number), tuple(cells), table.xs) if keep else None)
    parts: list[Part] = [[]]
    placed: set[int] = set()
    starts = [0] + [m.end() for m in _SEPARATOR.finditer(text)]
    for (line, full), start in zip(lines, starts):
        inside = [owner[i][0] for i in range(start, start + len(line)) if owner[i] is not None]
        visible = sum(1 for ch in line if not ch.isspace())
        table = max(set(inside), key=inside.count) if inside else None
        if table is None or blocks[table] is None or len(inside) * 2 < visible:
            if not isinstance(parts[-1], list):
                parts.append([])
            parts[-1].append((line, full))  # type: ignore[union-attr]
        elif table not in placed:
            placed.add(table)
            parts += _with_caption(parts[-1], blocks[table])  # type: ignore[arg-type]
    parts += [block for t, block in enumerate(blocks) if block is not None and t not in placed]
    return [part for part in parts if not isinstance(part, list) or part]


def _lines_within(textpage, text: str, bounds: list[tuple[float, float, float, float]]) -> list[range]:
    """The character ranges of the text lines that start inside one of ``bounds``: only their
    characters need boxes (one box a line to decide, instead of one a character on a page of text)."""
    out = []
    starts = [0] + [m.end() for m in _SEPARATOR.finditer(text)]
    ends = [m.start() for m in _SEPARATOR.finditer(text)] + [len(text)]
    for start, end in zip(starts, ends):
        first = next((i for i in range(start, end) if not text[i].isspace()), None)
        if first is None:
            continue
        left, bottom, right, top = textpage.get_charbox(first)
        x, y = (left + right) / 2, (bottom + top) / 2
        if any(b[0] - SNAP <= x <= b[2] + SNAP and b[1] - SNAP <= y <= b[3] + SNAP for b in bounds):
            out.append(range(start, end))
    return out


def _char_boxes(textpage, text: str, spans: list[range]) -> dict[int, tuple[float, float, float, float]]:
    """(left, bottom, right, top) of each visible character in ``spans``, by index (straight ctypes
    calls: the wrapper's per-call cost was most of the finder's time on a page of figures)."""
    import pypdfium2.raw as pdfium_c

    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    refs = (ctypes.byref(left), ctypes.byref(right), ctypes.byref(bottom), ctypes.byref(top))
    raw = textpage.raw
    boxes = {}
    for span in spans:
        for i in span:
            if not text[i].isspace() and pdfium_c.FPDFText_GetCharBox(raw, i, *refs):
                boxes[i] = (left.value, bottom.value, right.value, top.value)
    return boxes


def _cuts_text(table: PageTable, boxes) -> bool:
    """Whether the table's vertical rules run through characters: then they are not borders
    between cells (a box drawn over text, underlines and strike-throughs joined into a grid)."""
    cut = 0
    for left, bottom, right, top in boxes:
        middle = (bottom + top) / 2
        for rule in table.vertical:
            if left + 0.5 < rule.at < right - 0.5 and rule.start <= middle <= rule.end:
                cut += 1
                if cut > 2:
                    return True
    return False


def _with_caption(before: Part, table: PlacedTable) -> list[PlacedTable | Block]:
    """The table, and the line just above it as its caption when it reads as one ("[표 1] 문서 및
    질문 개수", "< 업종별 동향 >", "통합재정수지 추이(단위: 십억원)"): taken out of the text run, it
    names the table (its heading path ends with it, as an HWP table's caption does)."""
    if not isinstance(before, list) or not before:
        return [table]
    line = before[-1][0].strip()
    if len(line) > 80 or not (CAPTION_LIKE.match(line) or UNIT_NOTE.search(line)) or line.endswith("."):
        return [table]
    before.pop()
    caption = caption_part(line)
    return [Block(text=clean_text(line), kind="caption", page=table.block.page, heading=caption),
            replace(table, block=replace(table.block, heading=caption))]


def _fill(text: str, owner: list[tuple[int, int] | None], vocabulary: Vocabulary) -> dict[tuple[int, int], str]:
    """Each cell's text from the characters inside it, in the text layer's order.  A gap in that
    order within a line (a space, another cell's text) is a space; a cell's wrapped lines are joined
    as the page's paragraphs are (a Korean word split by the wrap joined again: "통합재정" + "수지")."""
    lines: dict[tuple[int, int], list[list[str]]] = {}
    last: dict[tuple[int, int], int] = {}
    for i, key in enumerate(owner):
        if key is None:
            continue
        cell = lines.setdefault(key, [[]])
        if key in last and last[key] != i - 1:
            between = text[last[key] + 1 : i]
            if "\n" in between or "\r" in between:
                cell.append([])
            else:
                cell[-1].append(" ")
        cell[-1].append(text[i])
        last[key] = i
    return {key: " ".join(join_lines([("".join(line), True) for line in cell], vocabulary))
            for key, cell in lines.items()}


def _margin(run: Part) -> bool:
    """Whether a text run is at most a page's margin text (a page number, a running header)."""
    if not isinstance(run, list):
        return False
    lines = [line.strip() for line, _ in run if line.strip()]
    return len(lines) <= MARGIN_LINES and all(len(line) <= MARGIN_LINE_CHARS for line in lines)


def _last_table(parts: list[Part]) -> int | None:
    """The index of the table that ends the page (only margin text after it), else None."""
    for index in range(len(parts) - 1, -1, -1):
        if isinstance(parts[index], PlacedTable):
            return index
        if not _margin(parts[index]):
            return None
    return None


def _first_table(parts: list[Part]) -> int | None:
    """The index of the table that opens the page (only margin text before it), else None."""
    for index, part in enumerate(parts):
        if isinstance(part, PlacedTable):
            return index
        if not _margin(part):
            return None
    return None


def _continues(before: PlacedTable, after: PlacedTable) -> bool:
    """Whether ``after`` (opening a page) goes on with ``before`` (ending the page before): the same
    columns at the same places."""
    return len(before.xs) == len(after.xs) and all(abs(a - b) <= CONTINUED_X for a, b in zip(before.xs, after.xs))


def _joined(before: PlacedTable, after: PlacedTable) -> PlacedTable:
    """One table of ``before``'s rows and then ``after``'s, without ``after``'s first rows where they
    repeat ``before``'s header rows (a header printed again on each page)."""
    repeated = before.block.header_rows
    if not repeated or after.block.rows is None or after.block.rows[:repeated] != before.block.rows[:repeated]:
        repeated = 0
    # Rows of ``after`` as found (its cells' rows), where its kept rows begin: the empty rows
    # build_table dropped are counted here too.
    height = max(cell.row + cell.rowspan for cell in before.cells)
    first = _found_row(after.cells, repeated)
    cells = list(before.cells)
    for cell in after.cells:
        end = cell.row + cell.rowspan
        if end <= first:
            continue  # a repeated header cell
        start = max(cell.row, first)
        cells.append(replace(cell, row=height + start - first, rowspan=end - start))
    block = table_block_of(cells, page=before.block.page, heading=before.block.heading)
    return PlacedTable(block, tuple(cells), before.xs)


def _found_row(cells: tuple[Cell, ...], kept: int) -> int:
    """The row (as found, empty rows included) where the ``kept``-th non-empty row begins."""
    rows = sorted({r for cell in cells if cell.text.strip() for r in range(cell.row, cell.row + cell.rowspan)})
    return rows[kept] if kept < len(rows) else (rows[-1] + 1 if rows else 0)


def join_continued(pages: list[list[Part]], skip: set[int] | frozenset[int] = frozenset()) -> list[list[Part]]:
    """Each page's parts (index 0: page 1), with a table that ends a page and goes on at the top of
    the next (same column count and edges, its header printed again or not) read as one table,
    cited at the page where it begins; over as many pages as it runs.  ``skip``: page numbers whose
    parts are not used (read by OCR instead)."""
    pages = [list(parts) for parts in pages]
    open_at: tuple[int, int] | None = None  # (page index, part index) of the table ending the page before
    for index, parts in enumerate(pages):
        if index + 1 in skip:
            open_at = None
            continue
        start = _first_table(parts) if open_at is not None else None
        if open_at is not None and start is not None:
            before, after = pages[open_at[0]][open_at[1]], parts[start]
            if _continues(before, after):  # type: ignore[arg-type]
                pages[open_at[0]][open_at[1]] = _joined(before, after)  # type: ignore[arg-type]
                del parts[start]
                if all(_margin(part) for part in parts):
                    continue  # the whole page was the table's: it may go on over the next one
        end = _last_table(parts)
        open_at = (index, end) if end is not None else None
    return pages
