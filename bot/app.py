"""build_app: the Bolt app with every listener wired to the services it is given."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import actions, commands, messages, reactions
from bot.logs import describe
from bot.record import CallRecorder, RecordingWebClient, record_listener_calls
from bot.services import Services
from bot.settings import hidden_from_bolt

logger = logging.getLogger(__name__)

# A burst of tickets meets chat.postMessage's ~1 per second per channel: keep retrying after
# each Retry-After rather than drop a post (the desk retries the whole ticket after that).
RATE_LIMIT_RETRIES = 20
# Bolt, slack_sdk's Socket Mode client and its Web API client parse Slack's JSON with the
# standard library, whose decoder counts each nesting level against the recursion limit (1,000,
# less the frames already on the stack): a message nested 900 deep raised RecursionError, so its
# event was refused every time and the history page holding it could never be read back.
PAYLOAD_RECURSION_LIMIT = 6000


def build_client(
    *, token: str, base_url: str, recorder: CallRecorder | None = None, timeout: int = 30
) -> AsyncWebClient:
    """A Web API client that waits out 429s and retries dropped connections.

    With a recorder (`triage run --record`), it and the app's listeners record every call.
    timeout (seconds, slack_sdk's default) bounds each call; tests shorten it.
    """
    retry_handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
    ]
    if recorder is not None:
        return RecordingWebClient(
            recorder=recorder,
            token=token,
            base_url=base_url,
            retry_handlers=retry_handlers,
            timeout=timeout,
        )
    return AsyncWebClient(
        token=token, base_url=base_url, retry_handlers=retry_handlers, timeout=timeout
    )


@asynccontextmanager
async def kept_alive(client: AsyncWebClient) -> AsyncIterator[None]:
    """Every Web API call of the client (and of Bolt's per-request copies) over one session.

    Without a session slack_sdk opens and closes a connection for each call, about half of a
    call's CPU in the bot; one session keeps its connections alive. Its total timeout is the
    client's, as slack_sdk gives a session of its own; no connection limit, as before.
    """
    if client.session is not None:
        yield  # the caller's own session: theirs to close
        return
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=client.timeout),
        connector=aiohttp.TCPConnector(limit=0),
    )
    client.session = session
    try:
        yield
    finally:
        client.session = None
        await session.close()


def authorize_once(client: AsyncWebClient) -> Callable[[], Awaitable[AuthorizeResult]]:
    """Who the bot is, asked of auth.test once and shared by every request.

    Bolt's single-workspace authorization calls auth.test for each request until the first
    answer arrives, so a burst of events at start-up would send hundreds of them.
    """
    lock = asyncio.Lock()
    known: list[AuthorizeResult] = []

    async def authorize() -> AuthorizeResult:
        async with lock:
            if not known:
                response = await client.auth_test()
                known.append(
                    AuthorizeResult.from_auth_test_response(
                        auth_test_response=response, bot_token=client.token
                    )
                )
        return known[0]

    return authorize


def build_app(
    *,
    client: AsyncWebClient,
    services: Services,
    signing_secret: str | None = None,
    process_before_response: bool = False,
) -> AsyncApp:
    """The app: request signatures are checked only when a signing secret is given (HTTP mode).

    A new customer message is stored before Slack is acknowledged whatever
    process_before_response says (bot/listeners/messages.py).
    """
    sys.setrecursionlimit(max(sys.getrecursionlimit(), PAYLOAD_RECURSION_LIMIT))
    # Bolt fills in what it is not given from os.environ; SLACK_CLIENT_ID and SLACK_CLIENT_SECRET
    # there would turn on its OAuth flow, install pages and a file installation store. Everything
    # comes from the arguments (load_settings refuses the OAuth pair outright).
    with hidden_from_bolt():
        app = AsyncApp(
            name="triage",
            # The listeners' client gets the bot token from authorize (a client with a token too
            # would make Bolt use its per-request auth.test instead).
            client=AsyncWebClient(base_url=client.base_url, retry_handlers=client.retry_handlers),
            authorize=authorize_once(client),
            # Basic Information -> App Credentials -> Signing Secret; Socket Mode needs none.
            signing_secret=signing_secret or "",
            request_verification_enabled=signing_secret is not None,
            # Tests set it so a dispatch returns after the listener ran; Slack needs the default
            # (commands and buttons answer at once). Intake messages are stored before the ack
            # either way: a listener middleware runs before Bolt acknowledges.
            process_before_response=process_before_response,
        )
    if isinstance(client, RecordingWebClient):
        app.use(record_listener_calls(client.recorder))
    messages.register(app, services)
    reactions.register(app, services)
    commands.register(app, services)
    actions.register(app, services)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The one place a listener's failure ends up: logged for the operator, never lost
        # silently (the ticket itself is stored before any listener work can fail).
        # Read defensively: the body that failed may be one whose `event` is no object.
        event = body.get("event")
        kind = event.get("type") if isinstance(event, dict) else None
        logger.error(
            "listener failed on %s: %s",
            kind or body.get("type"),
            describe(error),
            exc_info=error,
        )

    return app
