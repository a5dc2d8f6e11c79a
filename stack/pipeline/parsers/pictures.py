"""Pictures inside HWP, HWPX and DOCX files, read by OCR when their part of the document has no text
of its own: a scanned page pasted into a 한글 or Word file (a signed 공문, a faxed form) is the whole
document, while a logo or a photo beside real text is decoration that OCR would only add noise to.

"No text of its own": the section (HWP/HWPX) or the body (DOCX) holds fewer than
:data:`MIN_OWN_TEXT` characters besides its pictures.  ``ocr = "always"`` reads every picture, ``off``
none.  A picture read becomes blocks (``ocr: true``, its words' mean confidence, the section and
heading it sits under) after its section's own text; a picture not read stays in the parse report
as ``image_no_text``, with why.  The parsers collect :class:`Picture` objects; this module decides
and reads.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stack.contract import ParseReport
from stack.pipeline.document import Block
from stack.pipeline.ocr import OcrOptions, missing, require

#: A section with fewer characters than this (spaces not counted) besides its pictures has no text
#: of its own: a title line over a scanned page ("붙임 1") still counts as none.
MIN_OWN_TEXT = 20

#: Pictures smaller than this (pixels, as stored) or thinner than _MIN_SIDE are icons, bullets and
#: rules: too small to hold a readable line of text, and each would cost a tesseract run.
_MIN_PIXELS = 10_000
_MIN_SIDE = 16

_NOT_READ = "a picture: text inside an image is not read"


@dataclass(frozen=True)
class Picture:
    """One picture in reading order: the part of the file holding it (None when the file names a
    picture it does not hold), the section and heading it sits under, and a label for findings."""

    part: str | None
    where: str
    section: str | None = None
    heading: str | None = None


@dataclass
class PictureUnit:
    """A section (HWP/HWPX) or body (DOCX): its own text, its pictures, and where its blocks end
    (the index in the document's blocks after which its pictures' text goes)."""

    own_text: str
    end: int
    pictures: list[Picture] = field(default_factory=list)


def own_text_chars(blocks: list[Block]) -> str:
    return "".join("".join(block.text.split()) for block in blocks)


def _wanted(unit: PictureUnit, options: OcrOptions) -> bool:
    if options.mode == "off" or not unit.pictures:
        return False
    return options.mode == "always" or len(unit.own_text) < MIN_OWN_TEXT


def read_pictures(
    name: str, blocks: list[Block], units: list[PictureUnit], load: Callable[[str], bytes],
    options: OcrOptions, findings: ParseReport,
) -> tuple[list[Block], dict]:
    """``blocks`` with the text OCR read from the pictures of ``units`` that have no text of their
    own inserted after each unit's own blocks, and the OCR report for the metadata ({} when no
    picture was read).  ``load(part)`` gives a picture's bytes (from the safely unpacked file).

    Raises OcrUnavailable (with the apt-get line) when the document has no text at all and its
    pictures need an OCR this machine lacks; with some text, those pictures are only reported."""
    wanted = [unit for unit in units if _wanted(unit, options)]
    for unit in units:
        if not any(unit is chosen for chosen in wanted):
            why = (_NOT_READ + " (ocr = \"off\")" if options.mode == "off" else
                   _NOT_READ + ": its section has text of its own, so its pictures are not read by OCR "
                   "(ocr = \"always\" reads them)")
            for picture in unit.pictures:
                findings.add("image_no_text", picture.where, why)
    if not wanted:
        return blocks, {}
    reason = missing(options.languages)
    if reason:
        if not any(block.text.strip() for block in blocks):
            require(options.languages, name, "holds its text only in pictures")
        for unit in wanted:
            for picture in unit.pictures:
                findings.add("image_no_text", picture.where, f"{_NOT_READ}: OCR would read it, but {reason}")
        return blocks, {}
    from stack.pipeline.parsers.scanned import read_scanned

    # (unit index, picture) of those worth a tesseract run; icons and rules are reported instead
    chosen: list[tuple[int, Picture]] = []
    for index, unit in enumerate(wanted):
        for picture in unit.pictures:
            small = _too_small(picture, load)
            if small:
                findings.add("image_no_text", picture.where, f"{_NOT_READ}: {small}")
            else:
                chosen.append((index, picture))
    if not chosen:
        return blocks, {}
    pictures = [picture for _, picture in chosen]
    label = {number: f"{picture.where}, picture {number}" if picture.where else f"picture {number}"
             for number, picture in enumerate(pictures, 1)}
    read, summary = read_scanned(
        name, ((number, _image(picture, load)) for number, picture in enumerate(pictures, 1)), len(pictures),
        options, empty_ok=True, findings=findings, where=label.__getitem__,
    )
    summary["pictures"] = [{"picture": number, "part": picture.part, "where": picture.where}
                           for number, picture in enumerate(pictures, 1)]
    by_unit: dict[int, list[Block]] = {}
    for block in read:  # a picture's blocks carry its number as "page": give them its place instead
        index, picture = chosen[block.page - 1]
        by_unit.setdefault(index, []).append(
            replace(block, page=None, section=picture.section, heading=picture.heading))
    failed = {page["page"] for page in summary["pages"] if page.get("error")}
    found = {block.page for block in read}
    for number in range(1, len(pictures) + 1):
        if number not in found and number not in failed:
            findings.add("image_no_text", label[number], "OCR found no text in the picture")
    out = list(blocks)
    for index in sorted(by_unit, reverse=True):  # from the end, so that earlier insertion points stay put
        out[wanted[index].end:wanted[index].end] = by_unit[index]
    return out, summary


def _too_small(picture: Picture, load: Callable[[str], bytes]) -> str | None:
    """Why ``picture`` is not worth reading (too small to hold text), or None (also when it cannot
    be opened: reading it then fails it with the reason)."""
    from PIL import Image

    try:
        width, height = Image.open(io.BytesIO(load(picture.part or ""))).size
    except Exception:  # noqa: BLE001 - any unreadable picture: its OCR attempt reports why
        return None
    if width * height < _MIN_PIXELS or min(width, height) < _MIN_SIDE:
        return f"{width}×{height} pixels, too small to hold a readable line of text"
    return None


def _image(picture: Picture, load: Callable[[str], bytes]):
    def render():
        from PIL import Image

        from stack.pipeline.parsers.image import at_ocr_resolution

        if picture.part is None:
            raise ValueError("the file names this picture but does not hold its image")
        image = Image.open(io.BytesIO(load(picture.part)))
        image.load()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels are stored black more often than not: lay the picture on white paper.
            rgba = image.convert("RGBA")
            paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(paper, rgba).convert("RGB")
        return at_ocr_resolution(image)
    return render
