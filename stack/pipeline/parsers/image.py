"""Image files (PNG, JPEG, TIFF with any number of pages, BMP): every frame is a page, read by OCR."""

from __future__ import annotations

from pathlib import Path

from stack.contract import ParseReport
from stack.pipeline.document import ParsedDocument
from stack.pipeline.errors import CorruptDocument, NoText
from stack.pipeline.ocr import DPI, OcrOptions, require
from stack.pipeline.parsers.scanned import read_scanned

#: Scans saved at a lower resolution are enlarged to this before OCR (tesseract misreads small
#: Hangul); higher ones are left alone.
_LOW_DPI = 250


def at_ocr_resolution(page, dpi=None):
    """``page`` enlarged to 300 dpi when it says it was saved at less (``dpi``: the file's, when the
    frame itself does not say); as it is otherwise."""
    dpi = page.info.get("dpi") or dpi
    if dpi and 0 < float(dpi[0]) < _LOW_DPI:
        scale = DPI / float(dpi[0])
        page = page.resize((round(page.width * scale), round(page.height * scale)))
    return page


def parse_image(path: Path, options: OcrOptions | None = None) -> ParsedDocument:
    from PIL import Image, UnidentifiedImageError

    options = options or OcrOptions()
    if options.mode == "off":
        raise NoText(
            f"{path.name} is an image: its text can only be read by OCR, and OCR is off (ocr = \"off\").",
            hint="Turn OCR on with: ragctl config set ocr auto",
        )
    require(options.languages, path.name, "is an image")
    try:
        image = Image.open(path)
        pages = getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptDocument(
            f"{path.name} is a damaged or unreadable image ({exc}).",
            hint="Open it in an image viewer and save it again (PNG or TIFF), then add it again.",
        ) from exc

    def frame(number: int):
        def render():
            image.seek(number)
            return at_ocr_resolution(image.copy(), image.info.get("dpi"))
        return render

    findings = ParseReport()
    try:
        frames = ((number + 1, frame(number)) for number in range(pages))
        blocks, summary = read_scanned(path.name, frames, pages, options, findings=findings)
    finally:
        image.close()
    return ParsedDocument(format="image", parser="tesseract", blocks=blocks,
                          metadata={"pages": pages, "ocr": summary}, report=findings)
