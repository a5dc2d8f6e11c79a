"""What people see: rich tables, progress bars and answers for the CLI's results.

Every string that comes from a user, a file, a document or a configuration (file names, paths,
errors, questions, answers, log lines) goes into a table or a line as a ``Text`` (``cell``), never
through Rich's markup parser: ``[draft] 메모 [v2].txt`` is printed as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ragctl.console import console, err_console
from ragctl.project import redact_url
from stack.contract import FINDING_KINDS, ParseReport, location_label, printable

#: Without a terminal, a file in a long stage (embedding a big document) still prints a line this often.
PLAIN_EVERY_S = 30.0
_STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow"}


def cell(value: object, style: str = "") -> Text:
    """A table cell or a line of data: shown as it is, in ``style``."""
    return Text("" if value is None else str(value), style=style)


def line(*parts: tuple[object, str] | object) -> Text:
    """A line assembled from data: each part a value, or (value, style)."""
    text = Text()
    for part in parts:
        value, style = part if isinstance(part, tuple) else (part, "")
        text.append("" if value is None else str(value), style=style)
    return text


class IngestProgress:
    """An overall bar and one bar for the file in hand, on stderr (plain lines without a TTY)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.live = enabled and err_console.is_terminal
        self.plain = enabled and not self.live
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("[dim]{task.fields[stage]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=not self.live,
            transient=False,
        )
        self.total = total
        self.count = 0
        self._bars: dict[str, int] = {}
        self.overall = self.progress.add_task("all files", total=total, stage="")

    def track(self, name: str, key: str | None = None):
        """A bar for one file; returns ``report(stage, fraction)``.  Several may run at once;
        ``key`` (default: the name) tells them apart for ``untrack``."""
        task = self.progress.add_task(f"  {escape(name)}", total=1.0, stage="queued")  # a markup string: escaped
        self._bars[key or name] = task

        last = {"stage": None, "at": 0.0}

        def report(stage: str, fraction: float) -> None:
            self.progress.update(task, completed=fraction, stage=stage)
            if self.plain:  # no bar to watch: a line per stage, and one every PLAIN_EVERY_S within a long one
                now = time.monotonic()
                if stage != last["stage"] or now - last["at"] >= PLAIN_EVERY_S:
                    last.update(stage=stage, at=now)
                    err_console.print(line(f"      {stage:<9} {fraction:4.0%}  ", key or name), highlight=False)

        return report

    def untrack(self, name: str) -> None:
        task = self._bars.pop(name, None)
        if task is not None:
            self.progress.remove_task(task)

    # As a backend's IngestWatcher (ragctl/backends): a file's bar from when it is taken up until it ends.
    def started(self, path: Path):
        return self.track(printable(path.name), key=printable(path))

    def ended(self, result) -> None:
        self.untrack(result.path)
        self.done(result)

    @contextmanager
    def file(self, name: str) -> Iterator:
        try:
            yield self.track(name)
        finally:
            self.untrack(name)

    def done(self, result) -> None:
        self.count += 1
        self.progress.advance(self.overall)
        if self.plain:
            reason = f": {result.error['message']}" if result.error else ""
            err_console.print(line(f"[{self.count}/{self.total}] {result.status:<8} ", result.path or result.file_name,
                                   reason), highlight=False)


@contextmanager
def ingest_progress(total: int, *, enabled: bool) -> Iterator[IngestProgress]:
    bar = IngestProgress(total, enabled)
    with bar.progress:
        yield bar


def results_table(results: Sequence) -> Table:
    table = Table(title="Ingest", show_lines=False)
    table.add_column("file")
    table.add_column("status")
    table.add_column("format")
    table.add_column("chunks", justify="right")
    table.add_column("id")
    table.add_column("seconds", justify="right")
    table.add_column("reason")
    for r in results:
        style = _STATUS_STYLE.get(r.status, "")
        reason = r.error["message"] if r.error else (r.note or "")
        if not reason and r.lost_parts:
            reason = "not read: " + ParseReport.from_dict(r.report).summary()
        table.add_row(cell(r.path or r.file_name), cell(r.status, style), cell(r.format), cell(r.chunks),
                      cell((r.document_id or "")[:12]), cell(f"{r.seconds:.2f}"), cell(reason))
    return table


