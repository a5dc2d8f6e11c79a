"""What the CLI and the stack say to each other: the wire types, with the standard library only;
and the little both sides must do alike: parse ragctl.toml, read an input file safely.

The control plane imports these on a base install (``pip install .``, no ``[stack]`` extra), so
nothing here may import numpy, torch or the pipeline (tests/integration/test_base_install.py).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal

#: The first line of an extractive answer (no LLM configured), by the question's language.
EXTRACTIVE_LABEL_EN = "Extractive answer (no LLM configured): the sentences that best match the question, quoted."
EXTRACTIVE_LABEL_KO = "추출형 답변 (LLM 미설정): 질문과 가장 관련 있는 문장을 그대로 인용합니다."


class RagError(Exception):
    """The one root of every error ragctl and its stack raise (issue #24 item 5).

    ``message`` says what happened and why, ``hint`` the next command to run, ``code`` is stable
    for scripts and the API, ``exit_code`` is the CLI's (README "Exit codes") and ``http_status``
    the API's.  The CLI, the API and the workers read these five and nothing else."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, hint: str | None = None, *, code: str | None = None,
                 exit_code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint
        if code is not None:
            self.code = code
        if exit_code is not None:
            self.exit_code = exit_code
        if http_status is not None:
            self.http_status = http_status

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}


@dataclass
class Source:
    n: int
    file: str
    location: str
    page: int | None
    section: str | None
    document_id: str
    chunk_id: str
    score: float
    text: str
    heading: str | None = None  # the heading path ("제3조(연차 휴가) > ②"); ``location`` shows it


@dataclass
class Answer:
    question: str
    answer: str
    mode: Literal["llm", "extractive"]
    sources: list[Source] = field(default_factory=list)
    model: str | None = None
    #: Source numbers the LLM cited that name no source given to it (outside 1..len(sources));
    #: their markers are removed from ``answer``, so every [n] left in it can be checked.
    invalid_citations: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestResult:
    path: str
    file_name: str
    status: str  # an IngestOutcome: done | skipped | failed | cancelled (queued: handed to the stack)
    document_id: str | None = None
    format: str | None = None
    chunks: int = 0
    seconds: float = 0.0
    error: dict | None = None
    note: str | None = None
    #: What the parser could not read (ParseReport.to_dict()), None when nothing was lost.
    report: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def lost_parts(self) -> bool:
        """True when the parser could not read some parts of the file (``report`` says which)."""
        return bool(ParseReport.from_dict(self.report))


#: Every kind of part a parser can skip, with how a person reads it (plural, for counts).  A parser
#: that learns to detect a new kind adds one line here and calls ``ParseReport.add`` with it.
FINDING_KINDS: dict[str, str] = {
    "image_no_text": "images with no text",
    "ole_object": "embedded objects (OLE) not read",
    "chart": "charts not read",
    "equation": "equations not read",
    "form_control": "form controls not read",
    "media": "video or audio not read",
    "unsupported_control": "unsupported controls",
    "page_no_text": "pages without text",
    "ocr_failed": "page images OCR could not read",
    "ocr_low_confidence": "pages read by OCR with low confidence (check them)",
    "table_truncated": "tables not kept whole as cells (check them)",
    "fallback_parser": "structure lost to a fallback parser",
}

#: At most this many distinct findings are listed per document; the counts stay exact.
MAX_FINDINGS = 200


