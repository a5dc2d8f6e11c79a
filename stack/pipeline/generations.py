"""Blue/green reindex (issue #28): a collection's new index is built beside the one that answers, then
swapped in by one catalog write.

A collection's index (its Chroma collection and its lexical index) has a generation; the catalog's
``collections.generation`` says which one answers (:meth:`Pipeline.index_of` reads it at every call,
so the API sees a swap made by a worker at its next question).  A reindex:

1. removes whatever an interrupted reindex left (any generation but the live one, up to live + 1);
2. builds generation live + 1 from each document's stored copy, with the configured model and
   chunking, while questions are answered from the live one;
3. (the gate, when asked: the caller asks its question set of the new index through
   :meth:`Pipeline.pinned`, and calls :func:`discard` instead when the answers got worse);
4. catches up with documents added or deleted during the build, then swaps: one transaction writes
   the new generation and the documents' new chunk counts and model, and is refused (to catch up
   again) when the collection's documents changed since the catch-up;
5. drops the old generation after a grace period (a question that resolved it just before the swap
   finishes on it), after one more catch-up for an ingest that wrote into the old index just before.

A kill at any step leaves the old generation answering (the swap is one transaction); the next
reindex's step 1 removes the half-built one.  No transport here: the CLI's embedded mode and the
worker's task call the same functions.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stack.contract import IngestResult
from stack.names import DocumentStatus, IngestOutcome
from stack.pipeline.errors import PipelineError

if TYPE_CHECKING:
    from stack.pipeline.catalog import DocumentRecord
    from stack.pipeline.service import Pipeline

#: How long an old generation is kept after a swap: a question that resolved it just before ends on it.
RETIRE_GRACE_S = 2.0
#: Catch-ups tried before a swap that finds the documents unchanged (each short; see :func:`swap`).
SWAP_ATTEMPTS = 5


@dataclass
class Candidate:
    """A collection's index being built (or built) beside the one that answers."""

    collection: str
    generation: int
    index: str
    model: str
    results: list[IngestResult] = field(default_factory=list)
    chunks: dict[str, int] = field(default_factory=dict)  # document id → its chunks in the new index

    @property
    def failed(self) -> bool:
        return any(r.status != IngestOutcome.DONE for r in self.results)

    def to_dict(self) -> dict:
        """What a worker records (the swap may be asked later, of another worker)."""
        return {"collection": self.collection, "generation": self.generation, "index": self.index,
                "model": self.model, "results": [r.to_dict() for r in self.results], "chunks": self.chunks}

    @classmethod
    def from_dict(cls, data: dict) -> Candidate:
        return cls(data["collection"], int(data["generation"]), data["index"], data["model"],
                   [IngestResult(**r) for r in data.get("results", [])], dict(data.get("chunks", {})))


def cleanup(pipeline: Pipeline, collection: str) -> int:
    """Remove every generation of ``collection``'s index that does not answer (what an interrupted
    reindex, or a crash between a swap and the old one's removal, left); returns the live generation."""
    from stack.pipeline.store import index_name

    live = pipeline.catalog.generation(collection)
    for generation in range(live + 2):
        if generation != live:
            drop(pipeline, index_name(collection, generation))
    return live


def drop(pipeline: Pipeline, index: str) -> None:
    """Remove one index: its vectors and its lexical postings."""
    from stack.pipeline.backends import open_lexical

    pipeline.drop_index_vectors(index)
    open_lexical(pipeline.settings, index).drop()


def build(pipeline: Pipeline, collection: str, *, on_document: Callable[[IngestResult], None] | None = None,
          should_cancel: Callable[[], bool] | None = None) -> Candidate:
    """Build the next generation of ``collection``'s index from its documents' stored copies, with
    ``pipeline``'s settings (model, chunking).  The live index is not touched."""
    from stack.pipeline.store import index_name

    live = cleanup(pipeline, collection)
    generation = live + 1
    candidate = Candidate(collection, generation, index_name(collection, generation), pipeline.settings.embed_model)
    records = [r for r in pipeline.catalog.list(collection) if r.status == DocumentStatus.DONE]
    _add(pipeline, candidate, records, on_document, should_cancel or (lambda: False))
    return candidate


