"""Fixtures shared by every test: no credentials from the environment, local stand-ins."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.standins.openai_server import OpenAIStandIn


@pytest.fixture(autouse=True)
def _no_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep real tokens and endpoints out of every test, so none can reach the network."""
    for name in list(os.environ):
        if name.startswith("SLACK_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name)


@pytest.fixture
async def openai_server() -> AsyncIterator[OpenAIStandIn]:
    """Run a local OpenAI-compatible server on 127.0.0.1 for one test, then close it."""
    async with OpenAIStandIn() as server:
        yield server
