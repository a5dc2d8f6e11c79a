"""DOCX with python-docx: body in order (paragraphs and tables, nested tables too), headers, footers.

Headings (Heading 1/2/3, 제목 1/2/3, Title, or any style or paragraph with an outline level) give
every body block its heading path ("Expense Policy > Daily limits"); ``section`` stays the last
heading, as before.

Strict OOXML (the ISO namespaces, which python-docx cannot open) and other packages python-docx
rejects fall back to reading ``word/document.xml`` directly, within the unzip limit.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from stack.contract import ParseReport
from stack.pipeline.document import Block, ParsedDocument, heading_path, location_label, table_block_of
from stack.pipeline.errors import CorruptDocument, PipelineError
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.headings import CAPTION_LIKE, cap, caption_part
from stack.pipeline.parsers.pictures import Picture, PictureUnit, own_text_chars, read_pictures
from stack.pipeline.parsers.zipsafe import repack, safe_unpack
from stack.pipeline.tables import Cell

_HEADING_STYLE = re.compile(r"^(heading|title|subtitle|제목)", re.IGNORECASE)
_HEADING_LEVEL = re.compile(r"^(?:heading|제목)\s*(\d)$", re.IGNORECASE)
HEADING_PART = 60
#: A caption that numbers a table: the only kind taken from the line after a table.
_NUMBERED_TABLE = re.compile(r"^[\[［【<〈(]?\s*(?:표|table)\s*\d", re.IGNORECASE)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


# ------------------------------------------------------------------------- generic XML walker
# Works on both Transitional and Strict namespaces: matches on local names only.


def _val(element: ET.Element) -> str:
    for key, value in element.attrib.items():
        if _local(key) == "val":
            return value
    return ""


def _paragraph_style(p: ET.Element) -> str:
    return _paragraph_property(p, "pStyle")


def _paragraph_property(p: ET.Element, name: str) -> str:
    for element in p:
        if _local(element.tag) == "pPr":
            for child in element:
                if _local(child.tag) == name:
                    return _val(child)
    return ""


def _style_table(styles_xml: bytes | None) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """The styles part's paragraph styles by id: (name, outline level, the style it is based on)."""
    names: dict[str, str] = {}
    outline: dict[str, int] = {}
    based: dict[str, str] = {}
    if not styles_xml:
        return names, outline, based
    try:
        root = ET.fromstring(styles_xml)
    except ET.ParseError:
        return names, outline, based
    for style in root:
        if _local(style.tag) != "style":
            continue
        sid = next((v for k, v in style.attrib.items() if _local(k) == "styleId"), "")
        for child in style.iter():
            tag = _local(child.tag)
            if tag == "name":
                names[sid] = _val(child)
            elif tag == "basedOn":
                based[sid] = _val(child)
            elif tag == "outlineLvl" and _val(child).isdigit() and int(_val(child)) < 9:
                outline[sid] = int(_val(child)) + 1
    return names, outline, based


def _lineage(sid: str, based: dict[str, str]) -> Iterator[str]:
    """The style and those it is based on, nearest first (a loop in basedOn ends the walk)."""
    seen: set[str] = set()
    while sid and sid not in seen:
        seen.add(sid)
        yield sid
        sid = based.get(sid, "")


def heading_levels(styles_xml: bytes | None) -> dict[str, int]:
    """Heading level (1 = top, 0 = Title) of every paragraph style that is a heading, by style id:
    from the style's name (Heading 2, 제목 2, Title), else its outline level, following basedOn."""
    names, outline, based = _style_table(styles_xml)
    levels: dict[str, int] = {}
    for sid in names:
        for current in _lineage(sid, based):
            name = names.get(current, "")
            match = _HEADING_LEVEL.match(name.strip())
            if match:
                levels[sid] = int(match.group(1))
                break
            if name.strip().lower() == "title":
                levels[sid] = 0
                break
            if current in outline:
                levels[sid] = outline[current]
                break
    return levels


def caption_styles(styles_xml: bytes | None) -> frozenset[str]:
    """Ids of the paragraph styles that are Word's Caption (built-in name "caption" in every UI
    language; the id may be localised) or based on it."""
    names, _, based = _style_table(styles_xml)
    return frozenset(sid for sid in names
                     if any(names.get(current, "").strip().lower() == "caption" for current in _lineage(sid, based)))


def _skipped_part(drawing: ET.Element) -> tuple[str, str] | None:
    """(finding kind, why) of a w:drawing, w:pict or w:object whose content is not text, else None
    (a text box: its paragraphs are read)."""
    names = {_local(e.tag) for e in drawing.iter()}
    if "txbxContent" in names:
        return None
    if _local(drawing.tag) == "object" or "OLEObject" in names:
        return "ole_object", "an embedded object (OLE: another program's data) is not read"
    if "chart" in names:
        return "chart", "a chart's data is not read"
    if "pic" in names or "imagedata" in names:
        return "image_no_text", "a picture: text inside an image is not read"
    return None


