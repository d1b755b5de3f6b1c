"""Start-up: the pipeline, the store and the desk, then Socket Mode, HTTP, or the sandbox."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app, build_client
from bot.outbox import SlackOutbox
from bot.record import CallRecorder, recording
from bot.services import Services, open_store
from bot.settings import Settings
from routing.cascade import LLMLayer, Pipeline, build_pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk import Desk
from routing.embedding import (
    Embedder,
    EmbeddingModelCorruptError,
    EmbeddingModelMissingError,
    MiniLMEmbedder,
)
from routing.errors import ConfigError, UserError
from routing.llm import LLMClassifier, build_openai_client

logger = logging.getLogger(__name__)

# The SQLite file a real workspace's bot keeps when TRIAGE_DB is unset.
DEFAULT_DATABASE = Path("triage.sqlite3")


def load_embedder() -> Embedder | None:
    """The local model, or None (said once, on stderr) when it is not installed."""
    try:
        return MiniLMEmbedder.load()
    except (EmbeddingModelMissingError, EmbeddingModelCorruptError) as error:
        # Said once, at start-up; every ticket is then marked for a human.
        print(f"warning: {error}\nContinuing with keyword rules only.", file=sys.stderr)  # noqa: T201
        return None


def llm_layer(settings: Settings, config: TriageConfig) -> LLMLayer | None:
    """The LLM layer when an API key and a model are configured, else None (offline)."""
    if settings.openai_api_key is None or config.llm.cheap_model is None:
        return None
    client = build_openai_client(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or config.llm.base_url,
        timeout_seconds=config.llm.timeout_seconds,
        max_retries=config.llm.max_retries,
    )
    return LLMClassifier(client=client, config=config)


def make_pipeline(settings: Settings, config: TriageConfig) -> Pipeline:
    """The decision pipeline for a config: local model and, if configured, the LLM."""
    return build_pipeline(config, embedder=load_embedder(), llm=llm_layer(settings, config))


def require_slack_config(config: TriageConfig) -> SlackConfig:
    """The [slack] section, which a real workspace needs (the sandbox makes its own)."""
    if config.slack is None:
        raise ConfigError(
            config.source,
            "slack",
            "missing: the bot needs the intake channel and each team's channel",
            'add [slack] with intake_channels = ["C..."] and a [slack.teams.<team>] table per'
            " team (see README: Connecting to a Slack workspace)",
        )
    return config.slack


@asynccontextmanager
async def running_desk(
    *,
    config: TriageConfig,
    slack: SlackConfig,
    pipeline: Pipeline,
    client: AsyncWebClient,
    database: Path | str,
) -> AsyncIterator[Desk]:
    """A started desk over a store and a Slack client; stopped and closed on exit."""
    store = await open_store(database)
    desk = Desk(
        config=config, slack=slack, pipeline=pipeline, store=store, outbox=SlackOutbox(client)
    )
    try:
        await desk.start()
        yield desk
    finally:
        await desk.stop()
        await store.close()


async def check_token(client: AsyncWebClient) -> None:
    """Fail at start-up, naming the setting, when Slack refuses the bot token."""
    try:
        await client.auth_test()
    except SlackApiError as error:
        raise UserError(
            f"setting SLACK_BOT_TOKEN: Slack refused it ({error.response['error']});"
            " copy the Bot User OAuth Token from OAuth & Permissions"
        ) from None


async def run_slack(
    settings: Settings,
    config: TriageConfig,
    *,
    http: bool,
    port: int,
    record: Path | None = None,
) -> None:
    """Serve a real workspace: Socket Mode by default, the Events API over HTTP with --http.

    With `record`, every Web API call is appended to that file (bot/record.py).
    """
    with ExitStack() as stack:
        recorder = stack.enter_context(CallRecorder(record)) if record is not None else None
        await _run_slack(settings, config, http=http, port=port, recorder=recorder)


async def _run_slack(
    settings: Settings,
    config: TriageConfig,
    *,
    http: bool,
    port: int,
    recorder: CallRecorder | None,
) -> None:
    slack = require_slack_config(config)
    assert settings.slack_bot_token is not None  # noqa: S101  # the caller checked
    if http and settings.slack_signing_secret is None:
        raise UserError(
            "setting SLACK_SIGNING_SECRET: missing; HTTP mode checks every request with it"
            " (Basic Information -> App Credentials)"
        )
    if not http and settings.slack_app_token is None:
        raise UserError(
            "setting SLACK_APP_TOKEN: missing; Socket Mode needs an app-level token (xapp-) with"
            " connections:write, or run `triage run --http` behind a public URL"
        )
    client = build_client(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        recorder=recorder,
    )
    await check_token(client)
    stop_on_sigterm()
    pipeline = make_pipeline(settings, config)
    async with running_desk(
        config=config,
        slack=slack,
        pipeline=pipeline,
        client=client,
        database=settings.database_location(DEFAULT_DATABASE),
    ) as desk:
        services = Services(desk=desk, config=config)
        if http:
            assert settings.slack_signing_secret is not None  # noqa: S101  # checked above
            app = build_app(
                client=client,
                services=services,
                signing_secret=settings.slack_signing_secret.get_secret_value(),
            )
            await _serve_http(app.web_app(path="/slack/events"), port, desk)
        else:
            from slack_bolt.adapter.socket_mode.async_handler import (
                AsyncSocketModeHandler,
            )

            assert settings.slack_app_token is not None  # noqa: S101  # checked above
            app = build_app(client=client, services=services)
            handler = AsyncSocketModeHandler(
                app,
                settings.slack_app_token.get_secret_value(),
                # apps.connections.open goes where every other call goes.
                web_client=recording(AsyncWebClient(base_url=settings.slack_api_url), recorder),
            )
            try:
                await handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt is untyped
                logger.warning("connected to Slack in Socket Mode; Ctrl-C stops the bot")
                # Connected first: what arrives from now on comes as events, the rest is read back.
                await desk.catch_up()
                await asyncio.Event().wait()
            finally:
                # Its connection monitor would otherwise outlive the bot.
                await handler.close_async()  # type: ignore[no-untyped-call]


def stop_on_sigterm() -> None:
    """Stop on SIGTERM (a deploy, systemd, Kubernetes) as on Ctrl-C.

    The workers stop and the database closes; stored tickets not yet routed are routed at the
    next start.
    """
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _serve_http(web_app: object, port: int, desk: Desk) -> None:
    from aiohttp import web  # only HTTP mode needs the server

    assert isinstance(web_app, web.Application)  # noqa: S101  # Bolt's aiohttp adapter
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)  # noqa: S104  # a server, by design
    await site.start()
    logger.warning("serving Slack requests on port %s at /slack/events", port)
    try:
        await desk.catch_up()  # serving first: nothing falls between the read-back and events
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
