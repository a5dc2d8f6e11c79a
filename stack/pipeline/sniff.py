"""Decide a file's format from its content, never from its extension alone."""

from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stack.contract import HTML_SUFFIXES, MARKDOWN_SUFFIXES, SUPPORTED_FORMATS
from stack.pipeline.errors import CorruptDocument, EmptyFile, PasswordProtected, UnsupportedFormat

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HWP5_SIGNATURE = b"HWP Document File"
HWPX_MIMETYPE = "application/hwp+zip"
_SAMPLE = 64 * 1024

_HINT_CONVERT = f"Save or export it as one of the supported formats ({SUPPORTED_FORMATS}) and upload that."

# Known binary formats, to name what was uploaded instead of saying only "binary".
#: Images read by OCR (stack/pipeline/parsers/image.py).
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
#: A BMP's info-header sizes (BITMAPCOREHEADER … BITMAPV5HEADER): "BM" alone is too short to trust.
_BMP_INFO_SIZES = (12, 40, 52, 56, 64, 108, 124)
_MAGIC = [
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", None),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", None),
    (b"{\\rtf", "an RTF document"),
    (b"HWP Document File V3", "an HWP 3.x document (Hangul 97 or older)"),
]


@dataclass(frozen=True)
class Sniffed:
    format: str
    encoding: str | None = None


def sniff_file(path: Path, name: str | None = None) -> Sniffed:
    """What ``path`` holds, judged by its bytes.  ``name`` is the file's name as its user knows it (an
    upload waits under a temporary name): messages and the extension hints use it."""
    path = Path(path)
    name = name or path.name
    suffix = Path(name).suffix.lower()
    with open(path, "rb") as handle:
        head = handle.read(_SAMPLE)
    if not head:
        raise EmptyFile(
            f"{name} is empty (0 bytes), so there is no text to index.",
            hint="Check that the upload or copy finished, then add the file again.",
        )
    if head.startswith(OLE2_MAGIC):
        return Sniffed(_sniff_ole2(path, name))
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Sniffed(_sniff_zip(path, name))
    if b"%PDF-" in head[:1024]:
        return Sniffed("pdf")
    if head.startswith(_IMAGE_MAGIC) or (
        head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_INFO_SIZES
    ):
        return Sniffed("image")
    for magic, label in _MAGIC:
        if label and head.startswith(magic):
            raise UnsupportedFormat(
                f"{name} is {label}, not a document format ragctl can read.",
                hint=_HINT_CONVERT,
            )
    encoding = detect_text_encoding(head, complete=len(head) < _SAMPLE)
    if encoding is None:
        raise UnsupportedFormat(
            f"{name} is an unknown binary format: its content is neither a known document "
            "container (HWP, HWPX, PDF, DOCX) nor readable text.",
            hint=_HINT_CONVERT,
        )
    text = head.decode(encoding, errors="ignore")[:4096].lstrip("\ufeff \t\r\n").lower()
    if _looks_like_html(text, suffix):
        return Sniffed("html", encoding)
    if suffix in MARKDOWN_SUFFIXES:
        return Sniffed("markdown", encoding)
    return Sniffed("text", encoding)


def _looks_like_html(text: str, suffix: str) -> bool:
    if text.startswith("<?xml"):
        text = text[text.find("?>") + 2 :].lstrip()
    if text.startswith(("<!doctype html", "<html")):
        return True
    if "<html" in text[:1024] and text.startswith("<"):
        return True
    return bool(
        suffix in HTML_SUFFIXES and any(tag in text for tag in ("<body", "<div", "<p>", "<table", "<head"))
    )


# --------------------------------------------------------------------------------------- OLE2


def _sniff_ole2(path: Path, name: str) -> str:
    import olefile

    try:
        ole = olefile.OleFileIO(str(path))
    except Exception as exc:  # olefile raises OSError and assorted errors on damaged files
        raise CorruptDocument(
            f"{name} looks like an OLE2 compound file (HWP 5, .doc, .xls) but its structure is "
            f"damaged ({exc}).",
            hint="The file may be truncated (an interrupted download?). Get a fresh copy and upload it again.",
        ) from exc
    try:
        if ole.exists("FileHeader"):
            try:
                signature = ole.openstream("FileHeader").read(32)
            except Exception as exc:
                raise CorruptDocument(
                    f"{name}: the HWP FileHeader stream cannot be read ({exc}); the file is damaged.",
                    hint="Get a fresh copy of the file, or open it in Hancom Office and save it again.",
                ) from exc
            if signature.startswith(HWP5_SIGNATURE):
                return "hwp"
            raise UnsupportedFormat(
                f"{name} is an OLE2 compound file with a FileHeader stream that is not HWP 5 "
                f"(signature {signature[:17]!r}).",
                hint=_HINT_CONVERT,
            )
        if ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage"):
            raise PasswordProtected(
                f"{name} is a password-protected (encrypted) Office document (암호 설정 문서); "
                "its content cannot be read without the password.",
                hint="Open it in its editor, remove the password, save it, and upload it again.",
            )
        label = "an OLE2 compound file that is not an HWP document"
        if ole.exists("WordDocument"):
            label = "a legacy Microsoft Word 97-2003 document (.doc)"
        elif ole.exists("Workbook") or ole.exists("Book"):
            label = "a legacy Microsoft Excel 97-2003 workbook (.xls)"
        elif ole.exists("PowerPoint Document"):
            label = "a legacy Microsoft PowerPoint 97-2003 presentation (.ppt)"
        elif ole.exists("__substg1.0_0037001F") or ole.exists("__properties_version1.0"):
            label = "an Outlook message (.msg)"
        raise UnsupportedFormat(
            f"{name} is {label}; this format is not supported.",
            hint="Save it as .docx (Word) or PDF and upload that.",
        )
    finally:
        ole.close()


