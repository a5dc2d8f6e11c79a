"""Documents the tests make themselves: a minimal OLE2/CFB writer for HWP 5 headers, HWPX and DOCX
via python-hwpx / python-docx, zip bombs, an encrypted PDF."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

SECTOR = 512
ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
MINI_CUTOFF = 4096


def _dir_entry(
    name: str, kind: int, start: int, size: int, child: int = NOSTREAM, right: int = NOSTREAM
) -> bytes:
    encoded = (name + "\0").encode("utf-16-le")
    return (
        encoded.ljust(64, b"\0")
        + struct.pack("<HBB", len(encoded), kind, 1)
        + struct.pack("<III", NOSTREAM, right, child)
        + b"\0" * 16  # CLSID
        + struct.pack("<I", 0)  # state bits
        + b"\0" * 16  # creation / modified time
        + struct.pack("<IQ", start, size)
    )


def write_cfb(path: Path, streams: dict[str, bytes]) -> Path:
    """Write a minimal version-3 compound file with ``streams`` at the root (no storages).

    Every stream is padded to the 4096-byte mini-stream cutoff so that all live in regular sectors
    (no mini FAT needed); readers take the declared size, so callers see the padding as zeros.
    """
    names = sorted(streams, key=lambda n: (len(n), n.upper()))
    payloads = [streams[n].ljust(MINI_CUTOFF, b"\0") for n in names]
    entries = 1 + len(names)
    dir_sectors = (entries * 128 + SECTOR - 1) // SECTOR
    data_sectors = [(len(p) + SECTOR - 1) // SECTOR for p in payloads]
    total = 1 + dir_sectors + sum(data_sectors)
    assert total <= SECTOR // 4, "minimal writer: one FAT sector only"
    fat = [FREESECT] * (SECTOR // 4)
    fat[0] = FATSECT
    for i in range(dir_sectors):
        fat[1 + i] = 1 + i + 1 if i + 1 < dir_sectors else ENDOFCHAIN
    starts = []
    sector = 1 + dir_sectors
    for count in data_sectors:
        starts.append(sector)
        for j in range(count):
            fat[sector + j] = sector + j + 1 if j + 1 < count else ENDOFCHAIN
        sector += count
    directory = _dir_entry("Root Entry", 5, ENDOFCHAIN, 0, child=1 if names else NOSTREAM)
    for i, (name, payload) in enumerate(zip(names, payloads)):
        right = i + 2 if i + 1 < len(names) else NOSTREAM
        directory += _dir_entry(name, 2, starts[i], len(payload), right=right)
    directory = directory.ljust(dir_sectors * SECTOR, b"\0")
    # Unused directory slots must be empty entries with NOSTREAM siblings.
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIIIIIIII", 0, 1, 1, 0, MINI_CUTOFF, ENDOFCHAIN, 0, ENDOFCHAIN, 0)
    )
    header += struct.pack("<I", 0) + struct.pack("<I", FREESECT) * 108
    assert len(header) == SECTOR
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    body = b"".join(p.ljust(n * SECTOR, b"\0") for p, n in zip(payloads, data_sectors))
    path.write_bytes(header + fat_bytes + directory + body)
    return path


def hwp5_file_header(flags: int = 1, version: tuple[int, int, int, int] = (5, 1, 0, 1)) -> bytes:
    major, minor, build, rev = version
    word = (major << 24) | (minor << 16) | (build << 8) | rev
    return (b"HWP Document File".ljust(32, b"\0") + struct.pack("<II", word, flags)).ljust(256, b"\0")


def make_hwp5_header_only(path: Path, *, flags: int) -> Path:
    """An HWP 5 compound file whose FileHeader carries ``flags`` (bit 1 password, bit 2 배포용)."""
    return write_cfb(path, {"FileHeader": hwp5_file_header(flags), "DocInfo": b"\0" * 64})


def make_legacy_doc(path: Path) -> Path:
    """An OLE2 file that looks like a Word 97-2003 document (a WordDocument stream)."""
    return write_cfb(path, {"WordDocument": b"\xec\xa5" + b"\0" * 200})


def make_hwpx(path: Path, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    from hwpx import HwpxDocument

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = HwpxDocument.new()
        doc.paragraphs[0].text = paragraphs[0]
        for text in paragraphs[1:]:
            doc.add_paragraph(text)
        if table:
            t = doc.add_table(len(table), len(table[0]))
            for r, row in enumerate(table):
                for c, text in enumerate(row):
                    t.set_cell_text(r, c, text)
        doc.save_to_path(str(path))
    return path


def make_hwp_document(path: Path, items: list[tuple]) -> Path:
    """An HWP 5 (path ending in .hwp) or HWPX file from ``items`` in order:
    ("p", text) a plain paragraph; ("h", level, text) a 개요 (outline) paragraph at level 1–10,
    which Hancom numbers "1.", "가.", "1)" …; ("table", rows, caption or None[, merges]) where each
    merge is (first row, first column, last row, last column), merged as Hancom merges cells."""
    from hwpx import HwpxDocument

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = HwpxDocument.new()
        first = True
        for item in items:
            if item[0] == "p" and first:
                doc.paragraphs[0].text = item[1]
            elif item[0] == "p":
                doc.add_paragraph(item[1], para_pr_id_ref=0, style_id_ref=0, inherit_style=False)
            elif item[0] == "h":
                doc.add_heading(item[2], level=item[1])
            elif item[0] == "table":
                rows, caption = item[1], item[2]
                table = doc.add_table(len(rows), len(rows[0]))
                for r, row in enumerate(rows):
                    for c, text in enumerate(row):
                        table.set_cell_text(r, c, text)
                for merge in item[3] if len(item) > 3 else ():
                    table.merge_cells(*merge)
                if caption:
                    table.set_caption(caption)
            first = False
        doc.save_to_path(str(path))
    return path


def make_hwp(path: Path, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    """A real HWP 5 file: python-hwpx writes .hwp when the path ends in .hwp."""
    target = path if path.suffix == ".hwp" else path.with_suffix(".hwp")
    make_hwpx(target, paragraphs, table)
    if target != path:
        target.rename(path)
    return path


def set_hwp5_flags(path: Path, flags: int) -> Path:
    """Rewrite the FileHeader flags of a real HWP 5 file in place (same stream size)."""
    import olefile

    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        header = bytearray(ole.openstream("FileHeader").read())
        struct.pack_into("<I", header, 36, flags)
        ole.write_stream("FileHeader", bytes(header))
    return path


def make_docx(
    path: Path,
    *,
    heading: str = "Title",
    body: str = "Body text.",
    header: str | None = None,
    table: list[list[str]] | None = None,
    nested: bool = False,
    merges: list[tuple[int, int, int, int]] = (),
    header_rows: int = 0,
) -> Path:
    """A DOCX made by python-docx; ``merges`` (first row, first column, last row, last column) are
    merged as Word merges cells (w:gridSpan, w:vMerge); the first ``header_rows`` rows are marked to
    repeat as the header (w:tblHeader)."""
    import docx
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = docx.Document()
    if header:
        document.sections[0].header.paragraphs[0].text = header
    document.add_heading(heading, level=1)
    document.add_paragraph(body)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, text in enumerate(row):
                t.cell(r, c).text = text
        for r1, c1, r2, c2 in merges:
            t.cell(r1, c1).merge(t.cell(r2, c2))
        for row in t.rows[:header_rows]:
            mark = OxmlElement("w:tblHeader")
            mark.set(qn("w:val"), "true")
            row._tr.get_or_add_trPr().append(mark)
        if nested:
            inner = t.cell(0, 0).add_table(rows=1, cols=2)
            inner.cell(0, 0).text = "inner-a"
            inner.cell(0, 1).text = "inner-b"
    document.add_paragraph("After the table.")
    document.save(str(path))
    return path


def add_bomb_member(path: Path, *, name: str, size: int) -> Path:
    """Append a highly compressible member (``size`` zero bytes) to a ZIP container."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as handle:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(size // len(chunk)):
                handle.write(chunk)
    return path


