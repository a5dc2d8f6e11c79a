"""What the CLI and the stack say to each other: the wire types, with the standard library only.

The control plane imports these on a base install (``pip install .``, no ``[stack]`` extra), so
nothing here may import numpy, torch or the pipeline (tests/integration/test_base_install.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

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
