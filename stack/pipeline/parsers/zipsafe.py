"""Bounded decompression for ZIP containers (HWPX, DOCX): refuse zip bombs before and while reading."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from stack.pipeline.errors import ArchiveTooLarge, CorruptDocument

#: A deflated XML part rarely compresses better than 1:100; bombs reach 1:1000 and more.
MAX_RATIO = 200
#: Small members may legitimately compress very well (a run of spaces); ratios are judged above this.
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_ENTRIES = 10_000
_CHUNK = 64 * 1024

_HINT = "Open the file in its editor and save it again, or split it; a genuine document is rarely this large."


def _bomb(path_name: str, why: str) -> ArchiveTooLarge:
    return ArchiveTooLarge(
        f"{path_name}: refused to unpack the ZIP container because {why} (a possible zip bomb).",
        hint=_HINT,
    )


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptDocument(
            f"{path.name}: the ZIP container is damaged and cannot be opened ({exc}).",
            hint="The file may be truncated (an interrupted download?). Get a fresh copy and upload it again.",
        ) from exc


def check_archive(zf: zipfile.ZipFile, *, max_unzipped_bytes: int, name: str = "archive") -> int:
    """Check the central directory: entry count, total uncompressed size, per-member ratio.

    Returns the declared total uncompressed size.
    """
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _bomb(name, f"it holds {len(infos)} entries (limit {MAX_ENTRIES})")
    total = 0
    for info in infos:
        total += info.file_size
        if total > max_unzipped_bytes:
            raise _bomb(
                name,
                f"its members declare {total:,} bytes uncompressed, over the {max_unzipped_bytes:,}-byte limit",
            )
        if info.file_size > RATIO_FLOOR_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > MAX_RATIO:
                raise _bomb(
                    name,
                    f"member {info.filename!r} expands {ratio:,.0f}:1 "
                    f"({info.compress_size:,} → {info.file_size:,} bytes; limit {MAX_RATIO}:1)",
                )
    return total


class BoundedReader:
    """Reads members of a checked archive while counting what was really decompressed.

    The central directory can lie about sizes; the running total is enforced on the actual bytes.
    """

    def __init__(self, zf: zipfile.ZipFile, *, max_unzipped_bytes: int, name: str = "archive") -> None:
        self.zf = zf
        self.max_unzipped_bytes = max_unzipped_bytes
        self.name = name
        self.read_bytes = 0
        check_archive(zf, max_unzipped_bytes=max_unzipped_bytes, name=name)

    def read(self, member: str | zipfile.ZipInfo) -> bytes:
        info = member if isinstance(member, zipfile.ZipInfo) else self.zf.getinfo(member)
        out = io.BytesIO()
        try:
            with self.zf.open(info) as handle:
                while True:
                    chunk = handle.read(_CHUNK)
                    if not chunk:
                        break
                    self.read_bytes += len(chunk)
                    out.write(chunk)
                    if self.read_bytes > self.max_unzipped_bytes:
                        raise _bomb(
                            self.name,
                            f"decompressing it produced more than {self.max_unzipped_bytes:,} bytes",
                        )
                    if out.tell() > max(info.file_size, 0) + _CHUNK and out.tell() > RATIO_FLOOR_BYTES:
                        raise _bomb(
                            self.name,
                            f"member {info.filename!r} decompresses past the size its header declares",
                        )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise CorruptDocument(
                f"{self.name}: member {info.filename!r} cannot be decompressed ({exc}).",
                hint="The file may be truncated or damaged. Get a fresh copy and upload it again.",
            ) from exc
        return out.getvalue()


def safe_unpack(path: Path, *, max_unzipped_bytes: int) -> dict[str, bytes]:
    """Read every member of a ZIP container into memory within the limit (checked, then enforced)."""
    with open_zip(path) as zf:
        reader = BoundedReader(zf, max_unzipped_bytes=max_unzipped_bytes, name=path.name)
        return {info.filename: reader.read(info) for info in zf.infolist() if not info.is_dir()}


def repack(members: dict[str, bytes]) -> bytes:
    """Zip already-checked members again (stored for mimetype), so a library reads only verified bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        if "mimetype" in members:
            zf.writestr(zipfile.ZipInfo("mimetype"), members["mimetype"], compress_type=zipfile.ZIP_STORED)
        for name, payload in members.items():
            if name == "mimetype":
                continue
            zf.writestr(name, payload, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
