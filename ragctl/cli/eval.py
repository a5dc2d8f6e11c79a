"""``ragctl eval``: run a question set, list / show / compare stored runs, generate a first set.

A thin layer over ``ragctl.ops.eval`` (loading, running, scoring, storing, comparing),
``ragctl.ops.eval_report`` (the HTML page) and ``ragctl.ops.eval_generate``.  ``ragctl eval FILE``
is ``ragctl eval run FILE`` (:class:`EvalGroup` supplies the ``run``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ragctl.cli.context import CollectionOption, JsonOption, open_backend, project_root
from ragctl.output import EXIT_ERROR, console, emit, err_console, print_json
from ragctl.views import cell, line

if TYPE_CHECKING:
    from ragctl.backends import Backend

#: How many questions a running stack answers at once (its API serves several; embedded: one at a time,
#: the pipeline already uses every core for one question).
STACK_PARALLEL = 4


def _runs_folder() -> Path:
    from ragctl.ops.eval import eval_folder
    from stack.settings import load_settings

    return eval_folder(load_settings(project_root()).data_path)


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _print_summary(run: dict) -> None:
    s = run["summary"]
    console.print(line(("Run ", "bold"), run["id"], ("  ", ""), (run["created_at"], "dim")))
    console.print(line("Questions: ", s["questions"], f" ({s['passed']} passed, {s['errors']} errors, "
                       f"{s['malformed_rows']} malformed rows)"))
    console.print(line("answer_has_gold: ", (_share(s["answer_has_gold"]), "bold"),
                       "   source_has_gold: ", (_share(s["source_has_gold"]), "bold"),
                       f" of {s['with_file']} naming a file", "   mean rank of that file: ", s["mean_file_rank"]))
    console.print(line("Mean answer length: ", s["mean_answer_chars"], " chars   latency p50/p95: ",
                       s["latency_ms_p50"], " / ", s["latency_ms_p95"], " ms",
                       f"   ({s['questions_per_min']} questions/min)" if s.get("questions_per_min") else ""))
    fp = run.get("fingerprint") or {}
    embedding = fp.get("embedding") or {}
    console.print(line(("Shaped by: ", "dim"), ((f"ragctl {fp.get('ragctl_version')}, {fp.get('mode')}, "
                       f"collection {fp.get('collection')}, {embedding.get('backend') or '?'} "
                       f"{embedding.get('model')}, {fp.get('documents')} documents / {fp.get('chunks')} chunks, "
                       f"LLM {fp.get('llm') or 'none (extractive)'}"), "dim")))


def _print_failures(run: dict, limit: int | None) -> None:
    rows = [r for r in run["results"] if not r["passed"]]
    for row in run.get("malformed_rows", []):
        err_console.print(line(("malformed ", "red"), f"line {row['line']}: ", row["message"]))
    if not rows:
        console.print(cell("Every question passed.", "green"))
        return
    console.print(cell(f"Failed ({len(rows)}):", "bold red"))
    for row in rows[:limit] if limit else rows:
        why = []
        if row.get("error"):
            why.append(f"error: {row['error']['message']}")
        else:
            if not row["answer_has_gold"]:
                why.append("answer lacks " + " | ".join(row["answers"]))
            if row.get("source_has_gold") is False:
                why.append(f"{row['file']} not cited" + (f" (rank {row['file_rank']})" if row.get("file_rank") else ""))
        console.print(line(("  ✗ ", "red"), f"line {row['line']}: ", row["question"]))
        console.print(line(("      ", ""), ("; ".join(why), "dim")))
        if not row.get("error"):
            from ragctl.gold import answer_body

            body = " ".join(answer_body(row["answer"]).split())
            console.print(line(("      answer: ", "dim"), (body[:160] + ("…" if len(body) > 160 else ""), "dim")))
    if limit and len(rows) > limit:
        console.print(cell(f"  … and {len(rows) - limit} more: ragctl eval show {run['id']} --all", "dim"))


def _write_html(run: dict, path: Path) -> None:
    from ragctl.errors import UsageError
    from ragctl.ops.eval_report import render_html

    try:
        path.write_text(render_html(run), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write the report to {path}: {exc.strerror or exc}.",
                         "give --html a path in a folder you can write to", code="report_unwritable") from None


HtmlOption = Annotated[Path | None, typer.Option("--html", help="Also write the run as one self-contained HTML "
                                                 "page (readable offline).", show_default=False)]


def eval_run(
    file: Annotated[Path, typer.Argument(help="Question set: JSONL or CSV with question, answer, and optional "
                                         "file and collection.")],
    collection: CollectionOption = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Passages to answer from.")] = None,
    html: HtmlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask every question of a set as `ask` would, score the answers, and store the run (data/eval/).

    Also `ragctl eval FILE`.  A question passes when its answer holds one of the expected texts and,
    when it names a file, the answer cites that file."""
    from ragctl.ops.eval import save_run

    project_root()
    questions, errors = load_questions_or_fail(file)
    backend = open_backend(warm=True)
    run = run_set(backend, file, questions, errors, collection=collection, top_k=top_k, as_json=as_json)
    path = save_run(_runs_folder(), run)
    if html:
        _write_html(run, html)
    if as_json:
        print_json(run | {"stored": str(path), "html": str(html) if html else None})
    else:
        _print_summary(run)
        _print_failures(run, limit=20)
        console.print(line(("Stored: ", "dim"), str(path)))
        if html:
            console.print(line(("Report: ", "dim"), str(html)))
        console.print(line(("Next: ", "dim"), "ragctl eval compare previous latest   (what changed since the "
                           "run before)"))
    if run["summary"]["answered"] == 0:
        raise typer.Exit(EXIT_ERROR)


