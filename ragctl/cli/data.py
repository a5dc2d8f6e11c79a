"""Data commands: ``init``, ``render``, ``config``, ``extract``, ``ingest``, ``search``, ``ask``,
``documents …``, ``tasks …`` and ``reindex``.  Each is a thin layer over a backend
(``ragctl.backends.Backend``: the embedded pipeline or the running stack's client), from
``ragctl.cli.context.open_backend``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ragctl.cli import gate as gate_cli
from ragctl.cli.context import (
    CollectionOption,
    JsonOption,
    open_backend,
    open_pipeline,
    print_model_notice,
    project_root,
)
from ragctl.output import EXIT_ERROR, confirm, console, emit, err_console, fail, print_json
from ragctl.runtimes import KINDS, RUNTIMES, choices
from stack.contract import check_question, count_lost_parts, lost_parts_note
from stack.names import RETRYABLE

if TYPE_CHECKING:
    from stack.contract import IngestResult


#: --runtime's choices: every runtime in the registry.
RuntimeName = choices(RUNTIMES)


# -- init ------------------------------------------------------------------------------------
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create.")] = Path("."),
    runtime: Annotated[RuntimeName | None, typer.Option(
        show_default=False,
        help="; ".join(f"{name}: {kind.help}" for name, kind in KINDS.items()) + " (default: embedded).")] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="Worker replicas (stack runtimes; default 2).",
                                                show_default=False)] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="GPU for workers (default: detect the "
                                              "NVIDIA container runtime).", show_default=False)] = None,
    flower: Annotated[bool | None, typer.Option("--flower/--no-flower", help="Celery monitoring UI (default off).",
                                                show_default=False)] = None,
    nginx: Annotated[bool | None, typer.Option("--nginx/--no-nginx", help="Reverse proxy in front of the API "
                                               "(default off).", show_default=False)] = None,
    env: Annotated[Literal["prod", "dev"] | None, typer.Option(help="prod (restart policies, limits; the default) or dev (code "
                                            "mounted, --reload).", show_default=False)] = None,
    embed_model: Annotated[str | None, typer.Option(help="Embedding model name or path.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: overwrite an existing ragctl.toml and "
                                      "take the defaults of options not given.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a project: ragctl.toml (settings and, for a stack, its deployment) and its folders.

    On a terminal without --yes, asks for the options not given; otherwise takes the guide's defaults."""
    from pydantic import ValidationError

    from ragctl.deploy import DeployConfig, fit_to_host, gpu_available
    from ragctl.errors import UsageError
    from ragctl.project import init_project, is_project
    from ragctl.runtimes import kind_of

    ask = not yes and not as_json and sys.stdin.isatty() and console.is_terminal
    runtime = runtime.value if runtime is not None else None
    if runtime is None:
        runtime = typer.prompt(f"Runtime ({', '.join(RUNTIMES)})", default="embedded") if ask else "embedded"
    kind = kind_of(runtime)
    if ask:
        questions = {
            "workers": lambda: typer.prompt("Workers", default=2, type=int),
            "gpu": lambda: typer.confirm("GPU workers", default=gpu_available()),
            "nginx": lambda: typer.confirm("Nginx in front of the API", default=False),
            "flower": lambda: typer.confirm("Flower (Celery UI)", default=False),
            "env": lambda: typer.prompt("Environment (prod, dev)", default="prod"),
        }
        given = {"workers": workers, "gpu": gpu, "nginx": nginx, "flower": flower, "env": env}
        answers = {key: questions[key]() for key in kind.init_questions if given[key] is None}
        workers, gpu, nginx, flower, env = (answers.get(k, given[k]) for k in ("workers", "gpu", "nginx", "flower",
                                                                             "env"))
    root = directory.expanduser().resolve()
    if is_project(root):
        confirm(f"{root / 'ragctl.toml'} exists. Overwrite it?", yes=yes, as_json=as_json)
    stack, fitted = None, {}
    if kind.has_services:
        try:
            config = DeployConfig(workers=2 if workers is None else workers,
                                  gpu=gpu_available() if gpu is None else gpu, flower=bool(flower),
                                  nginx=bool(nginx), env=env or "prod", database="postgres")
        except ValidationError as exc:
            raise UsageError(f"Invalid option: {exc.errors()[0]['msg']}", "ragctl init --help") from exc
        keys = {"workers", "gpu", "flower", "nginx", "env", "database"}
        if "gpu" in kind.init_questions:  # CPU and memory limits only bind a Compose stack
            config, fitted = fit_to_host(config)
            keys |= set(fitted)
        stack = config.model_dump(include=keys)
    path = init_project(root, {"embed_model": embed_model} if embed_model else {}, runtime=kind.name, stack=stack)
    for folder in ("data", "logs", "extracted_results"):
        (root / folder).mkdir(exist_ok=True)

    def human() -> None:
        console.print(f"Created project at {root} ({path.name}, runtime {kind.name}).", markup=False)
        for note in fitted.values():
            console.print(f"Fitted to this host: {note}.", markup=False)
        console.print(f"Next: ragctl -p {root} {kind.first_step}", markup=False)

    emit({"project": str(root), "config": str(path), "runtime": kind.name, "stack": stack,
          "fitted": list(fitted.values())},
         human, as_json=as_json)


