"""The pipeline as one service object: what the CLI's embedded mode, the API and the workers call.

``Pipeline`` owns the heavy parts (embedding model, Chroma client, lexical index, catalog) and
loads each lazily, once.  Every operation the product offers is a method here; transports
(CLI, HTTP, Celery) only translate arguments and results.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from stack.contract import CollectionInfo, IngestResult
from stack.names import DocumentStatus, IngestOutcome
from stack.pipeline import collection_admin, files, intake
from stack.pipeline.answer import Answer, extractive_answer, llm_answer
from stack.pipeline.backends import BlobStore, ExtractedTexts, open_blobs, open_catalog, open_texts
from stack.pipeline.catalog import DocumentCatalog, DocumentRecord
from stack.pipeline.chunk import Chunk, chunk_document
from stack.pipeline.document import ParsedDocument
from stack.pipeline.errors import Cancelled, CorruptDocument, NotFound, PipelineError
from stack.pipeline.questions import check_question
from stack.pipeline.retrieve import Hit, default_fusion_weights, hybrid_search
from stack.settings import Settings

#: progress(stage, fraction of this document done)
ProgressCallback = Callable[[str, float], None]
#: on_chunks(chunks of this document embedded so far, its chunk count), after each embedding batch
ChunksCallback = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

# Share of a document's work each stage ends at, for one progress value per document.
_STAGE_END = {"parsing": 0.15, "chunking": 0.2, "embedding": 0.9, "storing": 1.0}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class IngestItem:
    """One file to ingest: its path, the name to record (an upload's own name), its progress."""

    path: Path
    display_name: str | None = None
    progress: ProgressCallback | None = None
    on_chunks: ChunksCallback | None = None


class _Ingesting:
    """One document on its way in: its record, result, chunks, and where it stands."""

    def __init__(self, pipeline: Pipeline, item: IngestItem, collection: str, should_cancel: CancelCheck) -> None:
        self.pipeline, self.item, self.collection, self.should_cancel = pipeline, item, collection, should_cancel
        # Names as valid Unicode (a name's non-UTF-8 bytes become U+FFFD): the catalog and JSON hold them.
        self.result = IngestResult(files.printable(item.path), files.printable(item.display_name or item.path.name),
                                   IngestOutcome.FAILED)
        self.record: DocumentRecord | None = None
        self.chunks: list[Chunk] | None = None
        self.snapshot: files.Snapshot | None = None  # the private copy of the file that is read
        self.vectors = None  # its chunks' vectors, between the embedding and the store
        self.started = time.perf_counter()
        self._report = item.progress or (lambda stage, fraction: None)
        self._last_saved = 0.0

    def progress(self, stage_name: str, fraction: float, *, save: bool = False) -> None:
        """Record where the document is (the status record others read), then tell the caller."""
        if self.advance(stage_name, fraction) or save:
            self.save()
        self.report(stage_name, fraction)

    def advance(self, stage_name: str, fraction: float) -> bool:
        """Set where the document is; True when its record is due to be saved (once a second)."""
        self.record.status, self.record.progress = stage_name, round(fraction, 3)
        return time.monotonic() - self._last_saved >= 1.0

    def save(self) -> None:
        self.saved()
        self.pipeline.catalog.upsert(self.record)

    def saved(self) -> None:
        """The record is being written now (alone, or with its batch's others)."""
        self.record.heartbeat_at = time.time()
        self._last_saved = time.monotonic()

    def report(self, stage_name: str, fraction: float) -> None:
        self._report(stage_name, fraction)

    def enter(self, name: str) -> float:
        """Begin stage ``name`` (refused when the ingest was cancelled); returns its first progress value."""
        if self.should_cancel():
            raise Cancelled(f"Ingest of {self.record.file_name} was cancelled before {name}.")
        self.record.note(name)
        return _STAGE_END[name] - 0.05 if name != "parsing" else 0.0

    def stage(self, name: str, *, save: bool = True) -> None:
        """Begin stage ``name``; ``save=False`` for a stage that ends at once (saved with the next)."""
        self.progress(name, self.enter(name), save=save)

    def ocr_page(self, done: int, total: int) -> None:
        """One more page read by OCR: the caller sees the stage "ocr 12/200"; the record stays parsing."""
        if done == 1:
            self.record.note(f"ocr {total} page(s)")
        fraction = _STAGE_END["parsing"] * done / max(total, 1)
        if self.advance(DocumentStatus.PARSING, fraction):
            self.save()
        self.report(f"ocr {done}/{total}", fraction)

    def note_ocr(self, report: dict | None) -> None:
        """The stage log names the pages OCR read badly or not at all (the report is in the metadata)."""
        if not report:
            return
        if report["low_confidence_pages"]:
            pages = ", ".join(map(str, report["low_confidence_pages"][:20]))
            self.record.note(f"ocr: low confidence (< {report['min_confidence']:.0f}) on page(s) {pages}")
        if report["failed_pages"]:
            self.record.note("ocr: page(s) not read: " + ", ".join(map(str, report["failed_pages"][:20])))

    def timed(self, name: str, started: float) -> None:
        self.record.timings[name] = round(time.perf_counter() - started, 4)


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores: dict[str, object] = {}  # by index name
        self._recorded_models: dict[str, dict] = {}  # by index name
        self._pinned: dict[str, str] = {}  # collection → the index this view reads (see pinned)

    def pinned(self, collection: str, index: str) -> Pipeline:
        """This pipeline (same settings, same clients) reading and writing ``collection`` in ``index``,
        whatever the catalog says answers for it, and with the model that index was built with: the
        gate asks a question set of the index being built, and of the old one, before any swap."""
        view = copy.copy(self)
        view._stores, view._recorded_models = {}, {}
        view._pinned = {**self._pinned, collection: index}
        return view

    def index_of(self, collection: str) -> str:
        """The index (Chroma collection and lexical index) that answers for ``collection`` now: one
        catalog read, so every process sees a reindex's swap at its next call."""
        from stack.pipeline.store import index_name

        if collection in self._pinned:
            return self._pinned[collection]
        return index_name(collection, self.catalog.generation(collection))

    # -- the heavy parts, each loaded once --------------------------------------------------
    @property
    def embedder(self):
        """The embedder of the default collection."""
        return self.embedder_for(self.settings.collection)

    def warm_up(self) -> None:
        """Load the embedding model now, not on the first document or question (the API and the
        workers call it in a background thread at start; a caller that arrives meanwhile waits for
        the same load).  A failure is logged: the first real use reports it."""
        try:
            self.embedder.encode(["warm-up"])
        except Exception as exc:  # noqa: BLE001 - see above
            logging.getLogger(__name__).warning("could not load the embedding model at start: %s", exc)

    def embedder_for(self, collection: str):
        from stack.pipeline.embed import get_embedder

        s = self.settings
        embedder = get_embedder(self.model_name(collection), s.device, s.embed_batch_size, s.torch_threads,
                                 s.embed_precision)
        # Only callers that announce their chunks (expect: the worker's tasks) make a batch wait.
        embedder.share_wait_s = s.embed_share_wait_ms / 1000
        return embedder

    def model_name(self, collection: str) -> str:
        """The embedding model a collection is read and written with.

        The configured model when the user named one.  Otherwise the model the collection was
        built with: when the packaged default changes, an existing project keeps answering with
        its own vectors until ``ragctl reindex`` moves it (see ``model_notice``).  A new
        collection gets the default."""
        s = self.settings
        if "embed_model" in s.model_fields_set and collection not in self._pinned:
            return s.embed_model
        recorded = self._recorded(collection)
        return (recorded or {}).get("embed_model") or s.embed_model

    def model_notice(self, collection: str | None = None) -> str | None:
        """A sentence for the user when a collection is still on an earlier default model."""
        collection = self._collection(collection)
        current = self.model_name(collection)
        if current == self.settings.embed_model:
            return None
        return (f"Collection '{collection}' is still embedded with {current}; the default is now "
                f"{self.settings.embed_model} (multilingual: better answers to Korean questions). "
                f"Run: ragctl reindex --collection {collection}")

    def _recorded(self, collection: str) -> dict | None:
        from stack.pipeline.store import recorded_model

        index = self.index_of(collection)
        if index not in self._recorded_models:
            recorded = recorded_model(self.chroma, index)
            if recorded is None:
                return None  # not cached: the collection may be created any moment
            self._recorded_models[index] = recorded
        return self._recorded_models[index]

    @cached_property
    def chroma(self):
        from stack.pipeline.store import open_chroma

        return open_chroma(self.settings)

    @cached_property
    def catalog(self) -> DocumentCatalog:
        return open_catalog(self.settings)

    @cached_property
    def texts(self) -> ExtractedTexts:
        return open_texts(self.settings)

    @cached_property
    def blobs(self) -> BlobStore:
        return open_blobs(self.settings)

    def lexical(self, collection: str):
        from stack.pipeline.backends import open_lexical

        return open_lexical(
            self.settings, self.index_of(collection),
            # An index written before the analyzer kept chunk texts is rebuilt from the store's.
            chunk_texts=lambda doc_id: [(cid, text) for cid, text, _ in self.store(collection).document_chunks(doc_id)],
        )

    def store(self, collection: str):
        from stack.pipeline.embed import backend_for
        from stack.pipeline.store import VectorStore

        index = self.index_of(collection)
        if index not in self._stores:
            recorded = self.check_model(collection)
            # An existing collection knows its dimension: no need to load the model (the API
            # deletes and lists without ever loading it).
            dimension = recorded.get("dimension") if recorded else None
            model_name = self.model_name(collection)
            self._stores[index] = VectorStore(
                self.chroma, collection, model_name=model_name,
                dimension=dimension or self.embedder_for(collection).dimension,
                backend=backend_for(model_name), index=index,
            )
        return self._stores[index]

    def check_model(self, collection: str) -> dict | None:
        """Fail fast, before any parsing or model loading, when the collection holds another model.

        Returns what the collection recorded (model, dimension), or None for a new collection."""
        from stack.pipeline.store import check_model, recorded_model, validate_collection_name

        validate_collection_name(collection)
        index = self.index_of(collection)
        recorded = recorded_model(self.chroma, index)
        if recorded is None:
            self._recorded_models.pop(index, None)
        else:
            self._recorded_models[index] = recorded
            check_model(collection, recorded, self.model_name(collection), None)
        return recorded

    def _collection(self, collection: str | None) -> str:
        return collection or self.settings.collection

    # -- documents in -------------------------------------------------------------------------
    def parse(self, path: Path, *, on_page: Callable[[int, int], None] | None = None,
              should_cancel: CancelCheck | None = None) -> ParsedDocument:
        """Parse one file; ``on_page(done, total)`` after each page read by OCR, cancel checked between them."""
        from stack.pipeline.ocr import OcrOptions
        from stack.pipeline.parsers import parse_file

        ocr = OcrOptions.from_settings(self.settings, on_page=on_page, should_cancel=should_cancel)
        try:
            return parse_file(
                path, max_bytes=self.settings.max_upload_bytes, max_unzipped_bytes=self.settings.max_unzipped_bytes,
                ocr=ocr,
            )
        except PipelineError:
            raise
        except Exception as exc:  # a parser library choking on one file fails that file only
            raise CorruptDocument(
                f"{path.name} could not be read: {type(exc).__name__}: {exc}",
                hint="re-save the file in its application, or report it with ragctl extract FILE --json",
            ) from exc

    def extract(self, path: Path, document_id: str | None = None) -> ParsedDocument:
        """Parse a file (:meth:`read`) and save its text and blocks under extracted_results/."""
        document, sha256 = self.read(path)
        self.save_extracted(document_id or sha256, document.metadata["filename"], document)
        return document

    def read(self, path: Path) -> tuple[ParsedDocument, str]:
        """Parse a file, saving nothing; returns the document and the SHA-256 of the bytes read.

        The file is read once, into a private copy (:func:`stack.contract.snapshot`): a FIFO, a
        vanished or unreadable file raises a PipelineError; nothing blocks."""
        path = Path(path)
        scratch = Path(tempfile.mkdtemp(prefix="ragctl-extract-"))
        try:
            snap = files.snapshot(path, scratch, max_bytes=self.settings.max_upload_bytes)
            document = self.parse(snap.path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        document.metadata["filename"] = files.printable(path.name)
        return document, snap.sha256

    def save_extracted(self, document_id: str, file_name: str, document: ParsedDocument) -> str:
        """Save a document's text and blocks (extracted_results/, or the database); returns where."""
        data = {"document_id": document_id, "file_name": file_name, **document.to_dict()}
        return self.texts.save(document_id, file_name, document.text, data)

    def ingest_file(
        self,
        path: Path,
        *,
        collection: str | None = None,
        force: bool = False,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        display_name: str | None = None,
        on_chunks: ChunksCallback | None = None,
    ) -> IngestResult:
        """Parse, chunk, embed and store one file.  Bad input fails this file only, with its reason."""
        item = IngestItem(path, display_name=display_name, progress=progress, on_chunks=on_chunks)
        return self.ingest_files([item], collection=collection, force=force, should_cancel=should_cancel)[0]

    def ingest_files(
        self,
        items: Iterable[IngestItem | Path],
        *,
        collection: str | None = None,
        force: bool = False,
        should_cancel: CancelCheck | None = None,
        on_result: Callable[[IngestResult], None] | None = None,
    ) -> list[IngestResult]:
        """Ingest many files; results in the order given, ``on_result`` as each one ends.

        Small documents are embedded together: their chunks wait until a whole embedding batch is
        full, so a folder of one-paragraph files is encoded in full batches, like one big file.
        Bad input still fails only its own file."""
        collection = self._collection(collection)
        try:  # not a collection being deleted (each file fails with why); recorded when new
            collection_admin.check_writable(self, collection)
            refused = None
        except PipelineError as exc:
            refused = exc
        cancel = should_cancel or (lambda: False)
        batch_size = self.settings.embed_batch_size
        results: list[IngestResult] = []
        waiting: list[_Ingesting] = []
        # Each file is read once, into a private copy here; the copy goes as soon as its file ends.
        scratch = Path(tempfile.mkdtemp(prefix="ragctl-ingest-"))

        def finish(job: _Ingesting) -> None:
            files.discard(job.snapshot)
            job.snapshot = None
            job.result.seconds = round(time.perf_counter() - job.started, 3)
            if on_result is not None:
                on_result(job.result)

        def embed_waiting() -> None:
            for job in self._embed_and_store(waiting, cancel):
                finish(job)
            waiting.clear()

        try:
            for item in items:
                item = item if isinstance(item, IngestItem) else IngestItem(Path(item))
                job = self._prepare(item, collection, force, cancel, scratch, refused)
                results.append(job.result)
                if job.chunks is None:  # skipped or failed already
                    finish(job)
                    continue
                waiting.append(job)
                if sum(len(j.chunks) for j in waiting) >= batch_size:
                    embed_waiting()
            embed_waiting()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return results

    def _prepare(self, item: IngestItem, collection: str, force: bool, should_cancel: CancelCheck,
                 scratch: Path, refused: PipelineError | None = None) -> _Ingesting:
        """Everything before embedding: read (once, into ``scratch``), identify, skip or register, parse,
        chunk.  Whatever is wrong with the file (vanished, unreadable, a FIFO…) fails this file only."""
        job = _Ingesting(self, item, collection, should_cancel)
        try:
            if refused is not None:
                raise refused
            job.snapshot = files.snapshot(item.path, scratch, max_bytes=self.settings.max_upload_bytes)
            size, document_id = job.snapshot.size, job.snapshot.sha256
            job.result.document_id = document_id
            existing = self.catalog.get(collection, document_id)
            decision = intake.decide(existing, replace=force, stale_after_s=self.settings.stale_after_s)
            if decision.duplicate:
                job.result.status, job.result.chunks, job.result.format = (
                    IngestOutcome.SKIPPED, existing.chunks, existing.format)
                job.result.note = f"{decision.reason} (use --force to re-ingest)"
                return job
            self.check_model(collection)
            fresh = {"file_name": job.result.file_name, "size": size, "status": DocumentStatus.PARSING, "progress": 0.0,
                     "timings": {}, "embed_model": self.model_name(collection), "error": None, "error_code": None,
                     "report": {}}
            # A record the API queued keeps its task id, attempts, worker and log.
            job.record = (replace(existing, **fresh) if existing is not None
                          else DocumentRecord(id=document_id, collection=collection, **fresh))

            t = time.perf_counter()
            job.stage("parsing")
            document = self.parse(job.snapshot.path, on_page=job.ocr_page, should_cancel=should_cancel)
            document.metadata["filename"] = files.printable(item.path.name)
            job.note_ocr(document.metadata.get("ocr"))
            job.record.format, job.record.parser = document.format, document.parser
            job.record.report = document.report.to_dict()
            job.result.report = job.record.report if document.report else None
            self.save_extracted(job.record.id, job.record.file_name, document)
            job.timed("parsing", t)

            t = time.perf_counter()
            job.stage("chunking", save=False)
            job.chunks = self.chunk(document, collection)
            job.timed("chunking", t)
        except PipelineError as exc:
            self._fail(job, exc)
        return job

    def _embed_and_store(self, jobs: list[_Ingesting], should_cancel: CancelCheck) -> list[_Ingesting]:
        """Embed the chunks of ``jobs`` in shared batches, then store them together.

        A batch of small files is one embedding call, one vector-store write, one lexical-index
        transaction and one catalog transaction per step, not one of each per file (issue #25:
        per-file writes cost more than the encode of a one-paragraph file)."""
        if not jobs:
            return []
        ready = self._enter_all(jobs, "embedding")
        texts = [chunk.text for job in ready for chunk in job.chunks]
        bounds, start = [], 0
        for job in ready:
            bounds.append((job, start, start + len(job.chunks)))
            start += len(job.chunks)
        low, high = _STAGE_END["chunking"], _STAGE_END["embedding"]

        def on_batch(done: int) -> None:
            moved = [(job, first, last, low + (high - low) * min(1.0, (done - first) / (last - first)))
                     for job, first, last in bounds if first < done and last > first]
            self._save_all([job for job, _, _, fraction in moved if job.advance("embedding", fraction)])
            for job, first, last, fraction in moved:
                job.report("embedding", fraction)
                if job.item.on_chunks is not None:
                    job.item.on_chunks(min(done, last) - first, last - first)

        t = time.perf_counter()
        try:
            vectors = self.embedder_for(jobs[0].collection).encode(texts, on_batch=on_batch,
                                                                    should_cancel=should_cancel)
        except PipelineError as exc:
            for job in ready:
                self._fail(job, exc)
            return jobs
        seconds = time.perf_counter() - t
        for job, first, last in bounds:
            # The batch's time, shared by chunk count: what this document cost.
            job.record.timings["embedding"] = round(seconds * (last - first) / max(1, len(texts)), 4)
            job.vectors = vectors[first:last]
        self._store_all(self._enter_all(ready, "storing", save=False))
        return jobs

    def _enter_all(self, jobs: list[_Ingesting], stage: str, *, save: bool = True) -> list[_Ingesting]:
        """Begin ``stage`` for each job (a cancelled one fails here), saved in one transaction."""
        entered = []
        for job in jobs:
            try:
                fraction = job.enter(stage)
            except PipelineError as exc:
                self._fail(job, exc)
                continue
            due = job.advance(stage, fraction)
            entered.append((job, fraction, due or save))
        self._save_all([job for job, _, due in entered if due])
        for job, fraction, _ in entered:
            job.report(stage, fraction)
        return [job for job, _, _ in entered]

    def _save_all(self, jobs: list[_Ingesting]) -> None:
        if jobs:
            for job in jobs:
                job.saved()
            self.catalog.upsert_many([job.record for job in jobs])

    def _store_all(self, jobs: list[_Ingesting]) -> None:
        """Write the jobs' chunks (vectors, lexical index), their files, then their records as done."""
        if not jobs:
            return
        t = time.perf_counter()
        try:
            self._write([(job.record, job.chunks, job.vectors) for job in jobs])
        except PipelineError as exc:
            for job in jobs:
                self._fail(job, exc)
            return
        write_s = (time.perf_counter() - t) / max(1, sum(len(job.chunks) for job in jobs))
        done = []
        for job in jobs:
            record, t = job.record, time.perf_counter()
            try:
                # The bytes that were hashed and parsed, not whatever is at the path now.
                record.stored_path = self.blobs.put(record.id, record.file_name,
                                                    job.snapshot.path if job.snapshot else job.item.path)
            except PipelineError as exc:
                self._fail(job, exc)
                continue
            record.chunks, record.error_code, record.error = len(job.chunks), None, None
            record.timings["storing"] = round(time.perf_counter() - t + write_s * len(job.chunks), 4)
            record.note(f"done: {len(job.chunks)} chunks")
            job.advance(DocumentStatus.DONE, 1.0)
            done.append(job)
        try:
            self._save_all(done)
        except PipelineError as exc:
            for job in done:
                self._fail(job, exc)
            return
        for job in done:
            job.report(DocumentStatus.DONE, 1.0)
            job.result.status, job.result.chunks, job.result.format = (
                IngestOutcome.DONE, job.record.chunks, job.record.format)

    def _fail(self, job: _Ingesting, exc: PipelineError) -> None:
        result, record = job.result, job.record
        job.chunks = None
        result.status = IngestOutcome.CANCELLED if isinstance(exc, Cancelled) else IngestOutcome.FAILED
        result.error = exc.to_dict()
        if record is not None:
            self._undo(record)
            # A record that was written and is gone now was deleted while it ran: it stays gone.
            deleted = record.updated_at > 0 and self.catalog.get(job.collection, record.id) is None
            record.status, record.error_code, record.error = DocumentStatus(result.status), exc.code, exc.message
            record.note(f"{result.status}: {exc.message}")
            if not deleted:
                self.catalog.upsert(record)

    def chunk(self, document: ParsedDocument, collection: str | None = None, *, embedder=None) -> list[Chunk]:
        """The document's chunks, counted in the tokens of ``embedder`` (default: the collection's)."""
        embedder = embedder or self.embedder_for(self._collection(collection))
        return chunk_document(
            document,
            embedder.count_tokens,
            max_tokens=min(self.settings.chunk_tokens, embedder.max_tokens),
            overlap_tokens=self.settings.chunk_overlap,
        )

    def _write(self, documents: list[tuple[DocumentRecord, list[Chunk], object]]) -> None:
        """Store the chunks of documents of one collection: one vector-store call, one index transaction."""
        store = self.store(documents[0][0].collection)
        # Replace, never mix: a re-ingest with fewer chunks must not leave old ones behind.
        store.delete_documents([record.id for record, _, _ in documents])
        ids, texts, metadatas, vectors, indexed = [], [], [], [], []
        for record, chunks, chunk_vectors in documents:
            chunk_ids = [f"{record.id}:{chunk.index}" for chunk in chunks]
            for chunk in chunks:
                meta = {"doc_id": record.id, "file_name": record.file_name, "n": chunk.index}
                if chunk.page is not None:
                    meta["page"] = chunk.page
                if chunk.section:
                    meta["section"] = chunk.section
                if chunk.heading:
                    meta["heading"] = chunk.heading
                if chunk.ocr:
                    meta["ocr"] = True
                metadatas.append(meta)
            ids += chunk_ids
            texts += [chunk.text for chunk in chunks]
            vectors += list(chunk_vectors)
            indexed.append((record.id, list(zip(chunk_ids, (chunk.text for chunk in chunks)))))
        store.upsert(ids, vectors, texts, metadatas)
        self.lexical(documents[0][0].collection).add_many(indexed)

    def _undo(self, record: DocumentRecord) -> None:
        """Remove whatever a failed or cancelled ingest wrote, so nothing half-done remains."""
        try:
            if self.index_of(record.collection) in self._stores:
                self.store(record.collection).delete_document(record.id)
            self.lexical(record.collection).delete(record.id)
        except PipelineError:
            pass

    # -- questions ------------------------------------------------------------------------
    def search(self, query: str, *, collection: str | None = None, top_k: int | None = None, mode: str = "hybrid") -> list[Hit]:
        check_question(query, what="query")
        collection = self._collection(collection)
        if self.check_model(collection) is None:
            return []  # nothing was ever stored in this collection; never create it by searching
        s = self.settings
        weights = self.fusion_weights(collection)
        return hybrid_search(
            query,
            lexical=self.lexical(collection),
            store=self.store(collection),
            encode_query=self.embedder_for(collection).encode_query,
            weights=weights,
            top_k=top_k or s.top_k,
            mode=mode,
        )

    def ask(self, question: str, *, collection: str | None = None, top_k: int | None = None) -> Answer:
        check_question(question)
        hits = self.search(question, collection=collection, top_k=top_k)
        s = self.settings
        if s.llm_configured:
            return llm_answer(
                question, hits, api_key=s.openai_api_key.get_secret_value(), model=s.llm_model,
                base_url=s.openai_base_url, timeout_s=s.llm_timeout_s,
            )
        return extractive_answer(question, hits, similarity=self.sentence_similarity(question, collection=collection))

    def sentence_similarity(self, question: str, *, collection: str | None = None):
        """Cosine similarity of the question to each sentence, by the collection's embedding model,
        for choosing the extractive answer's sentence; None where retrieval gives the model no say
        for this question (an English-only model and a Korean question)."""
        collection = self._collection(collection)
        if self.fusion_weights(collection).for_query(question) <= 0.0:
            return None
        embedder = self.embedder_for(collection)

        def similarity(text: str, sentences):
            return (embedder.encode(list(sentences)) @ embedder.encode_query(text)).tolist()

        return similarity

    def fusion_weights(self, collection: str):
        """The dense weights of a collection's model, per query language (settings override)."""
        s = self.settings
        return default_fusion_weights(self.model_name(collection), s.dense_weight_korean, s.dense_weight_other)

    # -- the catalog ----------------------------------------------------------------------
    def documents(self, *, collection: str | None = None, status: str | None = None) -> list[DocumentRecord]:
        return self.catalog.list(collection, status)

    def document(self, id_prefix: str, *, collection: str | None = None) -> DocumentRecord:
        collection = self._collection(collection)
        matches = self.catalog.find(collection, id_prefix) if len(id_prefix) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise self.document_not_found(id_prefix, collection)
        raise PipelineError(
            f"'{id_prefix}' matches {len(matches)} documents; give more of the id.",
            hint="ragctl documents list",
        )

    @staticmethod
    def document_not_found(id_prefix: str, collection: str) -> NotFound:
        """The one answer for a document that is not there (or that the caller may not see)."""
        return NotFound(f"No document with id '{id_prefix}' in collection '{collection}'.",
                        hint="ragctl documents list   (ids may be shortened to their first 8 characters)")

    def chunks_of(self, record: DocumentRecord) -> list[tuple[str, str, dict]]:
        return self.store(record.collection).document_chunks(record.id)

    def rename_document(self, document_id: str, file_name: str, *, collection: str | None = None) -> DocumentRecord:
        """A document under another name (``ragctl sync``: a moved or renamed file): the catalog's record
        and the name its chunks cite; nothing parsed or embedded again."""
        record = self.document(document_id, collection=collection)
        if record.chunks:
            store = self.store(record.collection)
            rows = store.document_chunks(record.id)
            if rows:
                store.rename(record.id, [cid for cid, _, _ in rows],
                             [{**meta, "file_name": file_name} for _, _, meta in rows])
        self.catalog.rename(record.collection, record.id, file_name)
        return self.catalog.get(record.collection, record.id)

    def delete_document(self, id_prefix: str, *, collection: str | None = None) -> DocumentRecord:
        """Remove a document's vectors, lexical entries, stored file, extracted text and record."""
        record = self.document(id_prefix, collection=collection)
        if record.status == DocumentStatus.DONE or record.chunks:
            self.store(record.collection).delete_document(record.id)
        self.lexical(record.collection).delete(record.id)
        if set(self.catalog.holders_of(record.id)) <= {record.collection}:  # the same bytes elsewhere keep theirs
            self.blobs.delete(record.id)  # the API stored the upload there too
            self.texts.delete(record.id)
        self.catalog.delete(record.collection, record.id)
        return record

    # -- collections (stack/pipeline/collection_admin.py) -----------------------------------
    def collections(self, *, only: set[str] | None = None, models: bool = True) -> list[CollectionInfo]:
        """Every collection (or those of ``only`` that exist) with its documents, chunks, size and
        (``models``: read from the vector store) embedding model."""
        return collection_admin.info_all(self, only=only, models=models)

    def collection_info(self, name: str | None = None) -> CollectionInfo:
        return collection_admin.info(self, self._collection(name))

    def create_collection(self, name: str, description: str | None = None) -> CollectionInfo:
        return collection_admin.create(self, name, description)

    def delete_collection(self, name: str) -> CollectionInfo:
        """Its vectors, lexical index, stored uploads, extracted texts and catalog rows (crash-safe order)."""
        return collection_admin.delete(self, name)

    def drop_vectors(self, collection: str) -> None:
        """Remove a collection's vectors (the Chroma collection of the index that answers for it)."""
        self.drop_index_vectors(self.index_of(collection))

    def drop_index_vectors(self, index: str) -> None:
        """Remove an index's Chroma collection; none: nothing to do."""
        from chromadb.errors import NotFoundError

        from stack.pipeline.store import chroma_name, reachable

        self._stores.pop(index, None)
        self._recorded_models.pop(index, None)
        with reachable("deleting a collection"):
            try:
                self.chroma.delete_collection(chroma_name(index))
            except (NotFoundError, ValueError):
                pass

    def reindex(
        self, *, collection: str | None = None, on_document: Callable[[IngestResult], None] | None = None
    ) -> list[IngestResult]:
        """Re-embed every document of a collection with the configured model and chunking, blue/green:
        the new index is built beside the one that answers and swapped in one catalog write when whole
        (:mod:`stack.pipeline.generations`).  A failure or a kill leaves the old index answering; the
        next reindex removes what was left half-built."""
        from stack.pipeline import generations

        collection = self._collection(collection)
        candidate = generations.build(self, collection, on_document=on_document)
        if candidate.failed:
            generations.discard(self, candidate)
            return candidate.results
        generations.swap(self, candidate)
        return candidate.results
