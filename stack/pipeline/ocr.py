"""OCR of page images with tesseract (Debian's ``tesseract-ocr`` with its Korean and English models).

The ``tesseract`` program is called directly, one process per page, with TSV output: word boxes
and confidences, which pytesseract would only wrap and ocrmypdf (whole-PDF, ghostscript, pikepdf)
would hide; measured in docs/benchmarks.md ("OCR").  ``OMP_THREAD_LIMIT=1``: tesseract's OpenMP
threads make a page slower, not faster, on a small worker; parallelism comes from worker processes.

A page goes through orientation detection (tesseract's OSD, ``--psm 0``) and is turned when OSD is
sure, is straightened when scanned at a slant of a few degrees (deskew.py), then recognition in
``--psm 4`` (one column of text of varying sizes: office documents and forms).  A page tesseract
cannot read (timeout, crash) fails that page, never the file.  Transport free: the caller passes progress and cancel as plain callables.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from stack.pipeline.deskew import deskew as straighten
from stack.pipeline.errors import Cancelled, OcrUnavailable

if TYPE_CHECKING:
    from PIL.Image import Image

OcrMode = Literal["auto", "off", "always"]

#: The Debian packages OCR needs, and the one line that installs them.
PACKAGES = ("tesseract-ocr", "tesseract-ocr-kor", "tesseract-ocr-eng")
INSTALL_LINE = "sudo apt-get install -y " + " ".join(PACKAGES)
#: Pages are rasterised at this resolution: tesseract's models are trained on ~300 dpi text.
DPI = 300
#: OSD must be at least this sure before a page is turned (its confidence is an odds-like score;
#: text-poor pages score below 1 and are better left as they are).
_OSD_MIN_CONFIDENCE = 1.5


@dataclass(frozen=True)
class OcrOptions:
    """How OCR runs for one file: the settings' part, plus the caller's progress and cancel."""

    mode: OcrMode = "auto"
    languages: str = "kor+eng"
    page_timeout_s: float = 120.0
    min_confidence: float = 70.0
    #: straighten pages scanned at a slant (deskew.py) before reading; off only to measure it
    deskew: bool = True
    #: on_page(pages done, pages to read): after each page, for an "ocr 12/200" progress stage
    on_page: Callable[[int, int], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    @classmethod
    def from_settings(cls, settings, **callbacks) -> OcrOptions:
        return cls(mode=settings.ocr, languages=settings.ocr_languages, page_timeout_s=settings.ocr_page_timeout_s,
                   min_confidence=settings.ocr_min_confidence, **callbacks)


@dataclass(frozen=True)
class OcrLine:
    text: str
    left: int
    right: int
    confidences: tuple[float, ...] = ()  # its words' confidences (0-100)


@dataclass
class OcrPage:
    """What tesseract read on one page: paragraphs of lines, the words' mean confidence, the turn."""

    page: int
    paragraphs: list[list[OcrLine]] = field(default_factory=list)
    confidence: float | None = None  # mean word confidence, 0-100; None when no word was read
    words: int = 0
    rotated: int = 0  # degrees the page was turned (clockwise) before reading
    deskewed: float = 0.0  # degrees its skew was (counter-clockwise; the page was turned back by as much)
    seconds: float = 0.0
    tesseract_seconds: float = 0.0  # of ``seconds``, spent waiting for tesseract (OSD and reading)
    error: str | None = None  # why the page could not be read (the file goes on)

    def summary(self) -> dict:
        data = {"page": self.page, "confidence": self.confidence, "words": self.words, "rotated": self.rotated,
                "deskewed": self.deskewed, "seconds": round(self.seconds, 3), "tesseract_seconds": round(self.tesseract_seconds, 3)}
        return data | ({"error": self.error} if self.error else {})


# --------------------------------------------------------------------------- is tesseract there


def missing(languages: str = "kor+eng") -> str | None:
    """Why OCR cannot run here (no ``tesseract``, or a language model missing), or None when it can."""
    return _missing(shutil.which("tesseract"), languages)


