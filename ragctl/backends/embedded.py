"""The embedded backend: the pipeline in this process, over the project's own data folder.

The module of ``ragctl`` that runs the pipeline (``stack.pipeline``), loaded only when a project
runs embedded: a base install (no ``[stack]`` extra) that drives a running stack never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragctl.backends import IngestWatcher
from ragctl.errors import NotRunning

if TYPE_CHECKING:
    from stack.contract import Answer, CollectionInfo, DocumentRecord, Hit, IngestResult
    from stack.pipeline.service import Pipeline
    from stack.settings import Settings


def open_pipeline(root: Path) -> Pipeline:
    """The project's pipeline; a bad value in ragctl.toml or the environment is a usage error (exit 2)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # closed networks: never wait on the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from pydantic import ValidationError

    from ragctl.errors import UsageError
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    try:
        return Pipeline(load_settings(root))
    except (ValidationError, ValueError) as exc:  # a bad value or bad TOML in ragctl.toml, or the environment
        raise UsageError(f"The configuration is invalid: {exc}",
                         "fix ragctl.toml or the RAG_* environment variables", code="config_invalid") from exc


def read_file(path: Path):
    """Parse ``path`` with the default settings and save nothing (``extract`` outside a project: a file tool)."""
    from stack.pipeline.service import Pipeline
    from stack.settings import Settings

    document, _ = Pipeline(Settings()).read(path)
    return document


def sqlite_catalog_documents(root: Path) -> dict[str, list[str]]:
    """Collection → document ids, read from the project's SQLite catalog (read-only; none: no documents):
    what a one-host project holds, for backup, restore and a move to another runtime."""
    path = root / "data" / "catalog.sqlite"
    if not path.is_file():
        return {}
    from stack.pipeline.catalog import Catalog

    documents: dict[str, list[str]] = {}
    for record in sorted(Catalog(path).list(), key=lambda r: (r.collection, r.id)):
        documents.setdefault(record.collection, []).append(record.id)
    return documents


def release_local_stores() -> None:
    """Close the project stores this process opened (Chroma keeps one client per folder for the life of
    the process): after a restore replaced their files, the next open reads them anew."""
    from stack.pipeline.store import release_local_clients

    release_local_clients()


