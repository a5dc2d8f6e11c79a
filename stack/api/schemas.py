"""The API's request and response bodies: its OpenAPI schema is the contract clients rely on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from stack.pipeline.questions import MAX_QUESTION_CHARS

if TYPE_CHECKING:
    from stack.pipeline.catalog import DocumentRecord

#: stack.names.DocumentStatus, spelled out so the OpenAPI schema keeps its inline enum (a test checks they agree).
Status = Literal["queued", "parsing", "chunking", "embedding", "storing", "done", "failed", "cancelled"]


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class FindingOut(BaseModel):
    kind: str = Field(description="What was not read (or read by OCR with low confidence): a key of "
                                  "stack.contract.FINDING_KINDS (image_no_text, ole_object, chart, equation, "
                                  "form_control, page_no_text, ocr_failed, ocr_low_confidence, "
                                  "table_truncated, …).")
    where: str = Field(description="Where in the file: 'p. 3', 'section 2' or a heading path; '' for the whole file.")
    reason: str
    count: int = 1


class ParseReportOut(BaseModel):
    """What the parser could not read in this file (empty until it is parsed, and when nothing was lost)."""

    findings: list[FindingOut] = []
    unlisted: dict[str, int] = Field(default={}, description="Parts counted past the listing cap, by kind.")
    counts: dict[str, int] = Field(default={}, description="Parts not read, by kind.")
    summary: str = ""


class DocumentOut(BaseModel):
    id: str
    collection: str
    file_name: str
    status: Status
    progress: float = Field(ge=0, le=1)
    chunks: int
    size: int
    format: str | None = None
    parser: str | None = None
    error_code: str | None = None
    error: str | None = None
    log: list[str] = []
    timings: dict[str, float] = {}
    task_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    embed_model: str | None = None
    heartbeat_at: float | None = None
    report: ParseReportOut = Field(default_factory=ParseReportOut)
    created_at: float
    updated_at: float


class TaskOut(DocumentOut):
    document_id: str
    status_url: str


class Registered(BaseModel):
    document_id: str
    task_id: str | None
    status: Status
    status_url: str | None
    file_name: str
    duplicate: bool = Field(description="The same bytes were already ingested (or queued); nothing new was queued.")


class UploadResponse(BaseModel):
    documents: list[Registered]


class ExtractedTextOut(BaseModel):
    document_id: str
    file_name: str
    where: str | None = Field(default=None, description="Where the stack keeps the text (a file under "
                              "extracted_results/, or its database); null: none kept (not parsed yet, or failed).")
    text: str | None = Field(default=None, description="The parser's text of the whole document; null: none kept.")


class ChunkOut(BaseModel):
    chunk_id: str
    text: str
    page: int | None = None
    section: str | None = None
    heading: str | None = Field(default=None, description="Heading path, parts joined by ' > '.")


# Checked by the pipeline (stack.pipeline.questions), not here, so that the API, the embedded CLI and the
# stack's client refuse a blank or over-long question with one code and message.
QUESTION_RULE = (f"Not blank, at most {MAX_QUESTION_CHARS} characters; otherwise 422 with code "
                 "`empty_question` or `question_too_long`.")


class SearchRequest(BaseModel):
    query: str = Field(description=QUESTION_RULE, json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS})
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    collection: str | None = Field(default=None, min_length=1, max_length=508,
                                      pattern=r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")


class HitOut(BaseModel):
    rank: int
    chunk_id: str
    document_id: str
    file: str | None
    page: int | None
    section: str | None
    heading: str | None = Field(default=None, description="Heading path, parts joined by ' > '.")
    location: str = Field(default="", description="Citation label: 'p. 3', 'p. 3 · 2. Method', or the heading path.")
    score: float
    bm25: float | None
    dense: float | None
    text: str


class SearchResponse(BaseModel):
    query: str
    mode: str
    hits: list[HitOut]


class AskRequest(BaseModel):
    question: str = Field(description=QUESTION_RULE, json_schema_extra={"minLength": 1, "maxLength": MAX_QUESTION_CHARS})
    top_k: int | None = Field(default=None, ge=1, le=50)
    collection: str | None = Field(default=None, min_length=1, max_length=508,
                                      pattern=r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")
    stream: bool = Field(default=False, description="Server-sent events when an LLM is configured.")
    generation: int | None = Field(default=None, ge=0, description="Ask a given generation of the collection's "
                                   "index (a reindex's new one, before it is swapped in: the gate); default: the "
                                   "live one.")


class Health(BaseModel):
    status: Literal["ok"]
    instance: str


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, str]
    failing: list[str]
    workers: list[str]
    #: Where each live worker encodes (backend, engine, device, precision, threads): issue #25.
    embedding: dict[str, dict | None] = {}


def document_out(record: DocumentRecord) -> DocumentOut:
    """A catalog record as the API shows it (its stored path stays private)."""
    return DocumentOut(**{k: v for k, v in record.to_dict().items() if k != "stored_path"})


def task_out(record: DocumentRecord) -> TaskOut:
    return TaskOut(**document_out(record).model_dump(), document_id=record.id, status_url=f"/api/tasks/{record.task_id}")
