"""Reading one input file safely: whatever is at a path, the caller gets its bytes or one clear error.

Every way a document comes in (the embedded pipeline, ``ragctl extract``, the CLI's upload to a
stack) reads the file through here, once, into a private copy (a scratch file or a spooled
buffer), and works on that copy from then on.  So:

- only a *regular* file is ever read.  A FIFO, socket or device is refused from its ``stat``
  before anything opens it (a FIFO would block the run forever), and the file is opened with
  ``O_NONBLOCK`` and checked again with ``fstat`` in case it was swapped in between;
- a file that vanishes, cannot be read (permission denied, I/O error), is a dangling or looping
  symlink, or is a folder, raises a :class:`PipelineError` naming the file and the reason, so a
  batch fails that file alone and goes on;
- a file that changes while it is read (its size or modification time moves, or fewer or more
  bytes come than ``fstat`` said) is refused rather than indexed half-old, half-new;
- what is hashed (the document id), parsed and stored are the same bytes.

Light: only the standard library and the pipeline's error types (the CLI imports it).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stack.contract import kind_of, printable
from stack.pipeline.errors import FileTooLarge, NotFound, PipelineError

_BLOCK = 1 << 20
_read = os.read  # the one place bytes are read (tests patch it to change a file mid-read)


class Unreadable(PipelineError):
    """Permission denied, an I/O error: the file is there but its bytes cannot be read."""

    code = "unreadable"


class NotRegularFile(PipelineError):
    """A FIFO, socket, device or folder where a document file was expected."""

    code = "not_regular_file"


class BrokenSymlink(PipelineError):
    """A symlink that points nowhere, or at itself through a loop."""

    code = "broken_symlink"


class FileChanged(PipelineError):
    """The file changed while it was being read: the bytes read are not one version of it."""

    code = "file_changed"




def _not_regular(path: Path, mode: int) -> NotRegularFile:
    kind = kind_of(mode)
    if kind == "folder":
        return NotRegularFile(f"{printable(path.name)} is a folder, not a regular file.",
                              hint="name the folder itself to ingest the files in it")
    return NotRegularFile(f"{printable(path.name)} is not a regular file ({kind}); only regular files are read, "
                          "and it was not opened.", hint="copy the document into a regular file and ingest that")


def os_error(path: Path, exc: OSError) -> PipelineError:
    """The per-file error for an ``OSError`` met while looking at or reading ``path``."""
    name = printable(path.name or str(path))
    code = exc.errno
    if code == errno.ENOENT:
        try:
            target = os.readlink(path)
        except OSError:
            return NotFound(f"{name}: not found (it does not exist, or was removed or renamed before it was read).",
                            hint="check the path, then ingest it again")
        return BrokenSymlink(f"{name} is a dangling symlink: it points to {printable(target)}, which does not exist.",
                             hint="fix or remove the link, or name its target")
    if code == errno.ELOOP:
        return BrokenSymlink(f"{name} is a symlink loop (too many levels of symbolic links).",
                             hint="fix or remove the link")
    if code in (errno.EACCES, errno.EPERM):
        return Unreadable(f"{name}: permission denied (this user cannot read it).",
                          hint=f"check its permissions (ls -l {printable(path)}), then ingest it again")
    if code == errno.ENOTDIR:
        return NotFound(f"{name}: not found (a part of its path is a file, not a folder).", hint="check the path")
    if code == errno.ENAMETOOLONG:
        return NotFound(f"{name}: not found (the name is too long for the file system).", hint="check the path")
    if code == errno.EISDIR:
        return _not_regular(path, stat.S_IFDIR)
    if code == errno.ENXIO:  # opening a socket
        return NotRegularFile(f"{name} is not a regular file (socket or device); only regular files are read.",
                              hint="copy the document into a regular file and ingest that")
    return Unreadable(f"{name} cannot be read: {exc.strerror or exc}.", hint="check the file, then ingest it again")


def too_large(name: str, size: int, max_bytes: int) -> FileTooLarge:
    return FileTooLarge(
        f"{name} is {size / 1024 / 1024:.1f} MB, over the {max_bytes / 1024 / 1024:.0f} MB upload limit.",
        hint="Split the document into smaller files, or raise the limit with RAG_MAX_UPLOAD_MB "
        "(ragctl.toml: max_upload_mb).",
    )


def check_regular(path: Path) -> os.stat_result:
    """``stat`` the file (following symlinks) and refuse anything that is not a regular file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise os_error(path, exc) from exc
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    return info


def copy_to(path: Path, sink: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
    """Copy the regular file at ``path`` into ``sink``; returns (size, SHA-256 hex) of what was copied."""
    path = Path(path)
    check_regular(path)  # a FIFO is refused here, before anything opens it
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise os_error(path, exc) from exc
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):  # swapped for something else since the stat above
            raise _not_regular(path, before.st_mode)
        if max_bytes is not None and before.st_size > max_bytes:
            raise too_large(printable(path.name), before.st_size, max_bytes)
        digest, size = hashlib.sha256(), 0
        while True:
            try:
                block = _read(fd, _BLOCK)
            except OSError as exc:
                raise os_error(path, exc) from exc
            if not block:
                break
            size += len(block)
            if size > before.st_size or (max_bytes is not None and size > max_bytes):
                break  # it grows while we read: reported below
            digest.update(block)
            sink.write(block)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if size != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged(
            f"{printable(path.name)} changed while it was being read ({before.st_size} bytes when opened, "
            f"{after.st_size} after); it was not ingested.",
            hint="wait until whatever writes it has finished, then ingest it again",
        )
    return size, digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """A private copy of an input file: read it, parse it, store it; the original is not read again."""

    path: Path
    size: int
    sha256: str


def snapshot(path: Path, folder: Path, *, max_bytes: int | None = None) -> Snapshot:
    """Copy ``path`` into a new folder under ``folder``, keeping its name (parsers read the suffix)."""
    path = Path(path)
    scratch = Path(tempfile.mkdtemp(prefix="in-", dir=folder))
    try:
        target = scratch / path.name
        try:
            handle = target.open("xb")
        except OSError:  # a name this file system cannot hold (longer, or other bytes): keep the suffix only
            suffix = path.suffix if len(path.suffix.encode(errors="surrogateescape")) < 32 else ""
            target = scratch / f"document{suffix}"
            handle = target.open("xb")
        with handle:
            size, digest = copy_to(path, handle, max_bytes=max_bytes)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Snapshot(target, size, digest)


def discard(snap: Snapshot | None) -> None:
    """Remove a snapshot's private copy (and its folder)."""
    if snap is not None:
        shutil.rmtree(snap.path.parent, ignore_errors=True)


@contextmanager
def spooled(path: Path, *, max_bytes: int | None = None, memory_bytes: int = 8 << 20) -> Iterator[BinaryIO]:
    """The file's bytes in a rewound temporary file (in memory up to ``memory_bytes``): for an upload."""
    with tempfile.SpooledTemporaryFile(max_size=memory_bytes) as buffer:
        copy_to(Path(path), buffer, max_bytes=max_bytes)
        buffer.seek(0)
        yield buffer
