"""HWP 5 (.hwp) and HWPX (.hwpx) with python-hwpx; unhwp as the fallback.

HWP 5 files are converted by python-hwpx into HWPX parts in memory, so both formats go through the
same walker over the OWPML section XML and give the same text for the same document: paragraphs,
tables (as rows, nested tables flattened into their cell), captions, text boxes, foot/endnotes,
headers and footers.
"""

from __future__ import annotations

import re
import struct
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from stack.pipeline.document import Block, ParsedDocument, table_block
from stack.pipeline.errors import (
    CorruptDocument,
    DistributionProtected,
    NoText,
    PasswordProtected,
    PipelineError,
)
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.parsers.zipsafe import safe_unpack

# HWP 5 FileHeader property flags (HWP 5.0 spec, "파일 인식 정보").
FLAG_COMPRESSED = 1 << 0
FLAG_PASSWORD = 1 << 1
FLAG_DISTRIBUTION = 1 << 2

#: What unhwp returns instead of the body of a 배포용 document: never index it as text.
DISTRIBUTION_PLACEHOLDERS = ("이 문서는 상위 버전의 배포용 문서입니다", "배포용 문서입니다")

_SECTION_RE = re.compile(r"^Contents/section(\d+)\.xml$", re.IGNORECASE)
_MAX_XML_BYTES = 200 * 1024 * 1024