def render(
    diff: Annotated[bool, typer.Option("--diff", help="Only show what would change.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write compose.yaml (stack.yaml on a swarm), Dockerfile, nginx.conf, .env and redis.conf from
    ragctl.toml (deterministic)."""
    from pydantic import ValidationError

    from ragctl.deploy import write_rendered
    from ragctl.runtime import render_placement, rendered_files

    root = project_root()
    try:
        files = write_rendered(root, dry_run=diff, files=rendered_files(root), placement=render_placement(root))
    except ValidationError as exc:
        fail(f"ragctl.toml [stack] is invalid: {exc}", hint="fix ragctl.toml, then ragctl render", as_json=as_json)
    if as_json:
        print_json({"project": str(root), "dry_run": diff,
                    "files": [{"name": f.name, "path": str(f.path), "changed": f.changed}
                              | ({"diff": f.diff} if diff else {}) for f in files]})
        return
    for f in files:
        state = "[yellow]would change[/]" if diff and f.changed else "[green]written[/]" if f.changed else "unchanged"
        console.print(f"{f.name:<13} {state}")
        if diff and f.diff:
            console.print(f.diff, markup=False, highlight=False)
    if not diff:
        console.print(f"Next: ragctl -p {root} config   (validates with docker compose config)", markup=False)


def config_check(as_json: JsonOption = False) -> None:
    """Validate the rendered stack with `docker compose config` (every profile in use)."""
    from ragctl.deploy import load_deploy_config, profiles_for, validate
    from ragctl.errors import DockerError
    from ragctl.views import line

    root = project_root()
    if not (root / "compose.yaml").is_file():
        fail(f"No compose.yaml in {root}.", hint="ragctl render", code="not_rendered", as_json=as_json)
    try:
        model = validate(root, profiles=profiles_for(load_deploy_config(root)))
    except DockerError as exc:
        fail(exc, as_json=as_json)
    services = sorted(model.get("services", {}))
    emit({"valid": True, "services": services, "name": model.get("name")},
         lambda: console.print(line(("valid", "green"), f": {model.get('name')} with {', '.join(services)}")),
         as_json=as_json)


# -- extract ---------------------------------------------------------------------------------
def extract(
    file: Annotated[Path, typer.Argument(help="Document to read (HWP, HWPX, PDF, DOCX, TXT, MD, HTML; scans and images by OCR).")],
    as_json: JsonOption = False,
) -> None:
    """Print the text extracted from a document, tables as Markdown (--json: blocks, table rows and
    cells). Works on any file, in a project or not; in a project it is saved under extracted_results/ too."""
    from ragctl.cli.context import CURRENT
    from ragctl.project import is_project

    _require_file(file, as_json)
    state = CURRENT.get()
    # A project named with -p must exist (a typo is refused); with none named, any folder will do.
    if (state is not None and state.project is not None) or is_project(project_root(required=False)):
        document = open_pipeline().extract(file)
    else:  # a file tool anywhere: parse with the default limits, save nothing
        from ragctl.backends.embedded import read_file

        document = read_file(file)

    def human() -> None:
        import shlex

        sys.stdout.write(document.markdown() + "\n")
        if document.report:  # on stderr: the Markdown on stdout stays the document alone
            from rich.text import Text

            from ragctl.console import err_console

            err_console.print(Text(f"Parts not read whole: {document.report.summary()} "
                                   f"(ragctl extract {shlex.quote(str(file))} --json says where and why)."))

    emit({"file": str(file), **document.to_dict()}, human, as_json=as_json)


def _require_file(path: Path, as_json: bool) -> None:
    if not path.exists():
        fail(f"{path} does not exist.", hint="check the path; ragctl documents list shows what is ingested",
             code="not_found", as_json=as_json)


# -- ingest ----------------------------------------------------------------------------------
def expand_paths(paths: list[Path], *, include: list[str] | None = None, exclude: list[str] | None = None):
    """The files to ingest: files named (always), and the document files under folders named, filtered
    by the globs; with what was skipped and why.  The rules: :mod:`ragctl.inputs` (``select``)."""
    from ragctl.inputs import select

    return select(paths, include=include or (), exclude=exclude or ())


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: CollectionOption = None,
    force: Annotated[bool, typer.Option("--force", help="Re-ingest files already ingested (same bytes).")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Stack mode: follow the workers until each "
                                       "document ends (--no-wait only registers).")] = True,
    include: Annotated[list[str] | None, typer.Option(
        "--include", metavar="GLOB", show_default=False,
        help="In folders, also take files matching GLOB (repeatable), e.g. '*.json'. By default a folder gives "
             "its HWP, HWPX, PDF, DOCX, Markdown, HTML and text files; files named are always taken.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="GLOB", show_default=False,
        help="In folders, leave out files and folders matching GLOB (repeatable; wins over --include). A GLOB "
             "without '/' matches names at any depth, one with '/' the path under the folder named.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Parse, chunk, embed and index documents. Exit 1 when any file failed.

    A file that cannot be read (missing, permission denied, a FIFO, socket or device, a broken symlink,
    changed while read) is its own failed row; the others go on. Exit 2 when no path given exists."""
    from ragctl.errors import UsageError
    from ragctl.views import ingest_progress, line, results_table

    project_root()  # only init makes a project: a typo in -p is refused first (exit 2)
    selection = expand_paths(paths, include=include, exclude=exclude)
    if selection.nothing_exists:
        fail(UsageError(f"Not found: {', '.join(map(str, selection.missing))}", "check the paths",
                        code="not_found"), as_json=as_json)
    if not selection.items:
        skipped = selection.describe_skipped()
        fail("No documents to ingest in the folders given." + (f" {skipped}" if skipped else ""),
             hint="ragctl ingest FILE …, or take more with --include GLOB", code="nothing_to_ingest",
             as_json=as_json)
    # Problems known before reading (a path that does not exist, a folder that cannot be listed)
    # are failed rows at once; every other file is read by the pipeline or the upload, which fail
    # it alone whatever is wrong with it.
    files = [item.path for item in selection.items if item.problem is None]
    backend = open_backend()
    if not as_json:
        err_console.print(line("Mode: ", (backend.mode, "bold"), f" ({backend.where()})"))
    with ingest_progress(len(files), enabled=not as_json) as bar:
        results = backend.ingest_files(files, collection=collection, force=force, wait=wait, watcher=bar)
    results = _with_problems(selection, results)
    failed = [r for r in results if r.status in RETRYABLE]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "queued", "skipped", "failed", "cancelled")}
    counts["skipped_files"] = len(selection.skipped)  # folder entries not taken: type, --exclude, hidden
    counts["lost_parts"] = count_lost_parts(r.report for r in results)  # files read, but not whole
    if as_json:
        print_json({"mode": backend.mode, "results": [r.to_dict() for r in results], "summary": counts,
                    "skipped_files": selection.skipped_groups()})
    else:
        console.print(results_table(results))
        if selection.skipped:
            console.print(selection.describe_skipped(), markup=False, highlight=False)
        if lost_parts_note(r.report for r in results):
            console.print(lost_parts_note(r.report for r in results), markup=False, highlight=False)
        console.print(", ".join(f"{n} {label}" for label, n in (
            ("ingested", counts["done"]), ("queued", counts["queued"]), ("skipped", counts["skipped"]),
            ("failed", counts["failed"]), ("cancelled", counts["cancelled"])) if n or label in ("ingested", "failed")) + ".")
        if failed:
            console.print("[dim]Failed files harmed nothing else; fix them and run ragctl ingest again.[/]")
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _with_problems(selection, results: list[IngestResult]) -> list[IngestResult]:
    """All rows in the order of the selection: the files read, and the failed rows of ``problem`` items."""
    from stack.contract import IngestResult, printable

    read = iter(results)
    rows = []
    for item in selection.items:
        if item.problem is None:
            rows.append(next(read))
        else:
            rows.append(IngestResult(printable(item.path), printable(item.path.name or item.path), "failed",
                                     error=item.problem.to_dict()))
    return rows


# -- search / ask ----------------------------------------------------------------------------
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="How many passages.")] = None,
    mode: Annotated[Literal["hybrid", "bm25", "dense"], typer.Option(help="hybrid (the default), bm25 or dense.")] = "hybrid",
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the passages that best match a query, with scores and where they come from."""
    from ragctl.views import hits_table

    if mode not in ("hybrid", "bm25", "dense"):
        fail(f"Unknown mode '{mode}'.", hint="use --mode hybrid, bm25 or dense", exit_code=2, as_json=as_json)
    check_question(query, what="query")  # before opening anything: same answer in both modes (exit 2)
    backend = open_backend(warm=True)
    hits = backend.search(query, collection=collection, top_k=top_k, mode=mode)
    print_model_notice(backend, collection, as_json)
    emit({"query": query, "mode": mode, "hits": [{"rank": i, **h.to_dict()} for i, h in enumerate(hits, start=1)]},
         lambda: console.print(hits_table(hits) if hits else "No matching passages. Ingest documents with ragctl "
                               "ingest."), as_json=as_json)


def ask(
    question: Annotated[str, typer.Argument(help="The question, in Korean or English.")],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Passages to answer from.")] = None,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a question from the ingested documents, citing sources as [n]."""
    from ragctl.views import print_answer

    check_question(question)  # before opening anything: same answer in both modes (exit 2)
    backend = open_backend(warm=True)
    answer = backend.ask(question, collection=collection, top_k=top_k)
    print_model_notice(backend, collection, as_json)
    emit(answer.to_dict(), lambda: print_answer(answer), as_json=as_json)


