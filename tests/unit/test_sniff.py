"""Format sniffing by content, never by extension alone."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from stack.pipeline.errors import CorruptDocument, EmptyFile, UnsupportedFormat
from stack.pipeline.sniff import sniff_file
from tests.support import fixtures_factory as ff

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_file(tmp_path):
    with pytest.raises(EmptyFile) as info:
        sniff_file(write(tmp_path, "a.txt", b""))
    assert info.value.hint


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("안녕하세요 hello".encode(), "utf-8"),
        (codecs.BOM_UTF8 + "안녕하세요".encode(), "utf-8-sig"),
        ("안녕하세요 hello".encode("utf-16"), "utf-16"),
        ("hello world, 안녕".encode("utf-16-le"), "utf-16-le"),
        ("hello world, 안녕".encode("utf-16-be"), "utf-16-be"),
        ("연차 휴가는 15일입니다. 신청은 3일 전까지.".encode("cp949"), "cp949"),
    ],
)
def test_text_encodings(tmp_path, data, encoding):
    sniffed = sniff_file(write(tmp_path, "notes.txt", data))
    assert sniffed.format == "text"
    assert sniffed.encoding == encoding


def test_bomless_utf16_korean_only(tmp_path):
    sniffed = sniff_file(write(tmp_path, "k.txt", "가나다라마바사아자차카타파하".encode("utf-16-le")))
    assert sniffed.encoding == "utf-16-le"


def test_markdown_by_extension_only_for_text(tmp_path):
    assert sniff_file(write(tmp_path, "a.md", b"# Title\n\ntext")).format == "markdown"
    assert sniff_file(write(tmp_path, "a.txt", b"# Title\n\ntext")).format == "text"
    # A PDF named .md is still a PDF.
    pdf = ff.make_pdf(tmp_path / "x.pdf", ["hello"])
    assert sniff_file(write(tmp_path, "b.md", pdf.read_bytes())).format == "pdf"


def test_html_by_content(tmp_path):
    assert (
        sniff_file(write(tmp_path, "page.txt", b"<!DOCTYPE html><html><body>x</body></html>")).format
        == "html"
    )
    assert sniff_file(write(tmp_path, "page", b"  <html><body>x</body></html>")).format == "html"
    assert sniff_file(write(tmp_path, "a.html", b"plain words only")).format == "text"


def test_binary_junk_rejected(tmp_path):
    with pytest.raises(UnsupportedFormat) as info:
        sniff_file(write(tmp_path, "junk.txt", bytes(range(256)) * 8))
    assert "unknown binary" in info.value.message
    assert info.value.hint


def test_control_characters_rejected(tmp_path):
    with pytest.raises(UnsupportedFormat):
        sniff_file(write(tmp_path, "c.txt", b"abc\x01\x02\x03\x04\x05\x06def\x07\x08" * 20))


def test_gif_named_hwp_rejected(tmp_path):
    with pytest.raises(UnsupportedFormat) as info:
        sniff_file(write(tmp_path, "scan.hwp", b"GIF89a" + bytes(64)))
    assert "GIF" in info.value.message


def test_scanned_images_are_images_whatever_their_name(tmp_path):
    """PNG, JPEG, TIFF (both byte orders) and BMP go to OCR; "BM" alone (a text file) does not."""
    bmp = b"BM" + bytes(12) + (40).to_bytes(4, "little") + bytes(40)
    for name, data in [("a.hwp", ff.PNG_1PX), ("b.pdf", b"\xff\xd8\xff\xe0" + bytes(32)),
                       ("c.tif", b"II*\x00" + bytes(32)), ("d", b"MM\x00*" + bytes(32)), ("e.bmp", bmp)]:
        assert sniff_file(write(tmp_path, name, data)).format == "image", name
    assert sniff_file(write(tmp_path, "f.txt", b"BMW and Audi\n")).format == "text"


def test_hwp5_and_legacy_doc(tmp_path):
    assert sniff_file(ff.make_hwp5_header_only(tmp_path / "a.hwp", flags=1)).format == "hwp"
    with pytest.raises(UnsupportedFormat) as info:
        sniff_file(ff.make_legacy_doc(tmp_path / "old.doc"))
    assert ".doc" in info.value.message


def test_hwp5_named_hwpx_is_hwp(tmp_path):
    path = ff.make_hwp(tmp_path / "real.hwp", ["본문"])
    renamed = path.rename(tmp_path / "fake.hwpx")
    assert sniff_file(renamed).format == "hwp"


def test_truncated_ole2_is_corrupt(tmp_path):
    data = ff.make_hwp(tmp_path / "real.hwp", ["본문"] * 20).read_bytes()
    with pytest.raises((CorruptDocument,)):
        sniff_file(write(tmp_path, "cut.hwp", data[:600]))


def test_zip_kinds(tmp_path):
    assert sniff_file(ff.make_hwpx(tmp_path / "a.hwpx", ["가"])).format == "hwpx"
    docx_path = ff.make_docx(tmp_path / "a.docx")
    assert sniff_file(docx_path).format == "docx"
    assert sniff_file(write(tmp_path, "really-docx.pdf", docx_path.read_bytes())).format == "docx"
    import zipfile

    other = tmp_path / "a.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFormat) as info:
        sniff_file(other)
    assert "Excel" in info.value.message


def test_pdf(tmp_path):
    assert sniff_file(ff.make_pdf(tmp_path / "a.bin", ["hi"])).format == "pdf"


def test_shipped_samples():
    expected = {
        "휴가_규정.hwpx": "hwpx",
        "backup-procedure.pdf": "pdf",
        "expense-policy.docx": "docx",
        "deployment-notes.md": "markdown",
    }
    for name, fmt in expected.items():
        assert sniff_file(SAMPLES / name).format == fmt
