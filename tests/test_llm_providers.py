"""Structured output on every server: the stand-in plays each provider's profile.

Each profile answers the request shapes the way that server does (tests/standins/
openai_server.py, PROFILES); the layer must find the shape that server supports, remember it
per model for the process's lifetime, and send the output-token limit under the name the server
reads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from routing.config import TriageConfig, load_config
from routing.llm import LLMClassifier, build_openai_client, provider_for
from routing.models import Decision
from tests.standins.openai_server import OpenAIStandIn, reply_json, reply_text, status

MODEL = "test-model"
TICKETS = (
    "I was charged twice for order ORD-2847.",
    "The export button does nothing since the update.",
    "How do I add a teammate to our workspace?",
)


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "category": "billing",
        "priority": "high",
        "team": "billing",
        "sentiment": "frustrated",
        "confidence": 0.9,
        "needs_human": False,
        "reason": "A duplicate charge.",
    }
    answer.update(overrides)
    return answer


def _mode(body: dict[str, Any]) -> str:
    """Which structured-output shape a request used."""
    response_format = body.get("response_format")
    if response_format is None:
        for field in ("guided_json", "structured_outputs"):
            if field in body:
                return field
        return "prompt"
    if response_format["type"] == "json_schema":
        return "json_schema"
    return "json_object_schema" if "schema" in response_format else "json_object"


def _config(provider: str) -> TriageConfig:
    base = load_config()
    return base.model_copy(update={"llm": base.llm.model_copy(update={"provider": provider})})


@pytest.fixture
async def client(openai_server: OpenAIStandIn) -> AsyncIterator[openai.AsyncOpenAI]:
    client = build_openai_client(
        api_key="test", base_url=openai_server.url, timeout_seconds=5.0, max_retries=2
    )
    yield client
    await client.close()


# (stand-in profile, [llm] provider, modes of the first ticket's requests, the limit's name)
CASES = [
    ("openai", "openai", ["json_schema"], "max_completion_tokens"),
    ("groq", "groq", ["json_schema", "json_object"], "max_completion_tokens"),
    ("cerebras", "cerebras", ["json_schema"], "max_completion_tokens"),
    ("openrouter", "openrouter", ["json_schema"], "max_tokens"),
    ("together", "together", ["json_schema"], "max_tokens"),
    ("ollama", "ollama", ["json_schema"], "max_tokens"),
    ("vllm", "vllm", ["json_schema"], "max_tokens"),
    ("vllm-legacy", "vllm", ["json_schema", "guided_json"], "max_tokens"),
    ("llama-cpp-python", "llama.cpp", ["json_schema", "json_object_schema"], "max_tokens"),
    ("llama-server-2024", "auto", ["json_schema", "json_object_schema"], "max_tokens"),
    ("fastapi-422", "auto", ["json_schema", "json_object_schema"], "max_tokens"),
    ("plain", "auto", ["json_schema", "json_object_schema", "json_object", "prompt"], "max_tokens"),
]


@pytest.mark.parametrize(
    ("profile", "provider", "first", "limit"), CASES, ids=[c[0] for c in CASES]
)
async def test_each_server_gets_the_schema_its_way_and_one_rejection_per_mode(
    client: openai.AsyncOpenAI,
    openai_server: OpenAIStandIn,
    profile: str,
    provider: str,
    first: list[str],
    limit: str,
) -> None:
    """The first ticket finds the server's shape (each rejection once); later ones start there."""
    openai_server.behave_as(profile)
    openai_server.default = lambda _body: reply_json(_answer())
    config = _config(provider)
    llm = LLMClassifier(client=client, config=config)

    calls = [
        await llm.classify(text, examples=(), model=MODEL, source="llm_cheap") for text in TICKETS
    ]

    assert [call.error for call in calls] == [None, None, None]
    assert all(isinstance(call.decision, Decision) for call in calls)
    modes = [_mode(body) for body in openai_server.requests]
    assert modes == [*first, first[-1], first[-1]]
    assert llm.structured_mode(MODEL) == first[-1]
    for body in openai_server.requests:
        assert body[limit] == config.llm.classify_max_tokens
    schema_carriers = {
        "json_schema": lambda body: body["response_format"]["json_schema"]["schema"],
        "json_object_schema": lambda body: body["response_format"]["schema"],
        "guided_json": lambda body: body["guided_json"],
    }
    last = openai_server.requests[-1]
    if first[-1] in schema_carriers:
        schema = schema_carriers[first[-1]](last)
        assert schema["properties"]["category"]["enum"] == list(config.category_names)
        assert schema["additionalProperties"] is False
    # The prompt always carries the fields, so JSON mode and no mode still know the schema.
    assert "Answer with a JSON object with exactly these fields" in last["messages"][0]["content"]