# ---------------------------------------------------------------------------------------- ZIP


def _sniff_zip(path: Path, name: str) -> str:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptDocument(
            f"{name} starts like a ZIP container (HWPX, DOCX) but its directory cannot be read "
            f"({exc}); the file is truncated or damaged.",
            hint="Get a fresh copy of the file (an interrupted download?) and upload it again.",
        ) from exc
    with zf:
        names = zf.namelist()
        lower = {name.lower() for name in names}
        mimetype = ""
        if "mimetype" in names:
            info = zf.getinfo("mimetype")
            if info.file_size < 256:
                try:
                    mimetype = zf.read("mimetype").decode("ascii", "ignore").strip()
                except Exception:  # noqa: BLE001 - library boundary
                    mimetype = ""
        if mimetype == HWPX_MIMETYPE or any(
            n.startswith("contents/section") and n.endswith(".xml") for n in lower
        ):
            return "hwpx"
        if "contents/content.hpf" in lower:
            return "hwpx"
        if "word/document.xml" in lower:
            return "docx"
        content_types = ""
        if "[Content_Types].xml" in names and zf.getinfo("[Content_Types].xml").file_size < 1024 * 1024:
            try:
                content_types = zf.read("[Content_Types].xml").decode("utf-8", "ignore")
            except Exception:  # noqa: BLE001 - library boundary
                content_types = ""
        if (
            "wordprocessingml.document.main" in content_types
            or "wordprocessingml.template.main" in content_types
        ):
            return "docx"
        label = "a ZIP archive that holds no HWPX or DOCX document"
        if any(n.startswith("xl/") for n in lower) or "spreadsheetml" in content_types:
            label = "an Excel workbook (.xlsx)"
        elif any(n.startswith("ppt/") for n in lower) or "presentationml" in content_types:
            label = "a PowerPoint presentation (.pptx)"
        elif mimetype.startswith("application/vnd.oasis.opendocument"):
            label = f"an OpenDocument file ({mimetype})"
        elif mimetype == "application/epub+zip":
            label = "an EPUB e-book"
        raise UnsupportedFormat(f"{name} is {label}; this format is not supported.", hint=_HINT_CONVERT)


# --------------------------------------------------------------------------------------- text


def _plausible_ratio(text: str) -> float:
    if not text:
        return 0.0
    good = 0
    for ch in text:
        code = ord(ch)
        if (
            ch in "\t\n\r"
            or 0x20 <= code < 0x7F
            or 0xAC00 <= code <= 0xD7A3  # Hangul syllables
            or 0x3130 <= code <= 0x318F  # Hangul compatibility jamo
            or 0x4E00 <= code <= 0x9FFF  # CJK ideographs (Hanja)
            or 0x3000 <= code <= 0x30FF  # CJK punctuation, kana
            or 0xA0 <= code <= 0x24F  # Latin-1, Latin Extended
            or 0x2000 <= code <= 0x27BF  # punctuation, symbols
            or 0xFF00 <= code <= 0xFFEF  # full-width forms
            or code == 0xFEFF
        ):
            good += 1
    return good / len(text)


def _control_ratio(text: str) -> float:
    if not text:
        return 0.0
    bad = sum(1 for ch in text if (ord(ch) < 0x20 and ch not in "\t\n\r\x0c\x1b") or ord(ch) == 0x7F)
    return bad / len(text)


def _decode_sample(data: bytes, encoding: str, complete: bool) -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        return decoder.decode(data, final=complete)
    except (UnicodeDecodeError, LookupError):
        return None


def detect_text_encoding(data: bytes, *, complete: bool = True) -> str | None:
    """The encoding of ``data`` if it is text (UTF-8, UTF-16, CP949), else None (binary)."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        sample = data[: len(data) - (len(data) % 2)]
        nul_even = sample[0::2].count(0)
        nul_odd = sample[1::2].count(0)
        half = max(len(sample) // 2, 1)
        candidates = []
        if nul_odd > 0.2 * half and nul_even < 0.05 * half:
            candidates.append("utf-16-le")
        elif nul_even > 0.2 * half and nul_odd < 0.05 * half:
            candidates.append("utf-16-be")
        elif 0 in data:
            # A few NULs: BOM-less UTF-16 without ASCII (가 is AC 00) or binary; plausibility decides.
            candidates = ["utf-16-le", "utf-16-be"]
        else:
            candidates = ["utf-8", "utf-16-le", "utf-16-be", "cp949"]
    for encoding in candidates:
        chunk = data
        if encoding.startswith("utf-16") and not complete:
            chunk = data[: len(data) - (len(data) % 2)]
        text = _decode_sample(chunk, encoding, complete)
        if text is None:
            continue
        # BOM-less UTF-16 without ASCII: only when nearly every character is plausible text.
        if (
            encoding in ("utf-16-le", "utf-16-be")
            and len(candidates) > 1
            and (_plausible_ratio(text) < 0.97 or len(text) < 2)
        ):
            continue
        if _control_ratio(text) > 0.01:
            return None
        if encoding == "cp949" and _plausible_ratio(text) < 0.9:
            continue
        return encoding
    return None
