"""Move a one-host deployment's state into PostgreSQL, checked, with rollback (issue #12).

What a project keeps on one host (:mod:`stack.pipeline.backends` without ``RAG_DATABASE_URL``):
the catalog (``data/catalog.sqlite``: documents and their task id history), one postings file per
collection (``data/lexical/<collection>.sqlite``), the extracted text (``extracted_results/``), the
uploaded bytes (``data/uploads/``) and the API keys (``data/keys.sqlite``).  :func:`move_to_postgres`
copies all of it into the database a stack with ``RAG_DATABASE_URL`` reads, in ONE PostgreSQL
transaction, then verifies the copy inside that same transaction, through the Postgres backends the
stack itself reads with; if anything differs the transaction is rolled back (the target is left as
it was) and :class:`MoveMismatch` lists the differences.

- The source is never changed: its SQLite files are opened read-only (``mode=ro``), its folders
  only read.  Run the move with the stack stopped, so that nothing writes the source meanwhile.
- Vectors stay where they are (Chroma): document and chunk ids are kept, so they still match.
- Catalog rows are copied whole (task id, attempts, log, timings, times, the task id history in
  its order); only ``stored_path`` changes, to the database's blob reference.
- Postings are copied with their terms (:meth:`~stack.pipeline.lexical.PostingsIndex.add_analysed`:
  no analysis again), with the analyzer version each collection was written with.
- API key rows are copied as they are (hash, prefix, role, times): the keys themselves are not known.
- A target that already holds state is refused (:class:`TargetNotEmpty`) unless ``replace=True``,
  which empties ragctl's tables first, in the same transaction (a failed replace keeps the old state).

Transport-free: the CLI (``ragctl upgrade``) or a script calls it; ``stack`` never imports ``ragctl``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from stack.pipeline.backends import database_url as configured_database_url
from stack.pipeline.backends import open_blobs, open_catalog, open_lexical, open_texts
from stack.pipeline.catalog import JSON_FIELDS, DocumentRecord
from stack.pipeline.errors import PipelineError
from stack.pipeline.storage import safe_file_name

if TYPE_CHECKING:
    from stack.settings import Settings

#: ``progress(step, done, total)``: step is catalog, postings:<collection>, texts, blobs, keys or verify.
Progress = Callable[[str, int, int], None]

#: ragctl's tables in the database, children first (what ``replace=True`` empties).
STATE_TABLES = ("lexical_postings", "lexical_chunks", "lexical_stats", "lexical_meta", "task_ids", "documents",
                "extracted", "blobs", "api_keys")
#: The tables whose rows make a target "not empty" (the others only follow these).
_HOLDING = ("documents", "task_ids", "lexical_chunks", "extracted", "blobs", "api_keys")
_RECORD_FIELDS = tuple(f.name for f in fields(DocumentRecord))
_KEY_COLUMNS = ("name", "role", "hash", "prefix", "created_at", "last_used_at", "revoked_at")
_TASK_COLUMNS = ("task_id", "collection", "document_id", "reason", "created_at")
#: How many differences a MoveMismatch's message names (the exception keeps them all).
_SHOWN = 20


class TargetNotEmpty(PipelineError):
    code = "target_not_empty"


class MoveMismatch(PipelineError):
    """The copy differs from the source: the move was rolled back; ``differences`` says how."""

    code = "move_mismatch"

    def __init__(self, differences: list[str]) -> None:
        shown = "; ".join(differences[:_SHOWN])
        more = f"; and {len(differences) - _SHOWN} more" if len(differences) > _SHOWN else ""
        super().__init__(f"The moved state differs from the source in {len(differences)} place(s), so the move was "
                         f"rolled back (the database is as it was, the project's files untouched): {shown}{more}",
                         hint="fix the cause named above and run the move again")
        self.differences = differences


@dataclass
class CollectionMoved:
    documents: int = 0
    chunks: int = 0
    texts: int = 0
    blobs: int = 0


@dataclass
class MoveReport:
    collections: dict[str, CollectionMoved] = field(default_factory=dict)
    task_ids: int = 0
    keys: int = 0
    seconds: float = 0.0
    verified: bool = False
    #: "<collection>/<id>" of documents whose catalog names stored bytes that are not on this host
    #: (nothing to move; such a document cannot be reindexed from the database either).
    missing_bytes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Lexical:
    version: int
    chunks: int
    document_ids: set[str]


@dataclass
class _Source:
    """What the one-host backends hold (read-only), and what the copy is checked against."""

    records: dict[str, dict[str, DocumentRecord]]  # collection → id → record
    task_ids: list[tuple]
    lexical: dict[str, _Lexical]
    keys: list[tuple]

    @property
    def collections(self) -> list[str]:
        return sorted(set(self.records) | set(self.lexical))


def move_to_postgres(settings_from: Settings, database_url: str, *, replace: bool = False,
                     progress: Progress | None = None) -> MoveReport:
    """Copy the project's one-host state (``settings_from``, no RAG_DATABASE_URL) into the database
    at ``database_url``, verify it, and commit; or roll back and raise :class:`MoveMismatch`."""
    if configured_database_url(settings_from):
        raise PipelineError("The project's state is in PostgreSQL already (RAG_DATABASE_URL is set): there is "
                            "nothing on this host to move.", hint="unset RAG_DATABASE_URL for the source settings")
    started = time.perf_counter()
    say = progress or (lambda step, done, total: None)
    target = settings_from.model_copy(update={"database_url": SecretStr(database_url)})
    catalog, texts, blobs = open_catalog(target), open_texts(target), open_blobs(target)
    source_texts = open_texts(settings_from)
    data = settings_from.data_path
    uploads = data / "uploads"
    report = MoveReport()
    with _read_only(data / "catalog.sqlite") as cat_db, _read_only(data / "keys.sqlite") as keys_db:
        source = _read_source(data, cat_db, keys_db)
        with catalog.db.transaction() as tx:  # the one transaction: every write below nests in it
            tx.lock("ragctl state move")
            _make_room(tx, replace, catalog.db.where)
            # The catalog, with each document's bytes and text (shared by id across collections).
            stored: dict[str, str] = {}
            saved: set[str] = set()
            total = sum(len(records) for records in source.records.values())
            done = 0
            for collection, records in sorted(source.records.items()):
                moved = report.collections.setdefault(collection, CollectionMoved())
                for record in records.values():
                    if record.id not in stored and (path := _source_bytes(uploads, record)) is not None:
                        stored[record.id] = blobs.put(record.id, record.file_name, path)
                    if record.id in stored:
                        moved.blobs += 1
                    elif record.stored_path:
                        report.missing_bytes.append(f"{collection}/{record.id}")
                    if record.id not in saved and (text := source_texts.text(record.id)) is not None:
                        texts.save(record.id, record.file_name, text, source_texts.data(record.id) or {})
                        saved.add(record.id)
                    if record.id in saved:
                        moved.texts += 1
                    row = record.to_dict() | {"stored_path": stored.get(record.id, record.stored_path)}
                    for name in JSON_FIELDS:
                        row[name] = json.dumps(row[name], ensure_ascii=False)
                    tx.execute(f"INSERT INTO documents ({', '.join(row)}) "
                               f"VALUES ({', '.join(f'%({name})s' for name in row)})", row)
                    moved.documents += 1
                    done += 1
                    say("catalog", done, total)
            say("texts", len(saved), len(saved))
            say("blobs", len(stored), len(stored))
            tx.connection.cursor().executemany(
                f"INSERT INTO task_ids ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_TASK_COLUMNS))})",
                source.task_ids)
            report.task_ids = len(source.task_ids)
            # The postings, with their terms as the source's analyzer wrote them.
            for collection, lexical in sorted(source.lexical.items()):
                moved = report.collections.setdefault(collection, CollectionMoved())
                index = open_lexical(target, collection, version=lexical.version)
                with _read_only(data / "lexical" / f"{collection}.sqlite") as lex_db:
                    for n, (document_id, chunks, terms) in enumerate(_documents(lex_db), 1):
                        index.add_analysed(document_id, chunks, terms)
                        moved.chunks += len(chunks)
                        say(f"postings:{collection}", n, len(lexical.document_ids))
            tx.connection.cursor().executemany(
                f"INSERT INTO api_keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_KEY_COLUMNS))})",
                source.keys)
            report.keys = len(source.keys)
            say("keys", report.keys, report.keys)
            # Read it all back, through the backends the stack reads with, before committing.
            differences = _differences(source, target, tx, source_texts, uploads)
            say("verify", 1, 1)
            if differences:
                raise MoveMismatch(differences)  # leaving the block rolls the transaction back
            report.verified = True
    report.seconds = round(time.perf_counter() - started, 3)
    return report


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection in one read transaction (a consistent snapshot), or None: no such file."""
    if not path.is_file():
        yield None
        return
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        db.execute("BEGIN")
        yield db
    finally:
        db.close()