async def test_a_rejection_is_found_once_while_tickets_arrive_together(
    client: openai.AsyncOpenAI, openai_server: OpenAIStandIn
) -> None:
    """Eight tickets at once against a server that 500s json_schema: one rejected request."""
    openai_server.behave_as("llama-cpp-python")
    openai_server.default = lambda _body: reply_json(_answer())
    llm = LLMClassifier(client=client, config=_config("auto"))

    calls = await asyncio.gather(
        *(
            llm.classify(f"ticket {n}: charged twice", examples=(), model=MODEL, source="llm_cheap")
            for n in range(8)
        )
    )

    assert all(call.decision is not None for call in calls)
    modes = [_mode(body) for body in openai_server.requests]
    assert modes.count("json_schema") == 1
    assert modes.count("json_object_schema") == 8


async def test_rejections_are_remembered_per_model(
    client: openai.AsyncOpenAI, openai_server: OpenAIStandIn
) -> None:
    """A mode one model rejected is still tried for another model on the same endpoint."""
    openai_server.behave_as("groq")
    openai_server.default = lambda _body: reply_json(_answer())
    llm = LLMClassifier(client=client, config=_config("groq"))

    await llm.classify(TICKETS[0], examples=(), model="small", source="llm_cheap")
    await llm.classify(TICKETS[0], examples=(), model="large", source="llm_strong")

    assert [(body["model"], _mode(body)) for body in openai_server.requests] == [
        ("small", "json_schema"),
        ("small", "json_object"),
        ("large", "json_schema"),
        ("large", "json_object"),
    ]


async def test_a_500_that_names_no_schema_is_retried_not_taken_for_a_rejection(
    client: openai.AsyncOpenAI, openai_server: OpenAIStandIn
) -> None:
    """A passing server error keeps json_schema: the client retries it and the answer is used."""
    openai_server.queue(status(500, retry_after_ms=1), reply_json(_answer()))
    llm = LLMClassifier(client=client, config=_config("auto"))

    call = await llm.classify(TICKETS[0], examples=(), model=MODEL, source="llm_cheap")

    assert call.decision is not None
    assert [_mode(body) for body in openai_server.requests] == ["json_schema", "json_schema"]
    assert llm.structured_mode(MODEL) == "json_schema"


async def test_a_refused_limit_name_is_replaced_and_remembered(
    client: openai.AsyncOpenAI, openai_server: OpenAIStandIn
) -> None:
    """A server that refuses max_tokens gets max_completion_tokens, then only that, drafts too."""
    openai_server.behave_as("openai")
    openai_server.default = lambda body: (
        reply_text("Hi there,\n\nOur billing team is looking at it.\n\nThe support team")
        if "response_format" not in body
        else reply_json(_answer())
    )
    config = _config("auto")  # 127.0.0.1 is no known host: the generic profile's max_tokens
    llm = LLMClassifier(client=client, config=config)

    await llm.classify(TICKETS[0], examples=(), model=MODEL, source="llm_cheap")
    decision = Decision(
        category="billing",
        priority="high",
        team="billing",
        sentiment="neutral",
        confidence=0.9,
        source="llm_cheap",
    )
    draft = await llm.draft(TICKETS[0], decision=decision, model=MODEL)

    limits = [
        [name for name in ("max_tokens", "max_completion_tokens") if name in body]
        for body in openai_server.requests
    ]
    assert limits == [["max_tokens"], ["max_completion_tokens"], ["max_completion_tokens"]]
    assert openai_server.requests[-1]["max_completion_tokens"] == config.llm.draft_max_tokens
    assert draft is not None


async def test_prompt_mode_reads_the_json_inside_prose(
    client: openai.AsyncOpenAI, openai_server: OpenAIStandIn
) -> None:
    """Without any JSON mode the model's object is read out of the words around it."""
    openai_server.behave_as("plain")
    openai_server.default = lambda _body: reply_text(
        "Sure! Here is the classification:\n" + json.dumps(_answer(category="technical")) + "\nBye"
    )
    llm = LLMClassifier(client=client, config=_config("auto"))

    call = await llm.classify(TICKETS[1], examples=(), model=MODEL, source="llm_cheap")

    assert call.decision is not None
    assert call.decision.category == "technical"


@pytest.mark.parametrize(
    ("base_url", "name"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.cerebras.ai/v1", "cerebras"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.together.xyz/v1", "together"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://127.0.0.1:8000/v1", "generic"),
    ],
)
def test_the_provider_is_told_from_the_host(base_url: str, name: str) -> None:
    """Hosted providers are known by their API host; a self-hosted server is probed."""
    assert provider_for(base_url).name == name
    assert provider_for(base_url, "vllm").name == "vllm"