class EmbeddedBackend:
    """:class:`ragctl.backends.Backend` over an in-process :class:`~stack.pipeline.service.Pipeline`.

    ``pipeline`` and ``settings`` stay reachable for what only this project's own pipeline can do
    (``extract``, ``reindex``, the ``config set --eval`` gate)."""

    mode = "embedded"

    def __init__(self, pipeline: Pipeline, root: Path) -> None:
        self.pipeline, self.root = pipeline, root

    @classmethod
    def open(cls, root: Path, *, warm: bool = False) -> EmbeddedBackend:
        """``warm``: a command that analyses one question (search, ask) uses the warm analyser process,
        or starts one for the next command (stack/pipeline/warm.py)."""
        backend = cls(open_pipeline(root), root)
        if warm:
            from stack.pipeline import warm as warm_process

            warm_process.attach(backend.settings.warm)
        return backend

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    def where(self) -> str:
        return f"in-process pipeline, project {self.root}"

    # -- documents in ---------------------------------------------------------------------------
    def ingest_files(self, files: Sequence[Path], *, collection: str | None = None, force: bool = False,
                     wait: bool = True, names: Mapping[Path, str] | None = None,
                     watcher: IngestWatcher | None = None) -> list[IngestResult]:
        """Each file is parsed, chunked and embedded here; ``wait`` does not apply (nothing is handed on)."""
        from stack.pipeline.service import IngestItem

        self.pipeline.check_model(collection or self.settings.collection)
        names = names or {}
        # A generator: each file's bar appears when the pipeline takes the file up.
        items = (IngestItem(file, display_name=names.get(file), progress=watcher.started(file) if watcher else None)
                 for file in files)
        return self.pipeline.ingest_files(items, collection=collection, force=force,
                                          on_result=watcher.ended if watcher else None)

    # -- questions ------------------------------------------------------------------------------
    def search(self, query: str, *, collection: str | None = None, top_k: int | None = None,
               mode: str = "hybrid") -> list[Hit]:
        return self.pipeline.search(query, collection=collection, top_k=top_k, mode=mode)

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None,
            generation: int | None = None) -> Answer:
        if generation is None:
            return self.pipeline.ask(question, collection=collection, top_k=top_k)
        name = collection or self.settings.collection
        return self.pinned({name: generation}).ask(question, collection=name, top_k=top_k)

    def warm_up(self, collection: str | None = None) -> None:
        from stack.contract import PipelineError

        self.pipeline.warm_up()
        try:  # the analyser and the collection's index too
            self.pipeline.search("warm-up", collection=collection, top_k=1)
        except PipelineError:
            pass  # an unknown collection: each question reports it

    def model_notice(self, collection: str | None = None) -> str | None:
        return self.pipeline.model_notice(collection)

    def embedding(self, collection: str) -> dict:
        from stack.pipeline.embed import backend_for

        model = self.pipeline.model_name(collection)  # the collection's own recorded model
        return {"model": model, "backend": backend_for(model)}

    # -- the catalog ----------------------------------------------------------------------------
    def documents(self, *, collection: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        return self.pipeline.documents(collection=collection, status=status)

    def document(self, id_prefix: str, *, collection: str | None = None) -> DocumentRecord:
        return self.pipeline.document(id_prefix, collection=collection)

    def chunks_of(self, record: DocumentRecord) -> list[tuple[str, str, dict]]:
        return self.pipeline.chunks_of(record)

    def extracted_where(self, document_id: str, *, collection: str | None = None) -> str | None:
        from stack.contract import PipelineError

        try:
            return self.pipeline.texts.where(document_id)
        except PipelineError:  # the text store cannot be reached: nothing to point at
            return None

    def rename_document(self, document_id: str, file_name: str, *, collection: str | None = None):
        return self.pipeline.rename_document(document_id, file_name, collection=collection)

    def delete_document(self, id_prefix: str, *, collection: str | None = None):
        return self.pipeline.delete_document(id_prefix, collection=collection)

    # -- tasks: a stack's (here a document is ingested while the command runs) -----------------
    def _no_tasks(self, command: str) -> NotRunning:
        return NotRunning(f"{command} needs a running stack; this project works in embedded mode.",
                          "ragctl up --runtime local")

    def tasks(self, *, limit: int = 20, collection: str | None = None) -> list[dict]:
        raise self._no_tasks("tasks list")

    def task_view(self, task_id: str) -> dict:
        raise self._no_tasks("tasks show")

    def cancel(self, task_id: str) -> DocumentRecord:
        raise self._no_tasks("tasks cancel")

    def retry(self, document_id: str, *, collection: str | None = None) -> dict:
        raise self._no_tasks("documents retry")

    # -- collections ----------------------------------------------------------------------------
    def collections(self) -> list[CollectionInfo]:
        return self.pipeline.collections()

    def collection_info(self, name: str) -> CollectionInfo:
        return self.pipeline.collection_info(name)

    def create_collection(self, name: str, description: str | None = None) -> CollectionInfo:
        return self.pipeline.create_collection(name, description)

    def delete_collection(self, name: str) -> CollectionInfo:
        return self.pipeline.delete_collection(name)

    # -- blue/green generations (issue #28): what the gate (ragctl.ops.gate) drives in this process ----
    def generation(self, collection: str) -> int:
        """The generation of ``collection``'s index that answers now."""
        return self.pipeline.catalog.generation(collection)

    def pinned(self, generations: Mapping[str, int]) -> EmbeddedBackend:
        """This backend asking the given generations of those collections' indexes (each with the model it
        was built with), whatever the catalog says answers: the gate asks the old and the new index before
        any swap."""
        from stack.pipeline.store import index_name

        pipeline = self.pipeline
        for name, generation in generations.items():
            pipeline = pipeline.pinned(name, index_name(name, generation))
        return EmbeddedBackend(pipeline, self.root)

    def collections_with_documents(self) -> list[str]:
        """The collections a setting that shapes the index must rebuild: those holding documents."""
        stats = self.pipeline.catalog.collection_stats()
        return sorted(name for name, counts in stats.items() if counts.get("documents"))

    def build_generation(self, collection: str, *, on_document: Callable[[IngestResult], None] | None = None):
        """The next generation of ``collection``'s index built beside the live one with this backend's
        settings (a :class:`stack.pipeline.generations.Candidate`: ``collection``, ``generation``,
        ``results``, ``failed``)."""
        from stack.pipeline import generations

        return generations.build(self.pipeline, collection, on_document=on_document)

    def swap_generation(self, candidate) -> None:
        """Make a built generation the one that answers (one catalog write); the old one is removed."""
        from stack.pipeline import generations

        generations.swap(self.pipeline, candidate)

    def discard_generation(self, candidate) -> None:
        """Remove a built (or half-built) generation that is not swapped in."""
        from stack.pipeline import generations

        generations.discard(self.pipeline, candidate)


# -- what the in-process stack says about this host (doctor, the embedded runtime's probe) --------
def ocr_missing(languages: str) -> tuple[str, str] | None:
    """Why the pipeline in this process cannot OCR (no tesseract, or not its ``languages``' models) and the
    line that installs what is missing; None when it can (doctor's OCR check)."""
    from stack.pipeline.ocr import INSTALL_LINE, missing

    reason = missing(languages)
    return (reason, INSTALL_LINE) if reason else None


def probe_vectors(settings: Settings) -> dict[str, Any]:
    """The project's Chroma, read in this process: its collections and their counts (``stack.probe``)."""
    from stack.probe import probe_chroma

    return probe_chroma(settings)