# Drawing objects whose text lives in hp:drawText / hp:caption sub-lists.
_SHAPES = {
    "rect",
    "ellipse",
    "arc",
    "polygon",
    "curve",
    "line",
    "connectLine",
    "container",
    "pic",
    "ole",
    "textart",
    "compose",
    "video",
    "chart",
    "switch",
    "case",
    "default",
}
_SKIP = {
    "secPr",
    "linesegarray",
    "equation",
    "fieldEnd",
    "markpenEnd",
    "bookmark",
    "pageNum",
    "pageNumCtrl",
    "pageHiding",
    "colPr",
    "newNum",
    "indexmark",
    "parameters",
}
_FORM = {"btn", "checkBtn", "radioBtn", "comboBox", "listBox", "edit", "scrollBar"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


_PASSWORD_HINT = (
    "Open it in Hancom Office (한글), remove the password (보안 → 문서 암호 해제), save, and upload it again."
)
_DIST_HINT = (
    "Ask the author for the original (non-distribution) file, or open it in Hancom Office and save a "
    "copy as PDF, then upload that."
)


def password_error(name: str) -> PasswordProtected:
    return PasswordProtected(
        f"{name} is password-protected (암호가 걸린 문서): its body is encrypted, so its text cannot be "
        "read without the password.",
        hint=_PASSWORD_HINT,
    )


def distribution_error(name: str) -> DistributionProtected:
    return DistributionProtected(
        f"{name} is a distribution-protected document (배포용 문서): Hancom encrypts its body for "
        "viewing only, so its text cannot be extracted.",
        hint=_DIST_HINT,
    )


def _corrupt(name: str, why: str) -> CorruptDocument:
    return CorruptDocument(
        f"{name} cannot be read: {why}. The file is truncated or damaged.",
        hint="Get a fresh copy (an interrupted download?), or open it in Hancom Office and save it again.",
    )


# ------------------------------------------------------------------------------ OWPML walker


class _Walker:
    """Turns OWPML section XML into blocks, in reading order."""

    def __init__(self, section: str | None) -> None:
        self.section = section
        self.blocks: list[Block] = []

    # -- emitting
    def emit(self, text: str, kind: str = "paragraph") -> None:
        text = clean_text(text)
        if text:
            self.blocks.append(Block(text=text, kind=kind, section=self.section))  # type: ignore[arg-type]

    def sublist_text(self, element: ET.Element | None) -> str:
        """All text under a sub-list (cell, note, text box) flattened, one line per paragraph."""
        if element is None:
            return ""
        inner = _Walker(self.section)
        inner.paragraphs(element)
        return "\n".join(block.text for block in inner.blocks)

    # -- structure
    def paragraphs(self, container: ET.Element) -> None:
        """Walk the paragraphs directly under a section or sub-list."""
        for child in container:
            tag = _local(child.tag)
            if tag == "p":
                self.paragraph(child)
            elif tag == "subList":
                self.paragraphs(child)

    def paragraph(self, p: ET.Element) -> None:
        buf: list[str] = []
        after: list[tuple[str, str]] = []
        for run in p:
            rtag = _local(run.tag)
            if rtag != "run":
                if rtag in {"t"}:
                    self.text_element(run, buf)
                continue
            for child in run:
                self.inline(child, buf, after)
        self.emit("".join(buf))
        for text, kind in after:
            self.emit(text, kind)

    def flush(self, buf: list[str]) -> None:
        if buf:
            self.emit("".join(buf))
            buf.clear()

    def inline(self, child: ET.Element, buf: list[str], after: list[tuple[str, str]]) -> None:
        tag = _local(child.tag)
        if tag == "t":
            self.text_element(child, buf)
        elif tag == "tab":
            buf.append("\t")
        elif tag == "lineBreak":
            buf.append("\n")
        elif tag in {"nbSpace", "fwSpace"}:
            buf.append(" ")
        elif tag == "ctrl":
            for item in child:
                self.control(item, buf, after)
        elif tag in {"footNote", "endNote", "header", "footer", "autoNum"}:
            self.control(child, buf, after)
        elif tag == "tbl":
            self.flush(buf)
            self.table(child)
        elif tag in _SHAPES:
            self.flush(buf)
            self.shape(child)
        elif tag == "dutmal":
            main = _child(child, "mainText")
            if main is not None and main.text:
                buf.append(main.text)
        elif tag in _SKIP or tag in _FORM:
            return
        else:
            # Unknown element: keep any paragraphs it holds rather than lose text.
            if any(_local(e.tag) == "p" for e in child.iter()):
                self.flush(buf)
                for sub in child.iter():
                    if _local(sub.tag) == "subList":
                        self.paragraphs(sub)
                        break

    def text_element(self, t: ET.Element, buf: list[str]) -> None:
        if t.text:
            buf.append(t.text)
        for child in t:
            tag = _local(child.tag)
            if tag == "lineBreak":
                buf.append("\n")
            elif tag == "tab":
                buf.append("\t")
            elif tag in {"nbSpace", "fwSpace"}:
                buf.append(" ")
            elif tag in {
                "insertBegin",
                "insertEnd",
                "deleteBegin",
                "deleteEnd",
                "markpenBegin",
                "markpenEnd",
                "hyphen",
                "titleMark",
            }:
                pass
            else:
                self.text_element(child, buf)
            if child.tail:
                buf.append(child.tail)

    def control(self, item: ET.Element, buf: list[str], after: list[tuple[str, str]]) -> None:
        tag = _local(item.tag)
        if tag in {"footNote", "endNote"} or tag == "hiddenComment":
            text = self.sublist_text(_child(item, "subList"))
            if text:
                after.append((text, "note"))
        elif tag in {"header", "footer"}:
            text = self.sublist_text(_child(item, "subList"))
            if text:
                after.append((text, tag))
        elif tag == "autoNum":
            num = item.get("num")
            if num and item.get("numType", "").upper() != "PAGE":
                fmt = _child(item, "autoNumFormat")
                prefix = fmt.get("prefixChar", "") if fmt is not None else ""
                suffix = fmt.get("suffixChar", "") if fmt is not None else ""
                buf.append(f"{prefix}{num}{suffix}")

    def shape(self, element: ET.Element) -> None:
        tag = _local(element.tag)
        caption = _child(element, "caption")
        if tag == "textart":
            text = element.get("text")
            if text:
                self.emit(text)
        draw = _child(element, "drawText")
        if draw is not None:
            for sub in _children(draw, "subList"):
                self.paragraphs(sub)
        for child in element:
            if _local(child.tag) in _SHAPES:
                self.shape(child)
        if caption is not None:
            self.emit(self.sublist_text(_child(caption, "subList")), "caption")

    def table(self, tbl: ET.Element) -> None:
        caption = _child(tbl, "caption")
        caption_text = self.sublist_text(_child(caption, "subList")) if caption is not None else ""
        below = caption is not None and (caption.get("side") or "").upper() == "BOTTOM"
        if caption_text and not below:
            self.emit(caption_text, "caption")
        rows: list[list[str]] = []
        for tr in _children(tbl, "tr"):
            rows.append([self.sublist_text(_child(tc, "subList")) for tc in _children(tr, "tc")])
        block = table_block([[clean_text(cell) for cell in row] for row in rows], section=self.section)
        if block.text:
            self.blocks.append(block)
        if caption_text and below:
            self.emit(caption_text, "caption")


def blocks_from_sections(sections: list[bytes], master_pages: list[bytes] | None = None) -> list[Block]:
    blocks: list[Block] = []
    for index, data in enumerate(sections):
        root = ET.fromstring(data)
        walker = _Walker(f"section {index + 1}")
        walker.paragraphs(root)
        blocks.extend(walker.blocks)
    # 바탕쪽 (master pages): text printed on every page, kept once as header blocks.
    seen: set[str] = set()
    for data in master_pages or []:
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            continue
        walker = _Walker("master page")
        walker.paragraphs(root)
        for block in walker.blocks:
            if block.text not in seen:
                seen.add(block.text)
                blocks.append(Block(text=block.text, kind="header", section="master page", rows=block.rows))
    return blocks


def _master_parts(files: dict[str, bytes]) -> list[bytes]:
    names = sorted(n for n in files if re.match(r"^Contents/masterpage\d+\.xml$", n, re.IGNORECASE))
    return [files[n] for n in names]


def _section_parts(files: dict[str, bytes]) -> list[bytes]:
    numbered = []
    for name in files:
        match = _SECTION_RE.match(name)
        if match:
            numbered.append((int(match.group(1)), name))
    numbered.sort()
    return [files[name] for _, name in numbered]


# ----------------------------------------------------------------------------------- HWP 5


def read_hwp5_flags(path: Path) -> int:
    """The FileHeader property flags of an HWP 5 file (bit 1 password, bit 2 배포용)."""
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            header = ole.openstream("FileHeader").read(256)
    except Exception as exc:
        raise _corrupt(path.name, f"its OLE2 container or FileHeader stream is damaged ({exc})") from exc
    if len(header) < 40 or not header.startswith(b"HWP Document File"):
        raise _corrupt(path.name, "its FileHeader stream is too short or lacks the HWP signature")
    return struct.unpack_from("<I", header, 36)[0]


def _check_unhwp_text(text: str, name: str) -> str:
    if any(marker in text for marker in DISTRIBUTION_PLACEHOLDERS):
        raise distribution_error(name)
    return text


def _unhwp_blocks(path: Path) -> list[Block]:
    import unhwp

    text = _check_unhwp_text(unhwp.extract_text(str(path)), path.name)
    blocks = []
    for para in re.split(r"\n\s*\n", text):
        para = clean_text(para)
        if para and not set(para) <= set("-=_ "):
            blocks.append(Block(text=para))
    return blocks


def parse_hwp5(path: Path, *, max_unzipped_bytes: int = 500 * 1024 * 1024) -> ParsedDocument:
    flags = read_hwp5_flags(path)
    if flags & FLAG_PASSWORD:
        raise password_error(path.name)
    if flags & FLAG_DISTRIBUTION:
        raise distribution_error(path.name)
    data = path.read_bytes()
    parser = "python-hwpx"
    warnings_seen: list[str] = []
    try:
        from hwpx.hwp5.package import convert

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            converted = convert(data)
        warnings_seen = [str(w.message) for w in caught]
        sections = _section_parts(converted.files)
        if sum(len(s) for s in sections) > max_unzipped_bytes:
            raise _corrupt(path.name, "its sections expand past the size limit")
        blocks = blocks_from_sections(sections, _master_parts(converted.files))
    except PipelineError:
        raise
    except Exception as primary:  # python-hwpx failed on this file: try unhwp  # noqa: BLE001 - library boundary
        parser = "unhwp"
        try:
            blocks = _unhwp_blocks(path)
        except PipelineError:
            raise
        except Exception as exc:
            raise _corrupt(path.name, f"python-hwpx failed ({primary}) and so did unhwp ({exc})") from exc
        warnings_seen = [f"python-hwpx failed: {primary}"]
    if not blocks:
        raise NoText(
            f"{path.name} parsed as HWP but contains no text (an empty document, or only images).",
            hint="If the text is in images, OCR is not supported: export text from the original instead.",
        )
    return ParsedDocument(
        format="hwp",
        parser=parser,
        blocks=blocks,
        metadata={"warnings": warnings_seen} if warnings_seen else {},
    )


# ------------------------------------------------------------------------------------ HWPX


def _hwpx_encrypted(files: dict[str, bytes]) -> bool:
    manifest = files.get("META-INF/manifest.xml", b"").lower()
    if b"encryption-data" in manifest or b"encryptiondata" in manifest or b"encrypt" in manifest:
        return True
    for name, payload in files.items():
        if (
            _SECTION_RE.match(name)
            and payload
            and not payload.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<")
        ):
            return True  # a section that is not XML: encrypted bytes
    return False


def parse_hwpx(path: Path, *, max_unzipped_bytes: int = 500 * 1024 * 1024) -> ParsedDocument:
    files = safe_unpack(path, max_unzipped_bytes=max_unzipped_bytes)
    if _hwpx_encrypted(files):
        raise password_error(path.name)
    sections = _section_parts(files)
    parser = "python-hwpx"
    try:
        if not sections:
            raise ValueError("no Contents/section*.xml part")
        blocks = blocks_from_sections(sections, _master_parts(files))
    except ET.ParseError as primary:
        parser = "unhwp"
        try:
            blocks = _unhwp_blocks(path)
        except PipelineError:
            raise
        except Exception as exc:
            raise _corrupt(
                path.name, f"its section XML is malformed ({primary}); unhwp failed too ({exc})"
            ) from exc
    except ValueError as exc:
        raise _corrupt(path.name, str(exc)) from exc
    if not blocks:
        raise NoText(
            f"{path.name} parsed as HWPX but contains no text (an empty document, or only images).",
            hint="If the text is in images, OCR is not supported: export text from the original instead.",
        )
    return ParsedDocument(format="hwpx", parser=parser, blocks=blocks, metadata={})