def _add(pipeline: Pipeline, candidate: Candidate, records: list[DocumentRecord],
         on_document: Callable[[IngestResult], None] | None, should_cancel: Callable[[], bool]) -> None:
    """Parse, chunk, embed and write ``records`` into the candidate's index, an embedding batch at a time."""
    builder = pipeline.pinned(candidate.collection, candidate.index)
    embedder = builder.embedder_for(candidate.collection)
    batch: list[tuple[DocumentRecord, list, IngestResult, float]] = []

    def flush() -> None:
        if not batch:
            return
        texts = [chunk.text for _, chunks, _, _ in batch for chunk in chunks]
        try:
            vectors = embedder.encode(texts, should_cancel=should_cancel)
            start, documents = 0, []
            for record, chunks, _, _ in batch:
                documents.append((record, chunks, vectors[start:start + len(chunks)]))
                start += len(chunks)
            builder._write(documents)
        except PipelineError as exc:
            for _, _, result, _ in batch:
                result.status, result.error = IngestOutcome.FAILED, exc.to_dict()
        for record, chunks, result, started in batch:
            if result.status == IngestOutcome.DONE:
                candidate.chunks[record.id] = len(chunks)
            result.seconds = round(time.perf_counter() - started, 3)
            candidate.results.append(result)
            if on_document:
                on_document(result)
        batch.clear()

    for record in records:
        started = time.perf_counter()
        result = IngestResult(record.file_name, record.file_name, IngestOutcome.DONE, record.id, record.format)
        scratch = Path(tempfile.mkdtemp(prefix="ragctl-reindex-"))
        try:
            if should_cancel():
                raise _cancelled(candidate.collection)
            if not record.stored_path or not pipeline.blobs.exists(record.stored_path):
                raise PipelineError(f"The stored copy of {record.file_name} is missing: it cannot be re-embedded.",
                                    hint=f"ragctl ingest {record.file_name} --force   (then ragctl reindex again)")
            document = pipeline.parse(pipeline.blobs.local(record.stored_path, scratch))
            document.metadata["filename"] = record.file_name
            chunks = builder.chunk(document, candidate.collection, embedder=embedder)
        except PipelineError as exc:
            result.status, result.error = IngestOutcome.FAILED, exc.to_dict()
            candidate.results.append(result)
            if on_document:
                on_document(result)
            continue
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result.chunks = len(chunks)
        batch.append((record, chunks, result, started))
        if sum(len(c) for _, c, _, _ in batch) >= pipeline.settings.embed_batch_size:
            flush()
    flush()


def _cancelled(collection: str) -> PipelineError:
    from stack.pipeline.errors import Cancelled

    return Cancelled(f"The reindex of '{collection}' was cancelled; the old index still answers.")


def catch_up(pipeline: Pipeline, candidate: Candidate) -> None:
    """Bring the candidate in line with the catalog as it is now: documents ingested during the build
    are added, deleted ones removed (they must never answer from the new index)."""
    builder = pipeline.pinned(candidate.collection, candidate.index)
    for _ in range(3):  # each pass is short; the swap checks again (see swap)
        live = {r.id: r for r in pipeline.catalog.list(candidate.collection) if r.status == DocumentStatus.DONE}
        gone = [doc_id for doc_id in candidate.chunks if doc_id not in live]
        missing = [record for doc_id, record in live.items() if doc_id not in candidate.chunks]
        if not gone and not missing:
            return
        if gone:
            builder.store(candidate.collection).delete_documents(gone)
            lexical = builder.lexical(candidate.collection)
            for doc_id in gone:
                lexical.delete(doc_id)
                candidate.chunks.pop(doc_id)
        _add(pipeline, candidate, missing, None, lambda: False)


def swap(pipeline: Pipeline, candidate: Candidate, *, grace_s: float = RETIRE_GRACE_S) -> None:
    """Make the candidate the index that answers (one catalog transaction), then drop the old one.

    The swap's transaction checks that the collection's documents are still those the candidate holds:
    an ingest or a deletion that lands after the last catch-up sends it back to catch up.  An ingest that
    wrote into the old index just before the swap and recorded itself done just after is caught by one
    more catch-up once the grace period has let it finish."""
    from stack.pipeline.store import index_name

    previous = None
    for _ in range(SWAP_ATTEMPTS):
        catch_up(pipeline, candidate)
        previous = pipeline.catalog.swap_generation(candidate.collection, candidate.generation, _rebuilt(candidate),
                                                    expected=set(candidate.chunks))
        if previous is not None:
            break
    else:  # documents keep arriving: swap now, the catch-up after the grace period takes what came since
        previous = pipeline.catalog.swap_generation(candidate.collection, candidate.generation, _rebuilt(candidate))
    if grace_s:
        time.sleep(grace_s)
    caught = set(candidate.chunks)
    catch_up(pipeline, candidate)
    if set(candidate.chunks) != caught:
        pipeline.catalog.swap_generation(candidate.collection, candidate.generation, _rebuilt(candidate))
    drop(pipeline, index_name(candidate.collection, previous))


def _rebuilt(candidate: Candidate) -> list[tuple[str, int, str]]:
    """(document id, chunks, model) of every document in the candidate: the catalog's rows after the swap."""
    return [(doc_id, chunks, candidate.model) for doc_id, chunks in candidate.chunks.items()]


def discard(pipeline: Pipeline, candidate: Candidate) -> None:
    """Remove a candidate that is not swapped in (the gate refused it, or a document failed)."""
    drop(pipeline, candidate.index)
