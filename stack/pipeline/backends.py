"""Where the stack's state lives, chosen in this one place from the settings (issue #12).

With ``RAG_DATABASE_URL`` unset (embedded and local runtimes, one host): SQLite files under
``data/`` (the catalog, one postings file per collection), the extracted text under
``extracted_results/`` and the uploaded bytes under ``data/uploads/``.  With it set: all four in
PostgreSQL (:mod:`stack.pipeline.postgres`), so that API and workers on different hosts share them
through the network, never a filesystem.  The API keys (:func:`open_keys`) follow the same rule:
``data/keys.sqlite``, or the table ``api_keys`` in PostgreSQL.

Each kind of state has one contract, whatever holds it: :class:`~stack.pipeline.catalog.DocumentCatalog`,
:class:`~stack.pipeline.lexical.PostingsIndex`, and :class:`~stack.pipeline.storage.ExtractedTexts` and
:class:`~stack.pipeline.storage.BlobStore` (the uploaded bytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stack.pipeline.storage import BlobStore, ExtractedTexts, FolderBlobs, FolderTexts

if TYPE_CHECKING:
    from stack.keys import KeyStore
    from stack.pipeline.catalog import DocumentCatalog
    from stack.pipeline.lexical import ChunkSource, PostingsIndex
    from stack.settings import Settings


def database_url(settings: Settings) -> str | None:
    secret = settings.database_url
    return secret.get_secret_value() if secret is not None and secret.get_secret_value() else None


def _database(settings: Settings, url: str):
    """The process's one pool of connections to ``url``, sized by RAG_DATABASE_POOL."""
    from stack.pipeline.postgres import database

    return database(url, pool_size=settings.database_pool, timeout_s=settings.database_pool_timeout_s)


def open_catalog(settings: Settings) -> DocumentCatalog:
    url = database_url(settings)
    if url:
        from stack.pipeline.postgres import PostgresCatalog

        return PostgresCatalog(_database(settings, url))
    from stack.pipeline.catalog import Catalog

    return Catalog(settings.data_path / "catalog.sqlite")


def open_lexical(settings: Settings, collection: str, *, chunk_texts: ChunkSource | None = None,
                 version: int | None = None) -> PostingsIndex:
    url = database_url(settings)
    if url:
        from stack.pipeline.postgres import PostgresLexicalIndex

        return PostgresLexicalIndex(_database(settings, url), collection, chunk_texts=chunk_texts, version=version)
    from stack.pipeline.lexical import LexicalIndex

    return LexicalIndex(settings.data_path / "lexical" / f"{collection}.sqlite", chunk_texts=chunk_texts,
                        version=version)


def open_texts(settings: Settings) -> ExtractedTexts:
    url = database_url(settings)
    if url:
        from stack.pipeline.postgres import PostgresTexts

        return PostgresTexts(_database(settings, url))
    return FolderTexts(settings.extracted_path)


def open_blobs(settings: Settings) -> BlobStore:
    url = database_url(settings)
    if url:
        from stack.pipeline.postgres import PostgresBlobs

        return PostgresBlobs(_database(settings, url))
    return FolderBlobs(settings.data_path / "uploads")


def open_keys(settings: Settings) -> KeyStore:
    """The API key store: PostgreSQL's ``api_keys`` with a database URL (replicas on any host share
    it), else ``data/keys.sqlite`` (replicas on one host)."""
    url = database_url(settings)
    if url:
        from stack.keys import PostgresKeyStore

        return PostgresKeyStore(_database(settings, url))
    from stack.keys import key_store

    return key_store(settings.data_path)