def load_questions_or_fail(file: Path):
    """The set's questions and malformed rows; an error when no row can be run."""
    from ragctl.errors import UsageError
    from ragctl.ops.eval import load_questions

    questions, errors = load_questions(file)
    if not questions:
        raise UsageError(f"No question in {file} can be run: {len(errors)} malformed rows (first: line "
                         f"{errors[0].line}: {errors[0].message}).", f"fix {file}, then ragctl eval {file}",
                         code="questions_malformed")
    return questions, errors


def run_set(backend: Backend, file: Path, questions, errors, *, collection: str | None = None,
            top_k: int | None = None, as_json: bool = False, label: str = "") -> dict:
    """Ask the set through ``backend`` with a progress bar; the run (not yet stored)."""
    from ragctl.backends.embedded import EmbeddedBackend
    from ragctl.client import StackClient
    from ragctl.ops.eval import fingerprint, new_run, run_questions
    from stack.settings import load_settings

    # An embedded backend's own settings: the gate asks an index built under other settings than the file's.
    settings = backend.settings if isinstance(backend, EmbeddedBackend) else load_settings(project_root())
    if not as_json:
        err_console.print(line(f"Asking {len(questions)} questions ", (f"({backend.mode} mode{label})", "dim")))
        for row in errors:
            err_console.print(line(("malformed ", "red"), f"line {row.line}: ", row.message))
    backend.warm_up(collection)  # embedded: the model and the analyser load now, not in the first question's time
    started = time.perf_counter()
    with _progress(len(questions), enabled=not as_json) as advance:
        outcomes = run_questions(backend, questions, collection=collection, top_k=top_k,
                                 parallel=STACK_PARALLEL if isinstance(backend, StackClient) else 1, on_result=advance)
    return new_run(file, questions, errors, outcomes, fingerprint(backend, settings, collection),
                   time.perf_counter() - started)