# -- documents -------------------------------------------------------------------------------
def documents_list(
    status: Annotated[str | None, typer.Option(help="Only documents with this status.")] = None,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """List ingested documents."""
    from ragctl.views import documents_table

    backend = open_backend()
    records = backend.documents(collection=collection, status=status)
    if as_json:
        print_json([
            {"id": r.id, "file_name": r.file_name, "status": r.status, "chunks": r.chunks, "progress": r.progress,
             "collection": r.collection, "format": r.format, "size": r.size, "error": r.error,
             "task_id": r.task_id, "not_read": (r.report or {}).get("counts") or {}}
            for r in records])
    else:
        console.print(documents_table(records) if records else "No documents yet. Next: ragctl ingest FILE")


def documents_show(
    document_id: Annotated[str, typer.Argument(help="Document id (or its first 8+ characters).")],
    chunks: Annotated[bool, typer.Option("--chunks", help="Also print every chunk.")] = False,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one document: its record, timings and (with --chunks) its chunks."""
    from ragctl.views import print_document

    backend = open_backend()
    record = backend.document(document_id, collection=collection)
    rows = backend.chunks_of(record) if chunks and record.status == "done" else []
    extracted = backend.extracted_where(record.id, collection=record.collection)
    if as_json:
        # "chunks" is the record's count, and with --chunks the chunks themselves (as in both modes);
        # "chunk_count" is the count either way.
        data = record.to_dict() | {"extracted_text": extracted, "chunk_count": record.chunks}
        if chunks:
            data["chunks"] = [{"chunk_id": cid, "text": text, **meta} for cid, text, meta in rows]
        print_json(data)
    else:
        print_document(record, extracted, rows)


def documents_delete(
    document_id: Annotated[str, typer.Argument(help="Document id (or its first 8+ characters).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a document: its vectors, lexical entries, stored file and extracted text."""
    backend = open_backend()
    record = backend.document(document_id, collection=collection)
    confirm(f"Delete {record.file_name} ({record.id[:12]}, {record.chunks} chunks)?", yes=yes, as_json=as_json)
    backend.delete_document(record.id, collection=record.collection)
    emit({"deleted": record.id, "file_name": record.file_name},
         lambda: console.print(f"Deleted {record.file_name} ({record.id[:12]}).", markup=False), as_json=as_json)


def documents_retry(
    document_id: Annotated[str, typer.Argument(help="Document id (or its first 8+ characters).")],
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a failed or cancelled document again (stack mode)."""
    entry = open_backend().retry(document_id, collection=collection)
    emit(entry, lambda: console.print(f"Queued {entry['file_name']} again: task {entry['task_id']}.", markup=False),
         as_json=as_json)


# -- tasks -----------------------------------------------------------------------------------
TaskIdArgument = Annotated[str, typer.Argument(
    help="Task id (from ingest --no-wait or tasks list), or its first 4+ characters. Any id a document was "
         "given still answers, also after a re-queue or a retry.")]


def tasks_show(task_id: TaskIdArgument, as_json: JsonOption = False) -> None:
    """Where a task's document stands: status, progress, stage log, error, worker."""
    from ragctl.client import _record
    from ragctl.views import line, print_document

    data = open_backend().task_view(task_id)
    if as_json:
        print_json(data)
        return
    record = _record(data)
    print_document(record, None, [])
    console.print(line(("task ", "bold"), data["task_id"],
                       (f"  (the document moved on to task {data['current_task_id']})", "yellow")
                       if data.get("superseded") else ""))
    details = [("progress", f"{record.progress:.0%}"), ("worker", record.worker),
               ("attempts", record.attempts or None),
               ("earlier tasks", ", ".join(t for t in data.get("task_ids", []) if t != data.get("current_task_id"))
                or None)]
    for name, value in details:
        if value:
            console.print(line((f"{name} ", "bold"), value))
    for entry in record.log[-8:]:
        console.print(line(("  ", ""), (entry, "dim")))


def tasks_cancel(task_id: TaskIdArgument, as_json: JsonOption = False) -> None:
    """Cancel a task's document: a queued one never starts, a running one stops at its next stage or batch."""
    record = open_backend().cancel(task_id)
    emit(record.to_dict(),
         lambda: console.print(f"Cancel requested for {record.file_name}: now {record.status}.", markup=False),
         as_json=as_json)


def tasks_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many (newest first).")] = 20,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recent ingest tasks, newest first, with their document's state (also: bare `ragctl tasks`)."""
    from rich.table import Table

    from ragctl.views import cell

    tasks = open_backend().tasks(limit=limit, collection=collection)
    if as_json:
        print_json(tasks)
        return
    if not tasks:
        console.print("No tasks yet. Next: ragctl ingest FILE", markup=False)
        return
    rows = []
    for task in tasks:
        note = task["reason"] if task["current"] else f"superseded by {task['current_task_id']}; {task['reason']}"
        if task.get("error"):
            note += f"; {task['error']}"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(task["created_at"]))
        rows.append((task["task_id"], task["file_name"], task["status"], f"{task['progress']:.0%}", when, note))
    if not console.is_terminal:  # piped: one whole line per task, full ids to paste into `tasks show`
        for row in rows:
            console.print("\t".join(row), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("task", "file", "status", "progress", "when", "note"):
        table.add_column(column, overflow="fold")
    styles = {"done": "green", "failed": "red", "cancelled": "yellow"}
    for task_id, file_name, status, progress, when, note in rows:
        table.add_row(cell(task_id[:8]), cell(file_name), cell(status, styles.get(status, "")), cell(progress),
                      cell(when), cell(note))
    console.print(table)


# -- reindex ---------------------------------------------------------------------------------
def reindex(
    collection: CollectionOption = None,
    eval_file: gate_cli.EvalOption = None,
    max_drop: gate_cli.MaxDropOption = None,
    no_eval: gate_cli.NoEvalOption = False,
    wait_s: Annotated[float | None, typer.Option("--wait-s", min=1.0, help="On a running stack: the most seconds to "
                                                 "wait for the workers' reindex (default 3600; a worker that stops its "
                                                 "heartbeat is noticed after worker_dead_after_s, none taking it after "
                                                 "600 s).", show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a collection's index with the configured model and chunking, beside the one that answers;
    swap it in when whole and (with --eval or [eval] file) when the answers held."""
    from ragctl.backends.embedded import EmbeddedBackend
    from ragctl.ops.gate import gated_reindex
    from ragctl.views import ingest_progress

    gate, questions = gate_cli.resolve(project_root(), eval_file, max_drop, no_eval)
    backend = open_backend(warm=gate.file is not None)
    if not isinstance(backend, EmbeddedBackend):
        _reindex_on_stack(backend, collection, gate, questions, wait_s=wait_s, yes=yes, as_json=as_json)
        return
    pipeline = backend.pipeline
    name = collection or pipeline.settings.collection
    records = [r for r in pipeline.documents(collection=name) if r.status == "done"]
    confirm(
        f"Rebuild the index of the {len(records)} documents of '{name}' with {pipeline.settings.embed_model}"
        + (f", gated on {gate.file}" if gate.file else "") + "? The current index answers until the new one is "
        "swapped in.", yes=yes, as_json=as_json,
    )
    ask = gate_cli.measure(gate.file, questions, as_json=as_json, collection=name) if gate.file else None
    with ingest_progress(len(records), enabled=not as_json) as bar:
        outcome = gated_reindex(backend, [name], measure=ask, max_drop=gate.max_drop, on_document=bar.done)
    model = pipeline.settings.embed_model

    emit({"collection": name, "embed_model": model, **outcome.to_dict()},
         lambda: gate_cli.print_reindex(name, outcome, f"{model}, "), as_json=as_json)
    if not outcome.applied:
        raise typer.Exit(EXIT_ERROR)


def _reindex_on_stack(client, collection: str | None, gate, questions, *, wait_s: float | None, yes: bool,
                      as_json: bool) -> None:
    """reindex on a running stack: a worker builds the new index while the API answers from the old one."""
    from ragctl.ops.gate import DEFAULT_WAIT_S, gated_reindex_on_stack
    from stack.settings import load_settings

    settings = load_settings(project_root())
    name = collection or settings.collection
    confirm(f"Rebuild the index of '{name}' on the stack's workers" + (f", gated on {gate.file}" if gate.file else "")
            + "? The current index answers until the new one is swapped in.", yes=yes, as_json=as_json)
    ask = gate_cli.measure(gate.file, questions, as_json=as_json, collection=name) if gate.file else None
    seen: dict = {}

    def on_state(state: dict) -> None:  # a line per change, on stderr (the worker does the work)
        key = (state.get("state"), state.get("done"))
        if key != seen.get("last") and not as_json:
            seen["last"] = key
            err_console.print(f"reindex of {name}: {state.get('state')}"
                              + (f" ({state['done']} documents rebuilt)" if state.get("done") else ""),
                              markup=False, highlight=False)

    outcome = gated_reindex_on_stack(client, name, measure=ask, max_drop=gate.max_drop, on_state=on_state,
                                     wait_s=wait_s or DEFAULT_WAIT_S, dead_after_s=settings.worker_dead_after_s)

    emit({"collection": name, **outcome.to_dict()}, lambda: gate_cli.print_reindex(name, outcome), as_json=as_json)
    if not outcome.applied:
        raise typer.Exit(EXIT_ERROR)
