"""Receive multipart uploads as a stream, enforcing the size limit while the bytes arrive.

Starlette's own form parsing spools every file to disk before the route runs, so a 10 GB upload
would be written in full before anyone could refuse it.  Here the request body is parsed as it
streams: each file goes to a temporary file under ``data/uploads/.incoming/`` with its SHA-256
computed on the way, and the first byte past the limit aborts the request (413) and removes every
temporary file of it, so nothing is left half-written.  A received file is then the blob store's
(``pipeline.blobs.adopt``: a rename into ``data/uploads/<id>/`` on one host, the database with
``RAG_DATABASE_URL``); ``.incoming`` is only the API's own scratch.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

from stack.contract import RagError
from stack.pipeline.storage import MAX_STORED_NAME_BYTES, safe_file_name  # noqa: F401 - re-exported

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The longest name a record keeps, in characters (a name is shown, never used as a path).
MAX_DISPLAY_NAME_CHARS = 1000


class UploadError(RagError):
    """An upload the API refuses before any pipeline work (too large, a bad form, intake paused)."""

    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, code=code, http_status=status)


@dataclass
class ReceivedFile:
    file_name: str
    path: Path
    size: int
    sha256: str


@dataclass
class ReceivedForm:
    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        for received in self.files:
            received.path.unlink(missing_ok=True)


def display_name(name: str) -> str:
    """The name a record keeps and users see: the last path component as sent (Korean, brackets, emoji and
    all), with control characters replaced; never used as a path (see ``safe_file_name``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _CONTROL.sub("_", base).strip()
    if len(cleaned) > MAX_DISPLAY_NAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        keep = f"{dot}{ext}" if dot and stem and len(ext) <= 16 else ""
        cleaned = cleaned[:MAX_DISPLAY_NAME_CHARS - len(keep) - 1] + "…" + keep
    return cleaned or "upload"


def relative_name(name: str) -> str:
    """A name that keeps its folders (``policies/leave.hwpx``, as ``ragctl sync`` records a file of a
    synced folder): each part as :func:`display_name` makes it; no empty, '.' or '..' parts."""
    parts = [display_name(part) for part in name.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    return "/".join(parts)[:MAX_DISPLAY_NAME_CHARS] or "upload"


class _Collector:
    """python-multipart callbacks writing file parts to disk and keeping small fields in memory."""

    def __init__(self, incoming: Path, max_bytes: int, form: ReceivedForm) -> None:
        self.incoming, self.max_bytes, self.form = incoming, max_bytes, form
        self.header_field, self.header_value = bytearray(), bytearray()
        self.headers: dict[str, bytes] = {}
        self.handle = None
        self.digest = None
        self.size = 0
        self.field_name: str | None = None
        self.field_value = bytearray()
        self.file_name: str | None = None
        self.temp: Path | None = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self.header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self.headers, self.field_name, self.file_name = {}, None, None
        self.field_value = bytearray()

    def header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = bytes(self.header_value)
        self.header_field, self.header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self.field_name = name
            return
        if name != "files":
            raise UploadError(422, "bad_field", f"File field '{name}' is not accepted; send files as 'files'.")
        self.file_name = display_name(filename.decode("utf-8", "replace"))
        self.temp = self.incoming / f"{uuid.uuid4().hex}.part"
        self.handle = self.temp.open("wb")
        self.digest, self.size = hashlib.sha256(), 0

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.handle is None:
            if len(self.field_value) + len(chunk) > 4096:
                raise UploadError(422, "field_too_long", f"Form field '{self.field_name}' is too long.")
            self.field_value.extend(chunk)
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadError(
                413, "too_large",
                f"{self.file_name} is over the upload limit of {self.max_bytes / 1024 / 1024:.0f} MB.",
                "Split the document, or raise RAG_MAX_UPLOAD_MB (and the proxy's limit with it).",
            )
        self.digest.update(chunk)
        self.handle.write(chunk)

    def part_end(self) -> None:
        if self.handle is None:
            if self.field_name:
                self.form.fields[self.field_name] = self.field_value.decode("utf-8", "replace")
            return
        self.handle.close()
        self.handle = None
        self.form.files.append(ReceivedFile(self.file_name, self.temp, self.size, self.digest.hexdigest()))

    def abort(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)


async def receive_form(request, incoming: Path, max_bytes: int) -> ReceivedForm:
    """Stream a multipart/form-data body into temporary files; raise UploadError on any fault."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise UploadError(415, "not_multipart", "Send the documents as multipart/form-data in the field 'files'.",
                          "curl -F files=@report.hwp …")
    declared = request.headers.get("content-length")
    # Multipart overhead is small; a body far over the limit is refused before reading it.
    if declared and declared.isdigit() and int(declared) > max_bytes * 20 + 1024 * 1024:
        raise UploadError(413, "too_large", f"The request body ({int(declared) / 1024 / 1024:.0f} MB) is over "
                          f"the upload limit of {max_bytes / 1024 / 1024:.0f} MB per file.")
    incoming.mkdir(parents=True, exist_ok=True)
    form = ReceivedForm()
    collector = _Collector(incoming, max_bytes, form)
    parser = MultipartParser(options[b"boundary"], collector.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if collector.handle is not None:  # the body ended inside a file: a cut connection, a broken client
            raise UploadError(400, "bad_multipart", f"The upload of {collector.file_name} was cut short: the body "
                              "ended in the middle of the file.", "send it again")
    except UploadError:
        collector.abort()
        form.discard()
        raise
    except Exception as exc:
        collector.abort()
        form.discard()
        raise UploadError(400, "bad_multipart", f"The multipart body could not be read: {exc}",
                          "send the documents as multipart/form-data: curl -F files=@report.hwp …") from exc
    if not form.files:
        raise UploadError(422, "no_files", "No file in the request: send one or more in the field 'files'.",
                          "curl -F files=@report.hwp …")
    return form
