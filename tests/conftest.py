"""Fixtures shared by every test: no credentials from the environment, local stand-ins."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from routing import embedding
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from tests.standins.openai_server import OpenAIStandIn
from tests.standins.postgres_server import (
    PostgresServer,
    PostgresUnavailableError,
    clean_stale,
    stop_on_signals,
)


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (started on first use, then stopped).

    Stopped on SIGTERM and SIGINT as well; one a killed run left behind is stopped at the next.

        Where it cannot start, its tests fail in CI (CI=true) and are skipped, with the reason,
        on a developer's machine.
    """
    # A server an earlier run started and never stopped (it was killed): stopped first.
    clean_stale()
    try:
        server = PostgresServer().start()
    except PostgresUnavailableError as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL did not start: {error}")
        pytest.skip(f"PostgreSQL did not start: {error}")
    # A pytest killed by SIGTERM or interrupted by SIGINT stops it too.
    with stop_on_signals(server):
        yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A URL of the session's server whose tables live in a schema of this test's own."""
    schema = postgres_server.new_schema_name()
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return postgres_server.url_in_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """An empty store of each backend in turn: an SQLite path, then a postgresql:// URL."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return tmp_path / "triage.sqlite3"