@dataclass
class ParseFinding:
    """Parts of a file the parser could not turn into text: ``kind`` (a FINDING_KINDS key),
    ``where`` (a citation label: "p. 3", "section 2"; "" for the whole file), ``reason`` (why),
    ``count`` (how many such parts there, e.g. 522 equations in one section)."""

    kind: str
    where: str
    reason: str
    count: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ParseReport:
    """What one file lost on its way to text (issue #26 part 5), stored with its document.

    Parsers call :meth:`add` once per part they skip; parts of one kind, place and reason are
    counted on one finding, so a file of 5,000 images stays a few rows."""

    findings: list[ParseFinding] = field(default_factory=list)
    #: Parts counted after MAX_FINDINGS distinct findings, per kind (not listed, still counted).
    unlisted: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, where: str | None, reason: str, count: int = 1) -> None:
        if kind not in FINDING_KINDS:
            raise ValueError(f"unknown parse finding kind {kind!r}: add it to stack.contract.FINDING_KINDS")
        where = where or ""
        for finding in reversed(self.findings[-8:]):  # parts of one place come together
            if (finding.kind, finding.where, finding.reason) == (kind, where, reason):
                finding.count += count
                return
        if len(self.findings) >= MAX_FINDINGS:
            self.unlisted[kind] = self.unlisted.get(kind, 0) + count
            return
        self.findings.append(ParseFinding(kind, where, reason, count))

    def __bool__(self) -> bool:
        return bool(self.findings) or bool(self.unlisted)

    def counts(self) -> dict[str, int]:
        """How many parts of each kind were lost, in the order first found."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + finding.count
        for kind, n in self.unlisted.items():
            counts[kind] = counts.get(kind, 0) + n
        return counts

    def summary(self) -> str:
        """One line: "images with no text: 3, equations not read: 20" ("" when nothing was lost)."""
        return summarize_counts(self.counts())

    def to_dict(self) -> dict:
        return {"findings": [f.to_dict() for f in self.findings], "unlisted": dict(self.unlisted),
                "counts": self.counts(), "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict | None) -> ParseReport:
        data = data or {}
        findings = [ParseFinding(str(f.get("kind", "")), str(f.get("where", "")), str(f.get("reason", "")),
                                 int(f.get("count") or 1)) for f in data.get("findings") or []]
        return cls(findings, {str(k): int(v) for k, v in (data.get("unlisted") or {}).items()})


def count_lost_parts(reports) -> int:
    """How many of ``reports`` (ParseReport dicts, or None) say that parts of their file were not read."""
    return sum(1 for report in reports if ParseReport.from_dict(report))


def lost_parts_note(reports) -> str | None:
    """The summary line of ``ingest`` and ``sync`` for the files whose ``reports`` (ParseReport dicts,
    or None) say that parts could not be read; None when every file was read whole."""
    lost = count_lost_parts(reports)
    if not lost:
        return None
    which = "1 file had" if lost == 1 else f"{lost} files had"
    return f"{which} parts we could not read: ragctl documents show ID says which and why."


def summarize_counts(counts: dict[str, int]) -> str:
    """"images with no text: 3, equations not read: 20" from kind → count ("" when empty)."""
    return ", ".join(f"{FINDING_KINDS.get(kind, kind)}: {n}" for kind, n in counts.items() if n)


def embedding_summary(where: dict | None) -> str:
    """One line for where a worker encodes, from the ``embedding`` its heartbeat carries (issue #25):
    backend, engine, device, precision and threads, or why it is not known."""
    if not where:
        return "not reported (a worker of an older image)"
    if where.get("error"):
        return f"unknown: {where['error']}"
    return (f"{where.get('backend')} ({where.get('engine')}) on {where.get('device')}, "
            f"{where.get('precision')}, {where.get('threads')} threads")


@dataclass
class CollectionInfo:
    """One collection as ``ragctl collections`` and ``/api/collections`` show it (issue #26).

    ``size`` is the bytes of its stored uploads; ``state`` is ``ready``, or ``deleting`` while a
    deletion runs (or was interrupted: running it again finishes it)."""

    name: str
    description: str | None = None
    documents: int = 0
    chunks: int = 0
    embed_model: str | None = None
    size: int = 0
    created_at: float | None = None
    updated_at: float | None = None
    state: str = "ready"
    default: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# -- error codes (the pipeline's, for bad input or a broken dependency) ------------------------
# Defined here so that the control plane can catch and show them on a base install;
# stack/pipeline/errors.py re-exports them for the pipeline's modules.

class PipelineError(RagError):
    """Bad input or a broken dependency, as the pipeline meets it; the API answers 422 unless the
    kind says otherwise (``http_status``)."""

    http_status = 422
    #: Transient errors (a store or broker that is unreachable) may be retried; bad input never.
    transient = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint)


class EmptyFile(PipelineError):
    code = "empty_file"


class FileTooLarge(PipelineError):
    code = "too_large"


class UnsupportedFormat(PipelineError):
    code = "unsupported_format"
    http_status = 415


class CorruptDocument(PipelineError):
    code = "corrupt"


class PasswordProtected(PipelineError):
    code = "password_protected"


class DistributionProtected(PipelineError):
    """배포용 (distribution) HWP documents: the body is encrypted for viewing only."""

    code = "distribution_protected"


class ArchiveTooLarge(PipelineError):
    """A ZIP container (HWPX, DOCX) that would decompress past the limit: a zip bomb."""

    code = "zip_bomb"


class NoText(PipelineError):
    """The document parsed but holds no text (a scanned PDF without a text layer, say)."""

    code = "no_text"


class OcrUnavailable(PipelineError):
    """A scanned page or an image needs OCR and this machine has no tesseract (or not its language
    models); the hint is the apt-get line that installs it."""

    code = "ocr_unavailable"


class ModelMismatch(PipelineError):
    code = "model_mismatch"
    http_status = 409


class NotFound(PipelineError):
    code = "not_found"
    http_status = 404


class StoreUnavailable(PipelineError):
    code = "store_unavailable"
    http_status = 503
    transient = True


class Cancelled(PipelineError):
    """The caller asked to stop (checked between stages and embedding batches)."""

    code = "cancelled"


# -- questions -------------------------------------------------------------------------------
# One check for every way in (the embedded CLI, the stack's client, the API): an empty or absurdly
# long question gets the same code and message everywhere (exit 2 on the CLI, 422 from the API).

#: The longest question (or search query) accepted, in characters.  Retrieval and the
#: extractive answer use only the first few hundred tokens of a question; anything longer is a
#: document pasted by mistake, not a question.  docs/api.md documents this number.
MAX_QUESTION_CHARS = 4000


class InvalidQuestion(PipelineError):
    """A question that cannot be asked: empty, blank or over the length limit (usage error)."""

    code = "invalid_question"
    exit_code = 2

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def check_question(text: str | None, *, what: str = "question") -> str:
    """Return ``text`` unchanged when it can be asked; raise ``InvalidQuestion`` otherwise."""
    if text is None or not text.strip():
        raise InvalidQuestion(
            "empty_question", "question is empty",
            hint='ask something, e.g. ragctl ask "what is the upload limit?"' if what == "question"
            else 'search for something, e.g. ragctl search "upload limit"',
        )
    if len(text) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(
            "question_too_long",
            f"question is too long: {len(text):,} characters, over the limit of {MAX_QUESTION_CHARS:,}",
            hint=f"ask a shorter {what} (at most {MAX_QUESTION_CHARS:,} characters)",
        )
    return text


# -- supported file types --------------------------------------------------------------------
#: Suffixes that make a text file Markdown or HTML (the content decides between HTML and text).
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
#: What a folder gives ``ragctl ingest`` by default (a file named is always taken; the format is
#: sniffed from its bytes, never from this suffix).
#: Image files read by OCR (a file's content decides its format; these only pick images out of a folder).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
DOCUMENT_SUFFIXES = frozenset(
    {".hwp", ".hwpx", ".pdf", ".docx", ".txt", ".text"} | MARKDOWN_SUFFIXES | HTML_SUFFIXES | IMAGE_SUFFIXES
)
SUPPORTED_FORMATS = "HWP, HWPX, PDF, DOCX, HTML, Markdown, plain text and scanned images (PNG, JPEG, TIFF, BMP)"


# -- documents and passages, as the catalog and retrieval return them -----------------------
@dataclass
class DocumentRecord:
    id: str
    collection: str
    file_name: str
    size: int
    status: str
    stored_path: str | None = None
    format: str | None = None
    parser: str | None = None
    chunks: int = 0
    error_code: str | None = None
    error: str | None = None
    embed_model: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    task_id: str | None = None
    progress: float = 0.0
    log: list[str] = field(default_factory=list)
    worker: str | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    #: What the parser could not read: a ParseReport's dict ({} until the file is parsed).
    report: dict = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    #: Set by Catalog.upsert: True when the write was refused (the record's task was superseded).
    fenced = False

    def to_dict(self) -> dict:
        return asdict(self)

    def note(self, line: str) -> None:
        """Add a line to the short stage log (the last 20 lines are kept)."""
        self.log = [*self.log, f"{time.strftime('%H:%M:%S')} {line}"][-20:]



def location_label(page: int | None, section: str | None, heading: str | None, *, ocr: bool = False) -> str:
    """Citation label: PDF "p. 3" (with " · heading" when known); otherwise the heading path, else
    the section label ("section 1", "header"), else "".  Text read by OCR says so ("p. 3 (OCR)"): a
    reader should know a quote may hold misread characters."""
    if page is not None:
        label = f"p. {page} · {heading}" if heading else f"p. {page}"
    else:
        label = heading or section or ""
    return f"{label} (OCR)" if ocr and label else ("OCR" if ocr else label)


@dataclass
class Hit:
    chunk_id: str
    document_id: str
    text: str
    metadata: dict[str, Any]
    score: float
    bm25: float | None = None
    dense: float | None = None

    @property
    def location(self) -> str:
        return location_label(self.metadata.get("page"), self.metadata.get("section"), self.metadata.get("heading"),
                              ocr=bool(self.metadata.get("ocr")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id, "document_id": self.document_id, "file": self.metadata.get("file_name"),
            "page": self.metadata.get("page"), "section": self.metadata.get("section"),
            "heading": self.metadata.get("heading"), "location": self.location, "score": self.score,
            "bm25": self.bm25, "dense": self.dense, "text": self.text,
        }



# -- names: collections and files --------------------------------------------------------------
class InvalidCollectionName(PipelineError):
    code = "invalid_collection_name"


_VALID_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]{0,506}[a-zA-Z0-9])?$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
#: Chroma wants names of 3+ characters; a shorter ragctl name (``hr``) is kept in Chroma under this
#: prefix (``rc--hr``), which no ragctl name may start with.
SHORT_PREFIX = "rc--"


def validate_collection_name(name: str, hint: str = "ragctl ingest FILE --collection team-docs") -> str:
    """A collection name: 1-508 letters, digits, '.', '_' or '-', starting and ending with a letter or
    digit, no '..', not an IPv4 address, not starting with 'rc--'.  It is also a safe file name, a
    model id's tail (``ragctl/<name>``), and (through :func:`chroma_name`) a Chroma collection's name."""
    if (not isinstance(name, str) or not _VALID_NAME.match(name) or ".." in name or _IPV4.match(name)
            or name.startswith(SHORT_PREFIX)):
        raise InvalidCollectionName(
            f"{name!r} is not a valid collection name: use 1-508 letters, digits, '.', '_' or '-', "
            f"starting and ending with a letter or digit (no '..', no IPv4 address, not starting with '{SHORT_PREFIX}').",
            hint=hint,
        )
    return name


_KINDS = [
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISDIR, "folder"),
    (stat.S_ISLNK, "symlink"),
]


def printable(text: str | os.PathLike) -> str:
    """A name or path as valid Unicode: bytes that are not UTF-8 (``\\udcff`` after ``os`` decoded the
    name) become U+FFFD, so a record, a JSON document or a terminal can always hold it."""
    return os.fspath(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def kind_of(mode: int) -> str:
    """What a ``st_mode`` is, in words: "regular file", "FIFO", "socket", "folder"…"""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((label for test, label in _KINDS if test(mode)), "special file")


# -- API keys ----------------------------------------------------------------------------------
#: Every API key starts with this; the rest is 32 random bytes, URL-safe base64.
API_KEY_PREFIX = "rk_"


def new_key() -> str:
    """A new API key (the stack's key store and the control plane's [[sync]] services both make them)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


# -- the project file --------------------------------------------------------------------------
#: A project is a folder holding this file; the CLI's sections and the services' [settings] both come from it.
PROJECT_FILE = "ragctl.toml"


class ProjectFileError(RagError, ValueError):
    """ragctl.toml cannot be read or is not TOML.  Also a ValueError: the callers of the settings
    already turn a bad configuration (ValueError, pydantic's ValidationError) into their own message."""

    code = "config_invalid"
    exit_code = 2


def read_project_file(root: str | os.PathLike) -> dict[str, Any]:
    """The project's ragctl.toml as a dict, {} when there is none: the one parser of that file, used by
    the control plane (``ragctl.project.ProjectConfig``) and the services (``stack.settings``) alike,
    so that they never disagree on what it says (issue #24 item 6)."""
    import tomllib

    path = Path(root) / PROJECT_FILE
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProjectFileError(f"{path} cannot be read: {exc}", f"fix {path}") from exc


# -- reading an input file safely --------------------------------------------------------------
# Reading one input file safely: whatever is at a path, the caller gets its bytes or one clear error.
#
# Every way a document comes in (the embedded pipeline, ``ragctl extract``, the CLI's upload to a
# stack) reads the file through here, once, into a private copy (a scratch file or a spooled
# buffer), and works on that copy from then on.  So:
#
# - only a *regular* file is ever read.  A FIFO, socket or device is refused from its ``stat``
#   before anything opens it (a FIFO would block the run forever), and the file is opened with
#   ``O_NONBLOCK`` and checked again with ``fstat`` in case it was swapped in between;
# - a file that vanishes, cannot be read (permission denied, I/O error), is a dangling or looping
#   symlink, or is a folder, raises a :class:`PipelineError` naming the file and the reason, so a
#   batch fails that file alone and goes on;
# - a file that changes while it is read (its size or modification time moves, or fewer or more
#   bytes come than ``fstat`` said) is refused rather than indexed half-old, half-new;
# - what is hashed (the document id), parsed and stored are the same bytes.
#
# Here, in the contract, because both sides run it: the CLI reads a file this way before it uploads it.

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


# -- the audit log -----------------------------------------------------------------------------
# One JSON line per action that changes what the stack holds, and who did it: the API writes it
# (stack/audit.py, the writer: one file per process, rotation, retention), the CLI reads it
# (``ragctl audit``) and writes the line of an action it takes itself (``ragctl restore``).
#
# A line has ``time`` (UTC, ISO 8601), ``event``, ``key`` (the key's name, never the key), ``role``,
# ``client`` (its address) and the event's details (document id, file name, collection, key name…);
# ``cut`` lists the details dropped to keep the line short.  Files are
# ``<logs>/audit/audit-<host>-<pid>-<start>.jsonl``: no two processes ever share one.

#: Every event a line may have (``ragctl audit --event`` takes these; :func:`audit_entry` refuses others).
AUDIT_EVENTS = ("upload", "rename", "delete", "cancel", "retry", "restore", "key_create", "key_revoke",
                "collection_create", "collection_delete", "collection_reindex", "question")
#: A line stays below this (bytes, newline included): long details are cut.  Below 4 KB, one
#: ``write`` on an ``O_APPEND`` descriptor is not interleaved with another's.
AUDIT_MAX_LINE = 4000
#: Longest text kept in one detail value.
AUDIT_MAX_VALUE = 500
AUDIT_FILE_GLOB = "audit-*.jsonl"
AUDIT_COMMON = ("time", "event", "key", "role", "client")


def _audit_cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > AUDIT_MAX_VALUE:
        return value[:AUDIT_MAX_VALUE] + "…"
    if isinstance(value, (list, tuple)):
        return [_audit_cut(item) for item in value[:50]]
    if isinstance(value, dict):
        return {str(k)[:64]: _audit_cut(v) for k, v in list(value.items())[:50]}
    return value


def audit_entry(event: str, *, key: str | None, role: str | None, client: str | None,
                **details: Any) -> tuple[dict[str, Any], bytes]:
    """One audit line: the entry and its bytes (newline included, below :data:`AUDIT_MAX_LINE`;
    the biggest details dropped first, and named in ``cut``).  An event not in :data:`AUDIT_EVENTS` is a
    programming error (the reader's ``--event`` would not find it): ValueError."""
    if event not in AUDIT_EVENTS:
        raise ValueError(f"{event!r} is not an audit event: add it to stack.contract.AUDIT_EVENTS")
    entry = {"time": datetime.now(UTC).isoformat(timespec="microseconds"), "event": event, "key": key,
             "role": role, "client": client, **{k: _audit_cut(v) for k, v in details.items() if v is not None}}
    line = json.dumps(entry, ensure_ascii=False, default=str)
    while len(line.encode()) >= AUDIT_MAX_LINE:
        optional = [k for k in entry if k not in AUDIT_COMMON and k != "cut"]
        if not optional:
            break
        biggest = max(optional, key=lambda k: len(json.dumps(entry[k], ensure_ascii=False, default=str)))
        entry["cut"] = [*entry.get("cut", []), biggest]
        del entry[biggest]
        line = json.dumps(entry, ensure_ascii=False, default=str)
    return entry, (line + "\n").encode()


def audit_file_name() -> str:
    """This process's new audit file: host, pid and start time make it its own."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", socket.gethostname())[:64] or "host"
    return f"audit-{host}-{os.getpid()}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.jsonl"


def local_actor() -> dict[str, str]:
    """``key``, ``role`` and ``client`` of an action taken on this machine by the CLI: the OS user."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = str(os.getuid())
    return {"key": f"local:{user}", "role": "operator", "client": f"local:{socket.gethostname()}"}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``90s``, ``15m``, ``1h``, ``7d`` ago, or an ISO time (``2026-11-28T10:00``; UTC unless it says)."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a duration (90s, 15m, 1h, 7d) nor a time (2026-11-28T10:00)") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _audit_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut by a crash mid-write: skipped
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("time"), str):
                    yield entry
    except FileNotFoundError:  # pruned while we read
        return


def read_audit_events(folder: Path, *, since: datetime | None = None,
                      event: str | None = None) -> list[dict[str, Any]]:
    """Every process's lines under ``folder``, merged in time order, filtered by time and event."""
    entries = []
    for path in sorted(folder.glob(AUDIT_FILE_GLOB)) if folder.is_dir() else []:
        for entry in _audit_lines(path):
            try:
                when = datetime.fromisoformat(entry["time"])
            except ValueError:
                continue
            if (since is None or when >= since) and (event is None or entry.get("event") == event):
                entries.append((when, entry))
    entries.sort(key=lambda pair: pair[0])
    return [entry for _, entry in entries]


def write_audit_action(folder: Path, event: str, **details: Any) -> dict[str, Any]:
    """The line of one action the CLI took on this machine (``ragctl restore``), in a file of its own
    (as every process's lines are): a process that records one action needs no writer that stays
    open, rotates and prunes (stack/audit.py's, which the API's processes keep)."""
    entry, line = audit_entry(event, **local_actor(), **details)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / audit_file_name(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
    except OSError as exc:  # the action has happened: say why its line is missing, do not undo it
        import logging

        logging.getLogger("stack.audit").error("audit log not written (%s): %s", exc, line.decode().rstrip())
    return entry