def make_lying_zip_bomb(path: Path, template: Path, *, name: str, real_size: int) -> Path:
    """A ZIP whose central directory declares a small size for a member that inflates to ``real_size``."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(b"\0" * real_size) + compressor.flush()
    out = io.BytesIO()
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
    raw = bytearray(out.getvalue())
    # Append a hand-made member whose headers claim 100 bytes uncompressed.
    local = (
        struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, zlib.crc32(b""), len(data), 100, len(name), 0)
        + name.encode()
    )
    eocd_at = raw.rfind(b"PK\x05\x06")
    eocd = raw[eocd_at:]
    cd_size, cd_offset = struct.unpack_from("<II", eocd, 12)
    entries = struct.unpack_from("<H", eocd, 10)[0]
    central = raw[cd_offset : cd_offset + cd_size]
    body = raw[:cd_offset]
    local_offset = len(body)
    body += local + data
    central_entry = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0,
            zlib.crc32(b""),
            len(data),
            100,
            len(name),
            0,
            0,
            0,
            0,
            0,
            local_offset,
        )
        + name.encode()
    )
    new_central = central + central_entry
    new_eocd = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, entries + 1, entries + 1, len(new_central), len(body), 0
    )
    path.write_bytes(bytes(body + new_central + new_eocd))
    return path


def make_pdf(path: Path, pages: list[str], *, encrypt: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    kwargs = {}
    if encrypt:
        from reportlab.lib.pdfencrypt import StandardEncryption

        kwargs["encrypt"] = StandardEncryption(encrypt, ownerPassword=encrypt + "-owner", canPrint=0)
    c = canvas.Canvas(str(path), pagesize=A4, **kwargs)
    for text in pages:
        y = 800
        for line in text.split("\n"):
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return path


def make_pdf_document(path: Path, items: list[tuple], *, font: str = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
                      page_numbers: bool = False) -> Path:
    """A PDF with a real text layer (fonts-nanum embedded, so Korean is text) from ``items`` in order:
    ("p", text) a paragraph; ("table", rows, merges[, flags]) a table ruled on every cell border,
    where each merge is (first row, first column, last row, last column) and the merged cells' lines
    are not drawn, as a word processor prints a merged cell; flags: "open" (no left and right border),
    "repeat" (a table longer than a page prints its first row again on every page).  A long table
    goes on over the next pages; ``page_numbers`` prints "- N -" at the foot of every page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if "NanumGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("NanumGothic", font))
    style = ParagraphStyle("body", fontName="NanumGothic", fontSize=10, leading=15)
    story: list = []
    for item in items:
        if item[0] == "p":
            story += [Paragraph(item[1], style), Spacer(1, 6)]
        elif item[0] == "table":
            rows, merges = item[1], item[2] if len(item) > 2 else ()
            flags = item[3] if len(item) > 3 else ""
            if "open" in flags:  # no left and right border, as statistics tables print
                rules = [("INNERGRID", (0, 0), (-1, -1), 0.5, (0, 0, 0)), ("LINEABOVE", (0, 0), (-1, 0), 1, (0, 0, 0)),
                         ("LINEBELOW", (0, -1), (-1, -1), 1, (0, 0, 0))]
            else:
                rules = [("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0))]
            commands = [*rules, ("FONT", (0, 0), (-1, -1), "NanumGothic", 9)]
            commands += [("SPAN", (c1, r1), (c2, r2)) for r1, c1, r2, c2 in merges]
            story += [Table(rows, style=TableStyle(commands), repeatRows=1 if "repeat" in flags else 0), Spacer(1, 6)]

    def number(canvas, document) -> None:
        canvas.setFont("NanumGothic", 9)
        canvas.drawCentredString(A4[0] / 2, 30, f"- {document.page} -")

    SimpleDocTemplate(str(path), pagesize=A4).build(story, **(
        {"onFirstPage": number, "onLaterPages": number} if page_numbers else {}))
    return path


def make_image_only_pdf(path: Path) -> Path:
    """A one-page PDF with a drawing and no text layer (what a scan looks like to a text extractor)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.rect(100, 100, 300, 300, fill=1)
    c.showPage()
    c.save()
    return path


PNG_1PX = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)