class _XmlWalker:
    def __init__(self, section: str | None = None, levels: dict[str, int] | None = None, track: bool = False,
                 report: ParseReport | None = None, pictures: list[Picture] | None = None,
                 captions: frozenset[str] = frozenset()) -> None:
        self.section = section
        self.levels = levels or {}
        self.captions = captions  # ids of Word's Caption style and those based on it
        #: (index of the last table, its heading path without a caption) while a caption may still
        #: follow it; and the same with the caption's index once one below it named it
        self._open_table: tuple[int, str | None] | None = None
        self._named_below: tuple[int, int, str | None] | None = None
        self.track = track  # the body: headings open a path (cells, headers and footers do not)
        self.trail: list[tuple[int, str]] = []
        self.blocks: list[Block] = []
        self.report = report if report is not None else ParseReport()  # what was skipped, and why
        #: the body's own pictures (their relationship ids), for OCR to decide on (pictures.py);
        #: None: report them as skipped
        self.pictures = pictures

    @property
    def heading(self) -> str | None:
        return heading_path(part for _, part in self.trail) if self.track else None

    def walk(self, container: ET.Element) -> None:
        for child in container:
            tag = _local(child.tag)
            if tag == "p":
                self.paragraph(child)
            elif tag == "tbl":
                self.table(child)
            elif tag in ("sdt", "sdtContent", "customXml", "body", "txbxContent"):
                self.walk(child)

    def paragraph(self, p: ET.Element) -> None:
        # Paragraph text excluding nested text boxes (walked after as their own paragraphs).
        text = clean_text(_paragraph_text_shallow(p))
        style = _paragraph_style(p)
        if text:
            own = _paragraph_property(p, "outlineLvl")
            level = int(own) + 1 if own.isdigit() and int(own) < 9 else self.levels.get(style)
            if level is None and _HEADING_LEVEL.match(style):
                level = int(_HEADING_LEVEL.match(style).group(1))  # type: ignore[union-attr]
            kind = "heading" if level is not None or _HEADING_STYLE.match(style) else "paragraph"
            if kind == "paragraph" and style in self.captions:
                kind = "caption"
            if level is not None and self.track:
                while self.trail and self.trail[-1][0] >= level:
                    self.trail.pop()
                self.trail.append((level, cap(text.split("\n", 1)[0], HEADING_PART)))
            self.blocks.append(Block(text=text, kind=kind, section=self.section, heading=self.heading))  # type: ignore[arg-type]
            self._caption_below()
        for box in p.iter():
            tag = _local(box.tag)
            if tag == "txbxContent":
                self.walk(box)
            elif tag in ("drawing", "pict", "object"):
                skipped = _skipped_part(box)
                where = location_label(None, self.section, self.heading)
                if skipped is not None and skipped[0] == "image_no_text" and self.pictures is not None:
                    blip = next((e for e in box.iter() if _local(e.tag) == "blip"), None)
                    embed = next((v for k, v in blip.attrib.items() if _local(k) == "embed"), None) if blip is not None else None
                    self.pictures.append(Picture(embed, where, self.section, self.heading))
                elif skipped is not None:
                    self.report.add(skipped[0], where, skipped[1])

    def cell_text(self, tc: ET.Element) -> tuple[str, int]:
        """A cell's text, and how many tables it holds (flattened into that text)."""
        inner = _XmlWalker(self.section, self.levels, report=self.report)
        inner.walk(tc)
        return "\n".join(block.text for block in inner.blocks), sum(1 for b in inner.blocks if b.kind == "table")

    def _is_caption(self, block: Block, heading: str | None, *, below: bool) -> bool:
        """Whether ``block``, just before (or, ``below``, just after) a table under the same heading
        path, names it: Word's Caption style, or a line that reads as a caption ("Table 1. …",
        "[표 1] …", "< … >" before it; only a numbered "Table 1"/"표 1" after it)."""
        if not self.track or block.heading != heading or block.kind not in ("paragraph", "caption"):
            return False
        if block.kind == "caption":
            return True
        text = block.text.strip()
        return bool(CAPTION_LIKE.match(text)) and (not below or bool(_NUMBERED_TABLE.match(text)))

    def _caption_below(self) -> None:
        """The paragraph just written, right after a table with no caption: its caption if it reads as one."""
        opened, self._open_table = self._open_table, None
        if opened is None or opened[0] != len(self.blocks) - 2:
            return
        index, heading = opened
        caption = self.blocks[-1]
        if not self._is_caption(caption, heading, below=True):
            return
        named = heading_path([*(part for _, part in self.trail), caption_part(caption.text)])
        self.blocks[index] = replace(self.blocks[index], heading=named)
        self.blocks[-1] = replace(caption, kind="caption", heading=named)
        self._named_below = (index, len(self.blocks) - 1, heading)

    def table(self, tbl: ET.Element) -> None:
        heading = caption = None
        self._open_table = None
        if self.track:
            heading = self.heading
            below, self._named_below = self._named_below, None
            if below is not None and below[1] == len(self.blocks) - 1:
                # The caption between two tables names the one after it (captions of tables go above).
                table, at, unnamed = below
                self.blocks[table] = replace(self.blocks[table], heading=unnamed)
                self.blocks[at] = replace(self.blocks[at], heading=unnamed)
            if self.blocks and self._is_caption(self.blocks[-1], heading, below=False):
                caption = self.blocks[-1]
                heading = heading_path([*(part for _, part in self.trail), caption_part(caption.text)])
                self.blocks[-1] = replace(caption, kind="caption", heading=heading)
        cells, nested = self.cells(tbl)
        block = table_block_of(cells, section=self.section, heading=heading, report=self.report, nested=nested)
        if block.text:
            self.blocks.append(block)
            if self.track and caption is None:
                self._open_table = (len(self.blocks) - 1, heading)

    def cells(self, tbl: ET.Element) -> tuple[list[Cell], int]:
        """The table's cells at their grid positions: w:gridSpan widens a cell, a w:vMerge that
        continues lengthens the cell above it, a row marked w:tblHeader is a header row; and how
        many tables the cells hold."""
        cells: list[Cell] = []
        nested = 0
        above: dict[int, int] = {}  # grid column → index in cells of the cell that starts a vertical merge there
        rows = [tr for tr in tbl if _local(tr.tag) == "tr"]
        for r, tr in enumerate(rows):
            header = any(_local(child.tag) == "tblHeader" and _val(child) not in ("0", "false")
                         for prop in tr if _local(prop.tag) == "trPr" for child in prop)
            col = 0
            for tc in tr:
                if _local(tc.tag) != "tc":
                    continue
                span, merge = 1, None
                for prop in tc:
                    if _local(prop.tag) == "tcPr":
                        for child in prop:
                            if _local(child.tag) == "gridSpan" and _val(child).isdigit():
                                span = max(1, int(_val(child)))
                            elif _local(child.tag) == "vMerge":
                                merge = _val(child) or "continue"
                if merge == "continue" and col in above:
                    start = cells[above[col]]
                    cells[above[col]] = replace(start, rowspan=r - start.row + 1)
                else:
                    text, inner_tables = self.cell_text(tc)
                    nested += inner_tables
                    cells.append(Cell(text, r, col, 1, span, header))
                    if merge == "restart":
                        above[col] = len(cells) - 1
                    else:
                        above.pop(col, None)
                col += span
        return cells, nested