def _read_source(data: Path, cat_db: sqlite3.Connection | None, keys_db: sqlite3.Connection | None) -> _Source:
    records: dict[str, dict[str, DocumentRecord]] = defaultdict(dict)
    task_ids: list[tuple] = []
    if cat_db is not None:
        for row in cat_db.execute("SELECT * FROM documents ORDER BY created_at, collection, id"):
            values = {name: value for name, value in dict(row).items() if name in _RECORD_FIELDS}
            for name, empty in JSON_FIELDS.items():
                values[name] = json.loads(values[name]) if values.get(name) else type(empty)()
            record = DocumentRecord(**values)
            records[record.collection][record.id] = record
        if _has_table(cat_db, "task_ids"):
            task_ids = [tuple(row) for row in cat_db.execute(
                f"SELECT {', '.join(_TASK_COLUMNS)} FROM task_ids ORDER BY seq")]
    lexical: dict[str, _Lexical] = {}
    for path in sorted((data / "lexical").glob("*.sqlite")):
        with _read_only(path) as db:
            if not _has_table(db, "chunks"):
                continue
            meta = db.execute("SELECT value FROM meta WHERE key = 'analyzer'").fetchone() \
                if _has_table(db, "meta") else None
            columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
            missing = "text" not in columns or db.execute("SELECT 1 FROM chunks WHERE text IS NULL LIMIT 1").fetchone()
            if meta is None or missing:
                raise PipelineError(f"The lexical index {path} was written by an older ragctl and keeps no chunk texts, "
                                    "so it cannot be moved as it is.",
                                    hint="search the project once with this ragctl (ragctl ask …): the index is "
                                         "rebuilt from the vectors' texts; then run the move again")
            ids = {row[0] for row in db.execute("SELECT DISTINCT doc_id FROM chunks")}
            count = db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            lexical[path.stem] = _Lexical(int(meta[0]), count, ids)
    keys = [tuple(row) for row in keys_db.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_keys ORDER BY name")] \
        if keys_db is not None and _has_table(keys_db, "api_keys") else []
    return _Source(dict(records), task_ids, lexical, keys)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _documents(db: sqlite3.Connection) -> Iterator[tuple[str, list[tuple[str, str]], list[list[str]]]]:
    """Each document's (chunk id, text) pairs in their order, and each chunk's terms (term × tf)."""
    chunks: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for chunk_id, doc_id, text in db.execute("SELECT chunk_id, doc_id, text FROM chunks ORDER BY rowid"):
        chunks[doc_id].append((chunk_id, text))
    for doc_id, pairs in chunks.items():
        terms = []
        for chunk_id, _ in pairs:
            rows = db.execute("SELECT term, tf FROM postings WHERE chunk_id = ? ORDER BY term", (chunk_id,))
            terms.append([term for term, tf in rows for _ in range(tf)])
        yield doc_id, pairs, terms


def _source_bytes(uploads: Path, record: DocumentRecord) -> Path | None:
    """The document's uploaded bytes on this host: at its stored path, or at the same place under this
    host's uploads folder (a Compose stack records the path inside its containers, /app/project/data/…)."""
    if not record.stored_path:
        return None
    for path in (Path(record.stored_path), uploads / record.id / Path(record.stored_path).name,
                 uploads / record.id / safe_file_name(record.file_name)):
        if path.is_file():
            return path
    return None


def _make_room(tx, replace: bool, where: str) -> None:
    held = {}
    for table in _HOLDING:
        n = tx.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
        if n:
            held[table] = n
    if not held:
        return
    if not replace:
        raise TargetNotEmpty(
            f"The database at {where} holds ragctl state already ({', '.join(f'{n} {t}' for t, n in held.items())}): "
            "moving into it would mix two projects or double this one.",
            hint="use an empty database, or replace what it holds (replace=True: its state is deleted first)")
    for table in STATE_TABLES:
        tx.execute(f"DELETE FROM {table}")


def _differences(source: _Source, target: Settings, tx, source_texts, uploads: Path) -> list[str]:
    """Every way the target (read inside the move's transaction) differs from the source."""
    catalog, texts, blobs = open_catalog(target), open_texts(target), open_blobs(target)
    hashes = {row["document_id"]: row["sha"] for row in tx.execute(
        "SELECT document_id, encode(sha256(data), 'hex') AS sha FROM blobs").fetchall()}
    out: list[str] = []
    for collection in source.collections:
        ours = source.records.get(collection, {})
        theirs = {record.id: record for record in catalog.list(collection)}
        if set(ours) != set(theirs):
            out.append(f"{collection}: document ids differ (missing {sorted(set(ours) - set(theirs))[:5]}, "
                       f"extra {sorted(set(theirs) - set(ours))[:5]})")
        n_texts = n_blobs = 0
        for document_id, record in ours.items():
            moved = theirs.get(document_id)
            if moved is None:
                continue
            before = record.to_dict() | {"stored_path": None}
            after = moved.to_dict() | {"stored_path": None}
            if before != after:
                changed = sorted(name for name in before if before[name] != after[name])
                out.append(f"{collection}/{document_id[:12]}: catalog fields differ: {', '.join(changed)}")
            text = source_texts.text(document_id)
            if text is not None:
                n_texts += texts.where(document_id) is not None
                if texts.text(document_id) != text or texts.data(document_id) != (source_texts.data(document_id) or {}):
                    out.append(f"{collection}/{document_id[:12]}: extracted text or data differs")
            if _source_bytes(uploads, record) is not None:
                n_blobs += 1
                if not moved.stored_path or not blobs.exists(moved.stored_path):
                    out.append(f"{collection}/{document_id[:12]}: uploaded bytes missing")
                elif hashes.get(document_id) != document_id:
                    out.append(f"{collection}/{document_id[:12]}: the stored bytes' SHA-256 is "
                               f"{str(hashes.get(document_id))[:12]}…, not the document id")
        want_texts = sum(source_texts.where(i) is not None for i in ours)
        want_blobs = sum(_source_bytes(uploads, r) is not None for r in ours.values())
        if (n_texts, n_blobs) != (want_texts, want_blobs):
            out.append(f"{collection}: {n_texts} texts and {n_blobs} blobs moved, the source has "
                       f"{want_texts} and {want_blobs}")
        lexical = source.lexical.get(collection)
        if lexical is not None:
            index = open_lexical(target, collection, version=lexical.version)
            count, ids = index.count(), index.document_ids()
            if count != lexical.chunks:
                out.append(f"{collection}: {count} chunks in the postings, the source has {lexical.chunks}")
            if ids != lexical.document_ids:
                out.append(f"{collection}: the postings' document ids differ "
                           f"(missing {sorted(lexical.document_ids - ids)[:5]}, extra {sorted(ids - lexical.document_ids)[:5]})")
    moved_tasks = [tuple(row[c] for c in _TASK_COLUMNS) for row in tx.execute(
        f"SELECT {', '.join(_TASK_COLUMNS)} FROM task_ids ORDER BY seq").fetchall()]
    if moved_tasks != source.task_ids:
        out.append(f"task id history differs ({len(moved_tasks)} rows, the source has {len(source.task_ids)})")
    moved_keys = [tuple(row[c] for c in _KEY_COLUMNS) for row in tx.execute(
        f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_keys ORDER BY name").fetchall()]
    if sorted(moved_keys) != sorted(source.keys):
        out.append(f"API keys differ ({len(moved_keys)} rows, the source has {len(source.keys)})")
    return out