def hits_table(hits: Sequence) -> Table:
    table = Table(title="Passages", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for rank, hit in enumerate(hits, start=1):
        source = hit.metadata.get("file_name", "") + (f"\n{hit.location}" if hit.location else "")
        text = hit.text if len(hit.text) <= 400 else hit.text[:400] + "…"
        table.add_row(cell(rank), cell(f"{hit.score:.3f}"), cell(source), cell(text))
    return table


def print_answer(answer) -> None:
    console.print(cell(answer.answer))
    console.print()
    if answer.mode == "llm":  # an extractive answer's own first line already says what it is
        console.print(cell(f"Mode: LLM {answer.model or ''}", "dim"))
        invalid = getattr(answer, "invalid_citations", None)
        if invalid:
            console.print(cell(f"Removed citations of sources that were not given: {', '.join(map(str, invalid))}",
                               "dim"))
    if answer.sources:
        console.print(cell("Sources", "bold"))
        for source in answer.sources:
            where = f", {source.location}" if source.location else ""
            console.print(line(f"  [{source.n}] ", source.file, where,
                               (f"  {source.chunk_id[:16]}… score {source.score:.3f}", "dim")))


def documents_table(records: Sequence) -> Table:
    table = Table(title="Documents")
    for column in ("id", "file", "status", "format", "chunks", "not read", "collection", "added"):
        table.add_column(column, justify="right" if column in ("chunks", "not read") else "left")
    for r in records:
        style = _STATUS_STYLE.get(r.status, "")
        lost = sum(ParseReport.from_dict(r.report).counts().values())
        table.add_row(cell(r.id[:12]), cell(r.file_name), cell(r.status, style), cell(r.format), cell(r.chunks),
                      cell(lost or "", "yellow"), cell(r.collection),
                      cell(datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M")))
    return table


def print_document(record, extracted: str | Path | None, chunks: Sequence) -> None:
    table = Table(show_header=False, title=cell(record.file_name))
    table.add_column("field", style="bold")
    table.add_column("value")
    for field in ("id", "collection", "status", "format", "parser", "size", "chunks", "embed_model",
                  "stored_path", "error"):
        value = getattr(record, field)
        if value not in (None, ""):
            table.add_row(field, cell(value))
    if record.timings:
        table.add_row("timings", cell(", ".join(f"{k} {v:.2f}s" for k, v in record.timings.items())))
    if extracted:
        table.add_row("extracted text", cell(extracted))
    report = ParseReport.from_dict(record.report)
    if report:
        table.add_row("not read", cell(report.summary(), "yellow"))
    console.print(table)
    if report:
        console.print(parse_report_table(report))
    for chunk_id, text, meta in chunks:
        where = location_label(meta.get("page"), meta.get("section"), meta.get("heading"))
        console.print(line((chunk_id, "bold"), " ", (where, "dim"), "\n", text, "\n"))


def parse_report_table(report: ParseReport) -> Table:
    """The parts of one file the parser could not read: what, where, how many, why."""
    table = Table(title="Parts we could not read", box=None, pad_edge=False)
    for column in ("what", "where", "count", "why"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for finding in report.findings:
        table.add_row(cell(FINDING_KINDS.get(finding.kind, finding.kind)), cell(finding.where or "—"),
                      cell(finding.count), cell(finding.reason))
    for kind, n in report.unlisted.items():
        table.add_row(cell(FINDING_KINDS.get(kind, kind)), cell("(not listed)"), cell(n), cell(""))
    return table


_CHECK_MARKS = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def checks_table(checks: Sequence, *, causes: bool = False) -> Table:
    """Checks (pre-flight, health, doctor) as a table: verdict, evidence, and what to do."""
    table = Table(box=None, pad_edge=False)
    for column in ("check", "", "detail", *(["cause"] if causes else []), "next"):
        table.add_column(column)
    for check in checks:
        row = [cell(check.name), _CHECK_MARKS.get(check.status, cell(check.status)), cell(check.detail)]
        if causes:
            row.append(cell(check.cause))
        table.add_row(*row, cell(check.hint))
    return table


_SERVICE_STYLE = {"healthy": "green", "running": "green", "starting": "yellow", "restarting": "yellow",
                  "stopping": "yellow", "unhealthy": "red", "exited": "red", "missing": "red", "stopped": "dim"}


def services_table(services: Sequence, *, show_ready: bool = False) -> Table:
    """``ps``: one row per service, with the columns its runtime reports."""
    table = Table(box=None, pad_edge=False)
    rows = [service.columns() for service in services]
    columns = list(rows[0]) if rows else ["service", "state"]
    for column in [*columns, *(["ready"] if show_ready else [])]:
        table.add_column(column, justify="right" if column in ("pid", "port", "restarts") else "left")
    for service, row in zip(services, rows, strict=True):
        cells = [cell(row[column], _SERVICE_STYLE.get(service.state, "") if column == "state" else "")
                 for column in columns]
        if show_ready:
            cells.append(cell("yes", "green") if service.ready else cell("waiting", "yellow"))
        table.add_row(*cells)
    return table


def print_status(status, root: Path) -> None:
    """``status`` and ``up``: the services, then where each part answers."""
    console.print(services_table(status.services))
    redis = getattr(status, "redis_url", None)
    lines = [("API", status.api_url, f"(key: RAG_API_KEY in {root / '.env'})"),
             ("Redis", redact_url(redis), "(password: REDIS_PASSWORD in .env)" if "@" in (redis or "") else ""),
             ("Chroma", getattr(status, "chroma_url", None), ""),
             ("Flower", status.flower_url, f"(login {status.flower_auth or 'see FLOWER_BASIC_AUTH in .env'})")]
    for label, url, note in lines:
        if url:
            console.print(cell(f"{label:<8} {url}   {note}".rstrip()))
    console.print(cell("Logs     ragctl logs SERVICE -f"))
