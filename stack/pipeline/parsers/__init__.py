"""Parse any supported file into a :class:`ParsedDocument`: size check, sniff by content, dispatch."""

from __future__ import annotations

from pathlib import Path

from stack.pipeline.document import ParsedDocument
from stack.pipeline.errors import EmptyFile, FileTooLarge, NoText
from stack.pipeline.ocr import OcrOptions
from stack.pipeline.parsers.clean import clean_text
from stack.pipeline.sniff import Sniffed, sniff_file

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UNZIPPED_BYTES = 500 * 1024 * 1024

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_UNZIPPED_BYTES", "check_size", "clean_text", "parse_file"]


def parse_file(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    ocr: OcrOptions | None = None,
) -> ParsedDocument:
    """Parse ``path`` (any supported format, decided by content) into ordered blocks; scanned PDF
    pages, image files and the pictures of HWP/HWPX/DOCX sections with no text of their own are
    read by OCR as ``ocr`` says (default: ``auto``, no progress).

    Raises a :class:`~stack.pipeline.errors.PipelineError` subclass for every bad input.
    """
    path = Path(path)
    size = check_size(path, max_bytes)
    if size == 0:
        raise EmptyFile(
            f"{path.name} is empty (0 bytes), so there is no text to index.",
            hint="Check that the upload or copy finished, then add the file again.",
        )
    sniffed = sniff_file(path)
    document = _dispatch(path, sniffed, max_unzipped_bytes=max_unzipped_bytes, ocr=ocr)
    document.metadata.setdefault("filename", path.name)
    if sniffed.encoding:
        document.metadata.setdefault("encoding", sniffed.encoding)
    if not any(block.text.strip() for block in document.blocks):
        raise NoText(
            f"{path.name} was read as {sniffed.format.upper()} but holds no text"
            + (f" (only {document.report.summary()})." if document.report else "."),
            hint="Check the file has text; pictures inside HWP, HWPX and DOCX files are read by OCR only where "
            "their section has no text of its own (ocr = \"auto\"; \"always\" reads them all).",
        )
    return document


def check_size(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """The file's size in bytes; FileTooLarge over the limit (checked before anything reads it)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise FileTooLarge(
            f"{path.name} is {size / 1024 / 1024:.1f} MB, over the {max_bytes / 1024 / 1024:.0f} MB upload limit.",
            hint="Split the document into smaller files, or raise the limit with RAG_MAX_UPLOAD_MB "
            "(ragctl.toml: max_upload_mb).",
        )
    return size


def _dispatch(path: Path, sniffed: Sniffed, *, max_unzipped_bytes: int, ocr: OcrOptions | None) -> ParsedDocument:
    fmt = sniffed.format
    if fmt == "hwp":
        from stack.pipeline.parsers.hwp import parse_hwp5

        return parse_hwp5(path, max_unzipped_bytes=max_unzipped_bytes, ocr=ocr)
    if fmt == "hwpx":
        from stack.pipeline.parsers.hwp import parse_hwpx

        return parse_hwpx(path, max_unzipped_bytes=max_unzipped_bytes, ocr=ocr)
    if fmt == "pdf":
        from stack.pipeline.parsers.pdf import parse_pdf

        return parse_pdf(path, ocr)
    if fmt == "image":
        from stack.pipeline.parsers.image import parse_image

        return parse_image(path, ocr)
    if fmt == "docx":
        from stack.pipeline.parsers.docx import parse_docx

        return parse_docx(path, max_unzipped_bytes=max_unzipped_bytes, ocr=ocr)
    from stack.pipeline.parsers.text import parse_text

    return parse_text(path, sniffed)
