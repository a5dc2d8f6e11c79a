"""The extracted text and the uploaded bytes: their contracts and the one-host implementations
(files under the project).  The PostgreSQL ones are in :mod:`stack.pipeline.postgres`;
:mod:`stack.pipeline.backends` chooses."""

from __future__ import annotations

import json
import os
import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from stack.pipeline.errors import PipelineError

# Characters no file system (or terminal) likes: controls (C0, DEL, C1), path separators and Windows' reserved set.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|]")
#: A stored name's limit in UTF-8 bytes: file systems allow 255; the rest is headroom (".part", tools' suffixes).
MAX_STORED_NAME_BYTES = 200
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes`` (never half a character)."""
    return text.encode("utf-8")[:max(max_bytes, 0)].decode("utf-8", "ignore")


def safe_file_name(name: str) -> str:
    """The name a file is stored under: the last path component without characters no file system likes,
    cut to ``MAX_STORED_NAME_BYTES`` UTF-8 bytes with its extension kept (the parsers read it for text,
    Markdown and HTML); Korean is kept.  Always a valid, non-empty single path component."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Beyond the unsafe set: nothing unprintable (bidi overrides, zero-width and odd spaces) in a stored name.
    cleaned = "".join(ch if ch.isprintable() else "_" for ch in _UNSAFE.sub("_", base)).strip()
    stem, dot, ext = cleaned.rpartition(".")
    if not dot or not ext or " " in ext or len(ext.encode("utf-8")) > 16:
        stem, ext = cleaned, ""
    stem = stem.strip(" .")  # no hidden files, no names Windows cannot open
    suffix = f".{ext}" if ext else ""
    stem = _cut_utf8(stem, MAX_STORED_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(" .") or "upload"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem + suffix


class ExtractedTexts(ABC):
    """The parser's output of each document: its text, and its blocks and metadata (``data``)."""

    @abstractmethod
    def save(self, document_id: str, file_name: str, text: str, data: dict) -> str:
        """Store a document's text and data (replacing what it had); returns where, for messages."""

    @abstractmethod
    def text(self, document_id: str) -> str | None:
        """The document's extracted text, or None."""

    @abstractmethod
    def data(self, document_id: str) -> dict | None:
        """The document's extracted data (document id, file name, text, blocks, metadata), or None."""

    @abstractmethod
    def delete(self, document_id: str) -> None:
        """Remove what was saved for the document (nothing saved: nothing to do)."""

    @abstractmethod
    def where(self, document_id: str) -> str | None:
        """Where the document's text is kept (a path, or a place in the database), or None: none saved."""


class FolderTexts(ExtractedTexts):
    """``<id>.txt`` and ``<id>.json`` in a folder (``extracted_results/``), as the guide lays it out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, document_id: str, file_name: str, text: str, data: dict) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        text_path = self.folder / f"{document_id}.txt"
        text_path.write_text(text + "\n", encoding="utf-8")
        (self.folder / f"{document_id}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1),
                                                         encoding="utf-8")
        return str(text_path)

    def text(self, document_id: str) -> str | None:
        path = self.folder / f"{document_id}.txt"
        return path.read_text(encoding="utf-8").removesuffix("\n") if path.is_file() else None

    def data(self, document_id: str) -> dict | None:
        path = self.folder / f"{document_id}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def delete(self, document_id: str) -> None:
        for suffix in (".txt", ".json"):
            (self.folder / f"{document_id}{suffix}").unlink(missing_ok=True)

    def where(self, document_id: str) -> str | None:
        path = self.folder / f"{document_id}.txt"
        return str(path) if path.is_file() else None


class BlobMissing(PipelineError, FileNotFoundError):
    """The bytes a reference names are not in the store (deleted, never stored, another store's
    reference).  A FileNotFoundError too, for callers that only ask whether the bytes are there."""

    code = "blob_missing"


class BlobStore(ABC):
    """The uploaded files' bytes, by document id (the SHA-256 of the bytes), where every worker can
    read them: a folder (``data/uploads/<id>/<name>``) on one host, the database with a URL.

    ``put`` returns a reference, what the catalog keeps in ``stored_path``; ``local`` gives a
    path on this host with the bytes (the folder's own file, or a copy in ``scratch``)."""

    @abstractmethod
    def put(self, document_id: str, file_name: str, source: Path) -> str:
        """Store the bytes of ``source`` for the document (the same id: the same bytes, kept once)."""

    def adopt(self, document_id: str, file_name: str, source: Path) -> str:
        """Take ownership of a received temporary file: store its bytes and remove it.  Whatever
        happens, ``source`` is gone afterwards and a failure leaves nothing of it in the store."""
        try:
            return self.put(document_id, file_name, source)
        finally:
            source.unlink(missing_ok=True)

    @abstractmethod
    def exists(self, ref: str) -> bool:
        """Whether the bytes a reference names are stored."""

    @abstractmethod
    def local(self, ref: str, scratch: Path) -> Path:
        """A readable path on this host with the bytes of ``ref`` (in ``scratch`` when copied);
        :class:`BlobMissing` when they are not stored."""

    @abstractmethod
    def where(self, ref: str) -> str:
        """Where the bytes of ``ref`` are (or should be), for messages; never a password."""

    @abstractmethod
    def delete(self, document_id: str) -> None:
        """Remove the document's bytes (none stored: nothing to do)."""


class FolderBlobs(BlobStore):
    """``<uploads>/<document id>/<file name>``: the reference is the file's path, as before."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, document_id: str, file_name: str, source: Path) -> str:
        target = self.folder / document_id / safe_file_name(file_name)  # the name the API stores it under
        if not target.is_file():  # there already: the same bytes (the id is their SHA-256)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        return str(target)

    def adopt(self, document_id: str, file_name: str, source: Path) -> str:
        """Move a received file (on the same file system: ``<uploads>/.incoming``) to
        ``<uploads>/<document id>/<safe name>`` with one rename; on any failure remove the temporary
        file and a folder this call created, so a failed upload leaves nothing behind."""
        target_dir = self.folder / document_id
        created = not target_dir.exists()
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / safe_file_name(file_name)
            os.replace(source, target)
        except BaseException:
            source.unlink(missing_ok=True)
            if created:
                try:
                    target_dir.rmdir()
                except OSError:
                    pass
            raise
        return str(target)

    def exists(self, ref: str) -> bool:
        return bool(ref) and Path(ref).is_file()

    def where(self, ref: str) -> str:
        return ref or str(self.folder)

    def local(self, ref: str, scratch: Path) -> Path:
        if not self.exists(ref):
            raise BlobMissing(f"No stored file at {self.where(ref)}.")
        return Path(ref)

    def delete(self, document_id: str) -> None:
        shutil.rmtree(self.folder / document_id, ignore_errors=True)
