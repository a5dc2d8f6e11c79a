"""What the data commands talk to: a :class:`Backend`, whether the project runs embedded (the pipeline
in this process, :mod:`ragctl.backends.embedded`) or as a stack (its API, :class:`ragctl.client.StackClient`).

A command asks for a backend (``ragctl.cli.context.open_backend``) and calls these methods; it never
asks which kind it got.  Both return the contract's types (``stack.contract``), so one renderer
shows both.  A new data command adds a method here and to both backends; a command that only one
kind can serve lets the other raise :class:`ragctl.errors.NotRunning` (embedded: no tasks, no keys).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from stack.contract import Answer, CollectionInfo, DocumentRecord, Hit, IngestResult

#: ``report(stage, fraction)``: where one file stands while it is ingested.
Report = Callable[[str, float], None]


class IngestWatcher(Protocol):
    """Hears a batch ingest as it goes (the CLI's progress bars, ``ragctl.views.IngestProgress``)."""

    def started(self, path: Path) -> Report:
        """A file was taken up (parsed here, or handed to a worker); returns its reporter."""

    def ended(self, result: IngestResult) -> None:
        """A file's row is final: done, skipped, queued (not waited for), failed or cancelled."""


@runtime_checkable
class Backend(Protocol):
    #: How the answers are made, for output and eval fingerprints: "embedded" or "stack".
    mode: str

    def where(self) -> str:
        """Where the work happens, for a human: the project folder or the API's address."""

    def ingest_files(self, files: Sequence[Path], *, collection: str | None = None, force: bool = False,
                     wait: bool = True, names: Mapping[Path, str] | None = None,
                     watcher: IngestWatcher | None = None) -> list[IngestResult]:
        """Ingest files, one row each in their order; a file that cannot be read or parsed is its own
        failed row.  ``names``: the name to record for a file (sync: its path in the folder).
        ``wait=False``: hand the files over and return (a stack's rows are then ``queued``)."""

    def search(self, query: str, *, collection: str | None = None, top_k: int | None = None,
               mode: str = "hybrid") -> list[Hit]: ...

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None,
            generation: int | None = None) -> Answer:
        """``generation``: a given generation of the collection's index, not the one that answers now
        (the gate asks a blue/green reindex's new index before it is swapped in)."""

    def warm_up(self, collection: str | None = None) -> None:
        """Load what answering needs now, so that the first question's latency is not loading time."""

    def model_notice(self, collection: str | None = None) -> str | None:
        """A line to show when a collection runs on an earlier default embedding model, else None."""

    def embedding(self, collection: str) -> dict:
        """How a collection's passages are encoded ({model, backend, …}), for eval fingerprints."""

    def documents(self, *, collection: str | None = None, status: str | None = None) -> list[DocumentRecord]: ...

    def document(self, id_prefix: str, *, collection: str | None = None) -> DocumentRecord: ...

    def chunks_of(self, record: DocumentRecord) -> list[tuple[str, str, dict]]: ...

    def extracted_where(self, document_id: str, *, collection: str | None = None) -> str | None:
        """Where a document's extracted text is kept, when it is kept and can be told."""

    def rename_document(self, document_id: str, file_name: str, *, collection: str | None = None): ...

    def delete_document(self, id_prefix: str, *, collection: str | None = None): ...

    def tasks(self, *, limit: int = 20, collection: str | None = None) -> list[dict]: ...

    def task_view(self, task_id: str) -> dict: ...

    def cancel(self, task_id: str) -> DocumentRecord: ...

    def retry(self, document_id: str, *, collection: str | None = None) -> dict: ...

    def collections(self) -> list[CollectionInfo]: ...

    def collection_info(self, name: str) -> CollectionInfo: ...

    def create_collection(self, name: str, description: str | None = None) -> CollectionInfo: ...

    def delete_collection(self, name: str) -> CollectionInfo: ...
