"""A local OpenAI-compatible chat completions server: scripted answers, every request recorded.

It speaks the real wire format (the same JSON the openai package parses from api.openai.com), so
tests exercise the real `openai.AsyncOpenAI` client, its retries, timeouts and parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: a chat completion, or an HTTP error with an OpenAI-style body."""

    status: int = 200
    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 100
    completion_tokens: int = 20
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering (longer than the client's timeout to provoke one).
    delay: float = 0.0
    # Answer only once this is set (a test's own moment: a model that answers "later").
    hold: asyncio.Event | None = None


def reply_json(
    obj: Any, *, prompt_tokens: int = 100, completion_tokens: int = 20, finish_reason: str = "stop"
) -> Scripted:
    """Answer with obj serialised as the assistant message's content."""
    return Scripted(
        content=json.dumps(obj),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
    )


def reply_text(text: str, *, finish_reason: str = "stop") -> Scripted:
    """Answer with plain text as the assistant message's content."""
    return Scripted(content=text, finish_reason=finish_reason)


def malformed(text: str) -> Scripted:
    """Answer with content that is not the JSON the client asked for."""
    return Scripted(content=text)


def refusal(text: str) -> Scripted:
    """Answer with a refusal, as OpenAI does for structured output it will not produce."""
    return Scripted(content=None, refusal=text)


def status(
    code: int,
    *,
    retry_after: float | None = None,
    retry_after_ms: int | None = None,
    message: str | None = None,
) -> Scripted:
    """Answer with an HTTP error and an OpenAI-style error body."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_error"}
    error = {
        "message": message or f"stand-in error {code}",
        "type": kinds.get(code, "server_error"),
        "param": None,
        "code": "rate_limit_exceeded" if code == 429 else None,
    }
    return Scripted(status=code, error=error, headers=headers)


def delay(seconds: float, then: Scripted | None = None) -> Scripted:
    """Answer like `then` (an empty reply by default), but only after `seconds`."""
    return dataclasses.replace(then if then is not None else reply_text(""), delay=seconds)


JSON_SCHEMA_REJECTION = {
    "error": {
        "message": (
            "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
            "with this model."
        ),
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
}


@dataclass(frozen=True)
class Rejection:
    """An HTTP error a server answers a request shape with: status and the body it sends."""

    status: int
    body: dict[str, Any]


# The fields of OpenAI's chat completions request; a strict server refuses any other.
OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "response_format", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "n", "stream", "stop", "seed", "user", "tools", "tool_choice",
        "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """How one kind of OpenAI-compatible server treats the shapes of request the layer sends.

    The rejections are the status and body each server sends, from its documentation or, for
    llama-cpp-python, as observed (../shared/tools/README.md).
    """

    name: str
    # What it answers to response_format {"type": "json_schema"}: None accepts it.
    json_schema: Rejection | None = None
    # What it answers to response_format {"type": "json_object"} (with or without a schema).
    json_object: Rejection | None = None
    # True when it refuses fields it does not know (OpenAI, Groq, Cerebras), a schema inside a
    # json_object response_format among them; else it ignores them (vLLM, llama.cpp, Ollama).
    strict_fields: bool = False
    # Fields beyond OpenAI's that it reads (vLLM's guided decoding).
    own_fields: frozenset[str] = frozenset()
    # The output-limit field names it refuses.
    refuses_token_params: frozenset[str] = frozenset()

    def check(self, body: dict[str, Any]) -> Rejection | None:
        """The rejection this server answers the request with, or None when it takes it."""
        for param in self.refuses_token_params:
            if param in body:
                return _openai_error(
                    400,
                    f"Unsupported parameter: '{param}' is not supported with this model. Use "
                    f"'{'max_completion_tokens' if param == 'max_tokens' else 'max_tokens'}' "
                    "instead.",
                    param,
                )
        if self.strict_fields:
            for name in body:
                if name not in OPENAI_FIELDS and name not in self.own_fields:
                    return _openai_error(
                        400, f"Unrecognized request argument supplied: {name}", name
                    )
        response_format = body.get("response_format") or {}
        kind = response_format.get("type")
        if kind == "json_schema" and self.json_schema is not None:
            return self.json_schema
        if kind == "json_object":
            if self.json_object is not None:
                return self.json_object
            if self.strict_fields and "schema" in response_format:
                return _openai_error(
                    400, "Unknown parameter: 'response_format.schema'.", "response_format.schema"
                )
        return None


def _openai_error(status: int, message: str, param: str | None) -> Rejection:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return Rejection(
        status, {"error": {"message": message, "type": kind, "param": param, "code": None}}
    )


# llama-cpp-python 0.3.x: its pydantic model allows only 'text' and 'json_object'; the error
# becomes a 500 (observed against 0.3.36, see BENCHMARKS.md).
_LITERAL_ERROR = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'),"
    " 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
    "{'expected': \"'text' or 'json_object'\"}}\n"
)
PROFILES: dict[str, Profile] = {
    "openai": Profile("openai", strict_fields=True, refuses_token_params=frozenset({"max_tokens"})),
    # Groq: a model without json_schema support answers 400 naming response_format.
    "groq": Profile(
        "groq",
        json_schema=_openai_error(
            400,
            "This model does not support response format `json_schema`. See supported models at "
            "https://console.groq.com/docs/structured-outputs#supported-models",
            "response_format",
        ),
        strict_fields=True,
    ),
    "cerebras": Profile("cerebras", strict_fields=True),
    "openrouter": Profile("openrouter"),
    "together": Profile("together"),
    "ollama": Profile("ollama"),
    "vllm": Profile("vllm", own_fields=frozenset({"guided_json", "structured_outputs"})),
    # A vLLM from before json_schema: its error body is flat, not under "error".
    "vllm-legacy": Profile(
        "vllm-legacy",
        json_schema=Rejection(
            400,
            {
                "object": "error",
                "message": "response_format must be one of 'text' or 'json_object'",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        own_fields=frozenset({"guided_json"}),
    ),
    "llama-cpp-python": Profile(
        "llama-cpp-python",
        json_schema=Rejection(
            500,
            {
                "error": {
                    "message": _LITERAL_ERROR,
                    "type": "internal_server_error",
                    "param": None,
                    "code": None,
                }
            },
        ),
    ),
    # llama-server before it took json_schema (2024): a 500 in its own words.
    "llama-server-2024": Profile(
        "llama-server-2024",
        json_schema=Rejection(
            500,
            {
                "error": {
                    "code": 500,
                    "message": 'response_format type must be one of "text" or "json_object",'
                    " but got: json_schema",
                    "type": "server_error",
                }
            },
        ),
    ),
    # A FastAPI-based proxy that validates the request: a 422 with FastAPI's detail list.
    "fastapi-422": Profile(
        "fastapi-422",
        json_schema=Rejection(
            422,
            {
                "detail": [
                    {
                        "type": "literal_error",
                        "loc": ["body", "response_format", "type"],
                        "msg": "Input should be 'text' or 'json_object'",
                        "input": "json_schema",
                    }
                ]
            },
        ),
    ),
    # A server with no JSON mode at all: response_format of any kind is refused.
    "plain": Profile(
        "plain",
        json_schema=_openai_error(400, "response_format is not supported", "response_format"),
        json_object=_openai_error(400, "response_format is not supported", "response_format"),
    ),
}


def _no_script(body: dict[str, Any]) -> Scripted:
    return status(500, message=f"stand-in: nothing scripted for model {body.get('model')!r}")


class OpenAIStandIn:
    """Serves POST /v1/chat/completions on 127.0.0.1 from a queue of scripted answers."""

    def __init__(self) -> None:
        # Parsed JSON body of every request, in arrival order (rejected ones included).
        self.requests: list[dict[str, Any]] = []
        # Used when the queue is empty; a function of the request body.
        self.default: Callable[[dict[str, Any]], Scripted] = _no_script
        self._queue: deque[Scripted] = deque()
        # How the server treats the request's shape; a generic one takes every shape.
        self.profile = Profile("generic")
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The base_url to give the client."""
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    def queue(self, *answers: Scripted) -> None:
        """Answer the next requests with these, in order; then fall back to `default`."""
        self._queue.extend(answers)

    def reject_json_schema(self) -> None:
        """From now on answer 400 to every request whose response_format is json_schema."""
        self.profile = Profile(
            "rejects-json-schema", json_schema=Rejection(400, JSON_SCHEMA_REJECTION)
        )

    def behave_as(self, name: str) -> Profile:
        """From now on treat request shapes as this server of PROFILES does."""
        self.profile = PROFILES[name]
        return self.profile

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        # Cancel a delayed handler when the client gives up, as a real server's would stop.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening and end any delayed answers."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _chat_completions(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "You didn't provide an API key.", None)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", None)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", None)
        self.requests.append(body)
        for required in ("model", "messages"):
            if required not in body:
                return _error(400, f"Missing required parameter: '{required}'.", required)
        rejection = self.profile.check(body)
        if rejection is not None:
            return web.json_response(rejection.body, status=rejection.status)
        response_format = body.get("response_format") or {}
        kind = response_format.get("type")
        if kind == "json_object" and "json" not in json.dumps(body["messages"]).lower():
            # Real OpenAI insists on this, so a prompt that forgets it fails here too.
            return _error(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
            )

        answer = self._queue.popleft() if self._queue else self.default(body)
        if answer.hold is not None:
            await _first_of(answer.hold.wait(), self._closing.wait())
        if answer.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=answer.delay)
        if answer.status != 200:
            return web.json_response(
                {"error": answer.error}, status=answer.status, headers=answer.headers
            )
        completion = {
            "id": f"chatcmpl-standin{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": answer.content,
                        "refusal": answer.refusal,
                    },
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
            "system_fingerprint": "fp_standin",
        }
        return web.json_response(completion, headers=answer.headers)


def held(hold: asyncio.Event, then: Scripted) -> Scripted:
    """Answer like `then`, but only once the test sets `hold`."""
    return dataclasses.replace(then, hold=hold)


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of these is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _error(code: int, message: str, param: str | None) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }
    return web.json_response(body, status=code)