class _progress:
    """A progress bar on stderr (a line per 10 % when stderr is not a terminal); thread-safe advance."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        import threading

        self.total, self.enabled, self.done, self.lock = total, enabled, 0, threading.Lock()
        self.bar = None

    def __enter__(self):
        if self.enabled and err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=err_console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("eval", total=self.total)
        return self.advance

    def advance(self, outcome) -> None:
        with self.lock:
            self.done += 1
            if self.bar is not None:
                self.bar.advance(self.task)
            elif self.enabled and (self.done == self.total or self.done % max(1, self.total // 10) == 0):
                err_console.print(f"eval {self.done}/{self.total}", markup=False, highlight=False)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def eval_list(as_json: JsonOption = False) -> None:
    """The stored runs, oldest first, with their main metrics."""
    from ragctl.ops.eval import list_runs

    project_root()
    runs = list_runs(_runs_folder())
    if as_json:
        print_json(runs)
        return
    if not runs:
        console.print("No stored runs yet. Next: ragctl eval questions.jsonl   (or ragctl eval generate -o "
                      "questions.jsonl for a first set)", markup=False)
        return
    table = Table(title="Eval runs")
    for column in ("run", "when", "question set", "questions", "answer_has_gold", "source_has_gold", "p50 ms",
                   "documents", "embedding"):
        table.add_column(column)
    for run in runs:
        s, fp = run.get("summary") or {}, run.get("fingerprint") or {}
        table.add_row(cell(run["id"]), cell((run.get("created_at") or "")[:19].replace("T", " ")),
                      cell(Path((run.get("question_set") or {}).get("path") or "").name), cell(s.get("questions")),
                      cell(_share(s.get("answer_has_gold"))), cell(_share(s.get("source_has_gold"))),
                      cell(s.get("latency_ms_p50")), cell(fp.get("documents")),
                      cell((fp.get("embedding") or {}).get("model")))
    console.print(table)


def eval_show(
    run: Annotated[str, typer.Argument(help="Run id (or its first characters), latest, or previous.")] = "latest",
    show_all: Annotated[bool, typer.Option("--all", help="Every failure, not only the first 20.")] = False,
    html: HtmlOption = None,
    as_json: JsonOption = False,
) -> None:
    """One stored run: summary, what shaped it, and the failures first."""
    from ragctl.ops.eval import load_run

    project_root()
    data = load_run(_runs_folder(), run)
    if html:
        _write_html(data, html)
    if as_json:
        print_json(data)
        return
    _print_summary(data)
    _print_failures(data, limit=None if show_all else 20)
    if html:
        console.print(line(("Report: ", "dim"), str(html)))


def eval_compare(
    run_a: Annotated[str, typer.Argument(help="The earlier run (id, prefix, latest or previous).")] = "previous",
    run_b: Annotated[str, typer.Argument(help="The later run.")] = "latest",
    as_json: JsonOption = False,
) -> None:
    """What changed between two runs: questions that went right→wrong and wrong→right, metric deltas,
    and what differs in what shaped them."""
    from ragctl.ops.eval import compare_runs, load_run

    project_root()
    folder = _runs_folder()
    diff = compare_runs(load_run(folder, run_a), load_run(folder, run_b))

    def human() -> None:
        console.print(line(("Compare ", "bold"), diff["a"], " → ", diff["b"]))
        if not diff["same_question_set"]:
            console.print(cell(f"The question sets differ ({diff['only_in_a']} only in A, {diff['only_in_b']} only "
                               "in B): only shared questions are compared.", "yellow"))
        table = Table(box=None)
        for column in ("metric", "A", "B", "Δ"):
            table.add_column(column)
        for name, m in diff["metrics"].items():
            delta = m["delta"]
            worse = delta is not None and ((delta < 0) if "gold" in name else (delta > 0))
            table.add_row(cell(name), cell(m["a"]), cell(m["b"]),
                          cell("" if delta is None else f"{delta:+g}", "red" if worse and delta else ""))
        console.print(table)
        for key, change in diff["fingerprint_changes"].items():
            console.print(line(("changed ", "dim"), key, ": ", str(change["a"]), " → ", str(change["b"])))
        for title, rows, style in (("Right → wrong", diff["right_to_wrong"], "red"),
                                   ("Wrong → right", diff["wrong_to_right"], "green")):
            console.print(cell(f"{title} ({len(rows)}):", f"bold {style}"))
            for row in rows:
                console.print(line(("  ", ""), (row["metric"], "dim"), "  ", f"line {row['line']}: ", row["question"]))

    emit(diff, human, as_json=as_json)


def eval_generate(
    n: Annotated[int, typer.Option("-n", "--count", min=1, max=10000, help="How many questions.")] = 50,
    collection: CollectionOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the set here (JSONL); default: "
                                                "standard output.", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Which sentences are picked (same seed, same set).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Write a first question set from the collection's own documents, without an LLM: sentences with a
    checkable fact (date, amount, article number, quantity, organisation) turned into questions whose
    answer is that fact.  A draft: review and edit it before you rely on it."""
    from ragctl.errors import UsageError
    from ragctl.ops.eval_generate import generate

    project_root()
    backend = open_backend()
    chosen, documents = generate(backend, n, collection=collection, seed=seed)
    if not chosen:
        raise UsageError(f"No sentence with a checkable fact was found in {documents} ingested documents"
                         + (f" of '{collection}'" if collection else "") + ".",
                         "ragctl ingest FILE   (then run ragctl eval generate again), or write questions by hand",
                         code="nothing_to_generate")
    lines = "".join(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in chosen)
    if output:
        try:
            output.write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot write {output}: {exc.strerror or exc}.", "give -o a path you can write to",
                             code="output_unwritable") from None
    files = len({c.file for c in chosen})
    note = ("Generated without an LLM from sentences with a checkable fact: a draft meant to be reviewed and "
            "edited (fix odd wording, drop trivial questions) before you rely on it.")
    if as_json:
        print_json({"questions": [c.to_dict() for c in chosen], "output": str(output) if output else None,
                    "files": files, "documents": documents, "note": note})
        return
    if output is None:
        sys.stdout.write(lines)
        sys.stdout.flush()
    err_console.print(line(f"{len(chosen)} questions from {files} of {documents} documents",
                           f" written to {output}" if output else "", "."))
    err_console.print(cell(note, "yellow"))
    err_console.print(line(("Next: ", "dim"), f"ragctl eval {output or 'questions.jsonl'}"))
