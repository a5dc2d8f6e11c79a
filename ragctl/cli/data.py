"""Data commands: ``init``, ``render``, ``config``, ``extract``, ``ingest``, ``search``, ``ask``,
``documents …``, ``tasks …`` and ``reindex``.  Each is a thin layer over the embedded
``Pipeline`` or the running stack's ``StackClient`` (``ragctl.cli.context.backend``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ragctl.cli.context import (
    CollectionOption,
    JsonOption,
    open_backend,
    open_pipeline,
    print_model_notice,
    project_root,
    stack_client,
)
from ragctl.output import EXIT_ERROR, confirm, console, emit, err_console, fail, print_json
from ragctl.runtimes import KINDS, RUNTIMES, choices
from stack.names import RETRYABLE, TERMINAL
from stack.pipeline.errors import PipelineError

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
    file: Annotated[Path, typer.Argument(help="Document to read (HWP, HWPX, PDF, DOCX, TXT, MD, HTML).")],
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
        from stack.pipeline.service import Pipeline
        from stack.settings import Settings

        document, _ = Pipeline(Settings()).read(file)
    emit({"file": str(file), **document.to_dict()}, lambda: sys.stdout.write(document.markdown() + "\n"),
         as_json=as_json)


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

    root = project_root()  # only init makes a project: a typo in -p is refused first (exit 2)
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
    mode, backend = open_backend()
    if mode == "stack":
        results = _ingest_through_stack(backend, files, collection=collection, replace=force, wait=wait,
                                        as_json=as_json)
    else:
        backend.check_model(collection or backend.settings.collection)
        if not as_json:
            err_console.print(line("Mode: ", ("embedded", "bold"), f" (in-process pipeline, project {root})"))
        from stack.pipeline.files import printable
        from stack.pipeline.service import IngestItem

        with ingest_progress(len(files), enabled=not as_json) as bar:

            def ended(result) -> None:
                bar.untrack(result.path)
                bar.done(result)

            # A generator: each file's bar appears when the pipeline takes the file up.
            items = (IngestItem(file, progress=bar.track(printable(file.name), key=printable(file))) for file in files)
            results = backend.ingest_files(items, collection=collection, force=force, on_result=ended)
    results = _with_problems(selection, results)
    failed = [r for r in results if r.status in RETRYABLE]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "queued", "skipped", "failed", "cancelled")}
    counts["skipped_files"] = len(selection.skipped)  # folder entries not taken: type, --exclude, hidden
    if as_json:
        print_json({"mode": mode, "results": [r.to_dict() for r in results], "summary": counts,
                    "skipped_files": selection.skipped_groups()})
    else:
        console.print(results_table(results))
        if selection.skipped:
            console.print(selection.describe_skipped(), markup=False, highlight=False)
        console.print(", ".join(f"{n} {label}" for label, n in (
            ("ingested", counts["done"]), ("queued", counts["queued"]), ("skipped", counts["skipped"]),
            ("failed", counts["failed"]), ("cancelled", counts["cancelled"])) if n or label in ("ingested", "failed")) + ".")
        if failed:
            console.print("[dim]Failed files harmed nothing else; fix them and run ragctl ingest again.[/]")
    if failed:
        raise typer.Exit(EXIT_ERROR)


def _with_problems(selection, results: list[IngestResult]) -> list[IngestResult]:
    """All rows in the order of the selection: the files read, and the failed rows of ``problem`` items."""
    from stack.contract import IngestResult
    from stack.pipeline.files import printable

    read = iter(results)
    rows = []
    for item in selection.items:
        if item.problem is None:
            rows.append(next(read))
        else:
            rows.append(IngestResult(printable(item.path), printable(item.path.name or item.path), "failed",
                                     error=item.problem.to_dict()))
    return rows


def _ingest_through_stack(client, files: list[Path], *, collection: str | None, replace: bool, wait: bool,
                          as_json: bool) -> list[IngestResult]:
    """Upload every file (the API answers at once), then follow the workers' progress."""
    from ragctl.views import ingest_progress, line
    from stack.contract import IngestResult
    from stack.pipeline.files import printable

    if not as_json:
        err_console.print(line("Mode: ", ("stack", "bold"), f" (API at {client.api_url})"))
    results: dict[str, IngestResult] = {}
    tasks: dict[str, Path] = {}
    reports: dict = {}  # task id → its file's progress bar
    with ingest_progress(len(files), enabled=not as_json) as bar:
        for file in files:
            started = time.perf_counter()
            result = IngestResult(printable(file), printable(file.name), "failed")
            try:
                entry = client.upload(file, collection=collection, replace=replace)
            except PipelineError as exc:
                if getattr(exc, "exit_code", 1) != 1:
                    fail(exc, as_json=as_json)
                result.error = exc.to_dict()
                result.seconds = round(time.perf_counter() - started, 3)
                results[str(file)] = result
                bar.done(result)
                continue
            result.document_id = entry["document_id"]
            if entry["duplicate"]:
                result.status, result.note = "skipped", f"already {entry['status']} (use --force to re-ingest)"
                results[str(file)] = result
                bar.done(result)
            elif not wait:
                result.status, result.note = "queued", f"task {entry['task_id']}"
                results[str(file)] = result
                bar.done(result)
            else:
                results[str(file)] = result
                tasks[entry["task_id"]] = file
                reports[entry["task_id"]] = bar.track(printable(file.name), key=printable(file))
        finished = set()

        def update(record) -> None:
            file = tasks[record.task_id]
            reports[record.task_id](record.status, record.progress)
            if record.status in TERMINAL and record.task_id not in finished:
                finished.add(record.task_id)
                result = results[str(file)]
                result.status, result.chunks, result.format = record.status, record.chunks, record.format
                result.seconds = round(sum(record.timings.values()), 3)
                if record.error:
                    result.error = {"code": record.error_code, "message": record.error, "hint": None}
                bar.untrack(printable(file))
                bar.done(result)

        if tasks:
            client.wait(list(tasks), update)
    return [results[str(file)] for file in files]


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
    from stack.pipeline.questions import check_question

    if mode not in ("hybrid", "bm25", "dense"):
        fail(f"Unknown mode '{mode}'.", hint="use --mode hybrid, bm25 or dense", exit_code=2, as_json=as_json)
    check_question(query, what="query")  # before opening anything: same answer in both modes (exit 2)
    _, backend = open_backend(warm=True)
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
    from stack.pipeline.questions import check_question

    check_question(question)  # before opening anything: same answer in both modes (exit 2)
    _, backend = open_backend(warm=True)
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

    _, backend = open_backend()
    records = backend.documents(collection=collection, status=status)
    if as_json:
        print_json([
            {"id": r.id, "file_name": r.file_name, "status": r.status, "chunks": r.chunks, "progress": r.progress,
             "collection": r.collection, "format": r.format, "size": r.size, "error": r.error,
             "task_id": r.task_id}
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

    _, backend = open_backend()
    record = backend.document(document_id, collection=collection)
    rows = backend.chunks_of(record) if chunks and record.status == "done" else []
    extracted = _extracted_where(backend, record.id)
    if as_json:
        # "chunks" is the record's count, and with --chunks the chunks themselves (as in both modes);
        # "chunk_count" is the count either way.
        data = record.to_dict() | {"extracted_text": extracted, "chunk_count": record.chunks}
        if chunks:
            data["chunks"] = [{"chunk_id": cid, "text": text, **meta} for cid, text, meta in rows]
        print_json(data)
    else:
        print_document(record, extracted, rows)


def _extracted_where(backend, document_id: str) -> str | None:
    """Where the document's extracted text is kept, through the pipeline's text store (a file under
    extracted_results/, or the database with RAG_DATABASE_URL): the embedded pipeline's own, or for
    a stack the one its settings name; None when none is kept, or the store cannot be reached from
    here (a stack's database on its own network)."""
    from stack.pipeline.backends import open_texts
    from stack.settings import load_settings

    try:
        texts = getattr(backend, "texts", None) or open_texts(load_settings(project_root()))
        return texts.where(document_id)
    except PipelineError:
        return None


def documents_delete(
    document_id: Annotated[str, typer.Argument(help="Document id (or its first 8+ characters).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a document: its vectors, lexical entries, stored file and extracted text."""
    _, backend = open_backend()
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
    client = stack_client("documents retry")
    entry = client.retry(document_id, collection=collection)
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

    client = stack_client("tasks show")
    data = client.task_view(task_id)
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
    client = stack_client("tasks cancel")
    record = client.cancel(task_id)
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

    client = stack_client("tasks list")
    tasks = client.tasks(limit=limit, collection=collection)
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-embed every document of a collection with the configured embedding model."""
    from ragctl.views import cell, ingest_progress, results_table

    mode, pipeline = open_backend()
    if mode == "stack":
        fail("reindex runs in embedded mode only for now: stop the stack first (ragctl down), reindex, then "
             "ragctl up.", hint="ragctl down && ragctl reindex && ragctl up", exit_code=2, as_json=as_json)
    name = collection or pipeline.settings.collection
    records = pipeline.documents(collection=name)
    confirm(
        f"Re-embed the {len(records)} documents of '{name}' with {pipeline.settings.embed_model}? "
        "Search is incomplete until it finishes.",
        yes=yes,
        as_json=as_json,
    )
    with ingest_progress(len(records), enabled=not as_json) as bar:
        results = pipeline.reindex(collection=name, on_document=bar.done)
    failed = [r for r in results if r.status != "done"]
    emit({"collection": name, "embed_model": pipeline.settings.embed_model, "results": [r.to_dict() for r in results]},
         lambda: console.print(results_table(results) if results else cell(
             f"'{name}' is already built with {pipeline.settings.embed_model}; nothing to do.")), as_json=as_json)
    if failed:
        raise typer.Exit(EXIT_ERROR)
