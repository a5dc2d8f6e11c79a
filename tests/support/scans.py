"""Scanned pages made here: text laid out on an A4 page in a Korean font (Debian's fonts-nanum),
optionally degraded as real scans are (a slight skew, blur, JPEG artefacts, speckle, upside down).

Used by the OCR tests and by bench/ocr_quality.py and bench/ocr_answers.py, so both read the same
kind of page.
"""

from __future__ import annotations

import random
import warnings
from io import BytesIO
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/nanum/NanumMyeongjo.ttf")
FONT_PACKAGE = "fonts-nanum"
A4_INCHES = (8.27, 11.69)


def font_missing() -> str | None:
    return None if FONT.exists() else f"{FONT} is missing (apt-get install -y {FONT_PACKAGE})"


def require_ocr(suite: str = "OCR") -> None:
    """Skip (fail under CI=true) a test that renders pages and reads them with tesseract, saying what is missing."""
    from stack.pipeline.ocr import missing
    from tests.support.suite import skip_or_fail

    reason = missing("kor+eng") or font_missing()
    if reason:
        skip_or_fail(f"OCR needs tesseract and fonts-nanum: {reason} (scripts/setup-test-host.sh)", suite)


def _wrap(draw, text: str, font, width: int) -> list[str]:
    """Lines of ``text`` that fit ``width``, broken at spaces (Hangul 어절) like a word processor."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def render_pages(paragraphs: list[str], *, dpi: int = 300, point: float = 11.0) -> list:
    """``paragraphs`` set on as many A4 pages as they need (PIL images, grayscale, white)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), round(point * dpi / 72))
    size = (round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi))
    margin = dpi  # one inch
    line_height = round(point * 1.6 * dpi / 72)
    pages, page, draw, y = [], None, None, 0
    for paragraph in paragraphs:
        lines = _wrap(ImageDraw.Draw(Image.new("L", (1, 1))), paragraph, font, size[0] - 2 * margin)
        for line in [*lines, ""]:
            if page is None or y + line_height > size[1] - margin:
                page = Image.new("L", size, 255)
                draw = ImageDraw.Draw(page)
                pages.append(page)
                y = margin
            if line:
                draw.text((margin, y), line, font=font, fill=0)
            y += line_height
    return pages


def degrade(image, *, seed: int = 0, angle: float | None = None):
    """A worse scan of ``image``: turned 1-3 degrees, blurred, speckled, saved as JPEG quality 40."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    angle = angle if angle is not None else rng.choice((-1, 1)) * rng.uniform(1.0, 3.0)
    image = image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(radius=1.0))
    pixels = image.load()
    for _ in range(image.width * image.height // 2000):  # speckle: dust and toner dots
        x, y = rng.randrange(image.width), rng.randrange(image.height)
        pixels[x, y] = 0 if rng.random() < 0.5 else 255
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=40)
    return Image.open(BytesIO(buffer.getvalue())).convert("L")


def upside_down(image):
    return image.rotate(180)


def save_scan(pages: list, path: Path, *, dpi: int = 300) -> Path:
    """Save pages as the file type ``path``'s suffix names: .pdf (image-only), .tif (multi-page),
    .png, .jpg or .bmp (first page)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        pages[0].save(path, format="PDF", resolution=dpi, save_all=True, append_images=pages[1:])
    elif suffix in (".tif", ".tiff"):
        pages[0].save(path, format="TIFF", dpi=(dpi, dpi), save_all=True, append_images=pages[1:],
                      compression="tiff_deflate")
    elif suffix in (".jpg", ".jpeg"):
        pages[0].save(path, format="JPEG", dpi=(dpi, dpi), quality=90)
    else:
        pages[0].save(path, dpi=(dpi, dpi))
    return path


def document_with_picture(path: Path, png: bytes, text: str | None = None) -> Path:
    """A DOCX, HWPX or HWP 5 (by ``path``'s suffix; python-hwpx writes both 한글 formats) holding
    ``text`` (if any) and then the picture ``png`` in a paragraph of its own: a scan pasted into a
    document."""
    if path.suffix.lower() == ".docx":
        import docx

        document = docx.Document()
        if text:
            document.add_paragraph(text)
        document.add_picture(BytesIO(png))
        document.save(str(path))
        return path
    from hwpx import HwpxDocument

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = HwpxDocument.new()
        if text:
            doc.paragraphs[0].text = text
        doc.add_picture(png, "png", width_mm=180, height_mm=50)
        doc.save_to_path(str(path))
    return path