@lru_cache(maxsize=8)
def _missing(binary: str | None, languages: str) -> str | None:
    if binary is None:
        return "the tesseract program is not installed"
    try:
        listed = subprocess.run([binary, "--list-langs"], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"tesseract could not be run ({exc})"
    have = {line.strip() for line in (listed.stdout + listed.stderr).splitlines()[1:] if line.strip()}
    lacking = [lang for lang in languages.split("+") if lang and lang not in have]
    if lacking:
        return "tesseract has no model for " + ", ".join(lacking)
    return None


def require(languages: str, file_name: str, what: str) -> None:
    """Raise :class:`OcrUnavailable` (with the apt-get line) when ``what`` in ``file_name`` needs OCR
    that this machine cannot do."""
    reason = missing(languages)
    if reason:
        raise OcrUnavailable(
            f"{file_name} {what}, so it needs OCR, and {reason}.",
            hint=f"Install OCR with: {INSTALL_LINE}   (then add the file again; `ragctl doctor` checks it)",
        )


# --------------------------------------------------------------------------------- one page


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


#: Seconds spent in tesseract processes by this thread's current page (bench/ocr_quality.py reads the share).
_spent = threading.local()


def _run(args: list[str], image_bytes: bytes, timeout_s: float) -> str:
    started = time.perf_counter()
    try:
        return _call(args, image_bytes, timeout_s)
    finally:
        _spent.seconds = getattr(_spent, "seconds", 0.0) + time.perf_counter() - started


def _call(args: list[str], image_bytes: bytes, timeout_s: float) -> str:
    done = subprocess.run(["tesseract", "stdin", "stdout", *args], input=image_bytes, capture_output=True,
                          check=False, timeout=timeout_s, env=_env())
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(said[-1] if said else f"tesseract exited with status {done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _encode(image: Image) -> bytes:
    """The page as uncompressed PNM (tesseract reads it from stdin; no PNG encode per page)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    return buffer.getvalue()


def orientation(image_bytes: bytes, timeout_s: float) -> int | None:
    """Degrees (0, 90, 180, 270; clockwise) the page must turn to be upright, by tesseract's OSD;
    None when OSD cannot tell (too few characters: a line or two)."""
    try:
        out = _run(["--psm", "0", "-l", "osd"], image_bytes, timeout_s)
    except (RuntimeError, subprocess.SubprocessError, OSError):
        return None
    values = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    try:
        rotate = int(values.get("Rotate", "0").strip())
        confidence = float(values.get("Orientation confidence", "0").strip())
    except ValueError:
        return None
    return rotate if rotate in (90, 180, 270) and confidence >= _OSD_MIN_CONFIDENCE else 0


def read_page(image: Image, page: int, *, languages: str = "kor+eng", timeout_s: float = 120.0,
              min_confidence: float = 70.0, deskew: bool = True) -> OcrPage:
    """OCR one page image: turned upright when OSD says so, straightened when scanned at a slant
    (``deskew``), then read line by line.  A page too short for OSD that reads badly is read upside
    down too, and the better reading kept."""
    started = time.perf_counter()
    _spent.seconds = 0.0
    result = OcrPage(page=page)
    try:
        image = image.convert("L")
        data = _encode(image)
        turn = orientation(data, timeout_s)
        if turn:
            image = image.rotate(-turn, expand=True)  # PIL turns counter-clockwise
            data = _encode(image)
            result.rotated = turn
        if deskew:
            image, result.deskewed = straighten(image)
            if result.deskewed:
                data = _encode(image)
        args = ["-l", languages, "--psm", "4", "--dpi", str(DPI), "tsv"]
        _fill(result, _run(args, data, max(timeout_s - (time.perf_counter() - started), 1.0)))
        if turn is None and (result.confidence or 0.0) < min_confidence:
            turned = OcrPage(page=page, rotated=180, deskewed=result.deskewed)
            tsv = _run(args, _encode(image.rotate(180)), max(timeout_s - (time.perf_counter() - started), 1.0))
            _fill(turned, tsv)
            if (turned.confidence or 0.0) > (result.confidence or 0.0):
                result = turned
    except subprocess.TimeoutExpired:
        result.error = f"tesseract took longer than the page limit of {timeout_s:.0f} s"
    except (RuntimeError, OSError, ValueError) as exc:
        result.error = f"tesseract could not read the page ({exc})"
    result.seconds = time.perf_counter() - started
    result.tesseract_seconds = _spent.seconds
    return result


def _fill(page: OcrPage, tsv: str) -> None:
    """Group TSV words into lines and paragraphs (tesseract's block/paragraph/line numbers)."""
    paragraphs: dict[str, dict[tuple[str, str], list]] = {}
    confidences: list[float] = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        confidence = max(float(row["conf"]), 0.0)
        confidences.append(confidence)
        left, width = int(row["left"]), int(row["width"])
        # By block, not tesseract's paragraphs (it splits a paragraph at a short line or a hanging
        # indent): the wrap rule in parsers/scanned.py finds where paragraphs end.
        lines = paragraphs.setdefault(row["block_num"], {})
        lines.setdefault((row["par_num"], row["line_num"]), []).append((text, left, left + width, confidence))
    for lines in paragraphs.values():
        page.paragraphs.append([
            OcrLine(" ".join(w[0] for w in words), min(w[1] for w in words), max(w[2] for w in words),
                    tuple(w[3] for w in words))
            for words in lines.values()
        ])
    page.words = len(confidences)
    page.confidence = round(sum(confidences) / len(confidences), 1) if confidences else None


# ------------------------------------------------------------------------------- many pages


def read_pages(pages: Iterable[tuple[int, Callable[[], Image]]], total: int, options: OcrOptions) -> Iterator[OcrPage]:
    """OCR ``pages`` ((page number, a function giving its image)) in order, with progress after
    each and the cancel checked before each.  A page whose image cannot be made or read comes back
    with its ``error``; the others go on."""
    for done, (number, render) in enumerate(pages):
        if options.should_cancel is not None and options.should_cancel():
            raise Cancelled(f"OCR was cancelled at page {number} ({done} of {total} pages read).")
        try:
            image = render()
        except Exception as exc:  # noqa: BLE001 - a damaged page image fails that page only
            yield OcrPage(page=number, error=f"the page image could not be made ({type(exc).__name__}: {exc})")
        else:
            yield read_page(image, number, languages=options.languages, timeout_s=options.page_timeout_s,
                            min_confidence=options.min_confidence, deskew=options.deskew)
        if options.on_page is not None:
            options.on_page(done + 1, total)


def report(pages: list[OcrPage], options: OcrOptions) -> dict:
    """What a document's metadata keeps about its OCR: each page's confidence, the pages under the
    threshold (a reader should check them), and the pages that failed."""
    return {
        "engine": "tesseract",
        "languages": options.languages,
        "dpi": DPI,
        "min_confidence": options.min_confidence,
        "pages": [page.summary() for page in pages],
        "low_confidence_pages": [page.page for page in pages
                                 if page.confidence is not None and page.confidence < options.min_confidence],
        "failed_pages": [page.page for page in pages if page.error],
    }