def _paragraph_text_shallow(p: ET.Element) -> str:
    parts: list[str] = []

    def visit(element: ET.Element) -> None:
        for child in element:
            tag = _local(child.tag)
            if tag == "txbxContent":
                continue
            if tag == "t" and child.text:
                parts.append(child.text)
            elif tag == "tab":
                parts.append("\t")
            elif tag in ("br", "cr"):
                parts.append("\n")
            elif tag == "noBreakHyphen":
                parts.append("-")
            elif tag in ("delText", "instrText"):
                continue
            else:
                visit(child)

    visit(p)
    return "".join(parts)


def _fallback(path: Path, files: dict[str, bytes], reason: str) -> ParsedDocument:
    """Read word/document.xml (or the part the content types name) directly."""
    part = "word/document.xml"
    if part not in files:
        types = files.get("[Content_Types].xml", b"").decode("utf-8", "ignore")
        match = re.search(r'PartName="/([^"]+)"[^>]*wordprocessingml\.document\.main', types)
        if not match:
            match = re.search(r'wordprocessingml\.document\.main[^>]*PartName="/([^"]+)"', types)
        part = match.group(1) if match else ""
    if part not in files:
        raise CorruptDocument(
            f"{path.name} is a Word package without its main document part ({reason}).",
            hint="Open it in Word or LibreOffice and save it again as .docx.",
        )
    blocks: list[Block] = []
    report = ParseReport()
    folder = part.rsplit("/", 1)[0] + "/" if "/" in part else ""
    for name in sorted(files):
        if name.startswith(folder) and re.match(r".*/header\d*\.xml$", name):
            blocks.extend(_xml_blocks(files[name], "header", path, report, kind="header"))
    styles = files.get(folder + "styles.xml")
    blocks.extend(_xml_blocks(files[part], None, path, report, levels=heading_levels(styles),
                              captions=caption_styles(styles)))
    for name in sorted(files):
        if name.startswith(folder) and re.match(r".*/footer\d*\.xml$", name):
            blocks.extend(_xml_blocks(files[name], "footer", path, report, kind="footer"))
    return ParsedDocument(format="docx", parser="docx-xml", blocks=blocks, metadata={"fallback": reason},
                          report=report)


