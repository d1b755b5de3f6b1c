"""Fixtures shared by every test: no credentials from the environment, local stand-ins."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from routing import embedding
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from tests.standins.openai_server import OpenAIStandIn


@pytest.fixture(autouse=True)
def _no_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep real tokens and endpoints out of every test, so none can reach the network."""
    for name in list(os.environ):
        if name.startswith("SLACK_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The installed model, loaded and verified once per session (for tests of the model itself)."""
    return MiniLMEmbedder.load()


@pytest.fixture(scope="session")
def embedder(minilm: MiniLMEmbedder) -> CachingEmbedder:
    """The one embedder of the session: the model, embedding each distinct text once.

    Embeddings are a pure function of the text, so sharing the cache keeps tests independent;
    it spares each test's pipeline re-embedding the same examples and rubrics.
    """
    return CachingEmbedder(minilm)


@pytest.fixture(autouse=True)
def _installed_model_loads_from_the_session(
    monkeypatch: pytest.MonkeyPatch, embedder: CachingEmbedder
) -> None:
    """Code under test that loads the installed model (the CLI, the runner) gets the session's.

    Anything else still takes the real path: an explicit model folder (the tests of corrupt or
    missing files), or a missing package (the folder lookup runs, and raises, first).
    """
    real_load = MiniLMEmbedder.load

    def load(cls: type[MiniLMEmbedder], model_dir: Path | None = None) -> MiniLMEmbedder:
        installed = embedding._installed_model_dir()
        if model_dir is None or Path(model_dir) == installed:
            # A CachingEmbedder is an Embedder, which is all the callers use of the model.
            return embedder  # type: ignore[return-value]
        return real_load(model_dir)

    monkeypatch.setattr(MiniLMEmbedder, "load", classmethod(load))


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIStandIn]:
    """Run a local OpenAI-compatible server on 127.0.0.1 for one test, then close it."""
    async with OpenAIStandIn() as server:
        yield server