def _xml_blocks(
    data: bytes, section: str | None, path: Path, report: ParseReport, kind: str | None = None,
    levels: dict[str, int] | None = None, captions: frozenset[str] = frozenset(),
) -> list[Block]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise CorruptDocument(
            f"{path.name}: its document XML is malformed ({exc}).",
            hint="Open it in Word or LibreOffice and save it again as .docx.",
        ) from exc
    walker = _XmlWalker(section, levels, track=kind is None, report=report, captions=captions)
    walker.walk(root)
    if kind:
        return [Block(text=b.text, kind=kind, section=section, rows=b.rows) for b in walker.blocks]  # type: ignore[arg-type]
    return walker.blocks


# ------------------------------------------------------------------------------ python-docx


def _margin_blocks(document, kind: str, report: ParseReport) -> list[Block]:
    """Blocks of every distinct, unlinked header or footer (``kind``) of the document's sections."""
    blocks: list[Block] = []
    seen_parts: set[int] = set()
    for section in document.sections:
        parts = (getattr(section, kind), getattr(section, f"first_page_{kind}"), getattr(section, f"even_page_{kind}"))
        for part in parts:
            try:
                linked, element = part.is_linked_to_previous, part._element
            except Exception:  # noqa: BLE001 - library boundary
                linked, element = True, None
            if linked or element is None or id(element) in seen_parts:
                continue
            seen_parts.add(id(element))
            walker = _XmlWalker(kind, report=report)
            walker.walk(element)
            blocks.extend(Block(text=b.text, kind=kind, section=kind, rows=b.rows) for b in walker.blocks)
    return blocks


def _docx_blocks(document, levels: dict[str, int], report: ParseReport, units: list[PictureUnit],
                 captions: frozenset[str] = frozenset()) -> list[Block]:
    """Headers, body, footers.  ``levels``: heading level by style id, from the styles part (style
    ids may be localised, e.g. "1" for 제목 1, so names decide).  The body's pictures go into
    ``units`` for OCR (pictures.py); those of headers and footers (logos) are reported as skipped."""
    blocks = _margin_blocks(document, "header", report)
    body = _XmlWalker(None, levels, track=True, report=report, pictures=[], captions=captions)
    body.walk(document.element.body)
    blocks.extend(body.blocks)
    if body.pictures:
        units.append(PictureUnit(own_text_chars(body.blocks), len(blocks), body.pictures))
    blocks.extend(_margin_blocks(document, "footer", report))
    return blocks


def _picture_loader(document):
    """``load(relationship id)``: the bytes of the picture the body's ``a:blip r:embed`` names."""
    def load(rid: str) -> bytes:
        return document.part.related_parts[rid].blob
    return load


def parse_docx(path: Path, *, max_unzipped_bytes: int = 500 * 1024 * 1024, ocr: OcrOptions | None = None) -> ParsedDocument:
    files = safe_unpack(path, max_unzipped_bytes=max_unzipped_bytes)
    try:
        import docx

        document = docx.Document(io.BytesIO(repack(files)))
        styles = next((data for name, data in files.items() if name.lower().endswith("word/styles.xml")), None)
        report = ParseReport()
        units: list[PictureUnit] = []
        blocks = _docx_blocks(document, heading_levels(styles), report, units, caption_styles(styles))
    except PipelineError:
        raise
    except Exception as exc:  # Strict OOXML, renamed parts, odd packages: read the XML ourselves  # noqa: BLE001 - library boundary
        return _fallback(path, files, f"python-docx could not open it: {type(exc).__name__}: {exc}")
    blocks, ocr_summary = read_pictures(path.name, blocks, units, _picture_loader(document), ocr or OcrOptions(), report)
    # Headings get section names for the blocks that follow them.
    current = None
    named: list[Block] = []
    for block in blocks:
        if block.kind == "heading":
            current = block.text[:120]
        if block.section is None and current is not None and block.kind != "heading":
            block = replace(block, section=current)
        named.append(block)
    return ParsedDocument(format="docx", parser="python-docx" + ("+tesseract" if ocr_summary else ""), blocks=named,
                          metadata={"ocr": ocr_summary} if ocr_summary else {}, report=report)
