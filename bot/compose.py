"""The one composition root: the pipeline, the store-backed desk, its outbox and the Bolt app.

The runner (Socket Mode and HTTP), the sandbox and the test harness build the bot here and only
here; each differs from the others in what it hands in (the Slack client, the store, the
pipeline, the desk's timing), not in how the parts are put together. The benchmarks start real
`triage run` processes, so they compose through the runner. bot/services.py stays what the
listeners are handed (`Services`) and how the store TRIAGE_DB names is opened.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app, kept_alive
from bot.outbox import SlackOutbox
from bot.services import Services, open_store
from bot.settings import Settings
from routing.cascade import LLMLayer, Pipeline, build_pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk import (
    LEASE_SECONDS,
    READ_BACK_RETRY_DELAYS,
    ROUTING_RETRY_DELAYS,
    Desk,
    PostPacer,
)
from routing.embedding import (
    Embedder,
    EmbeddingModelCorruptError,
    EmbeddingModelMissingError,
    MiniLMEmbedder,
)
from routing.language import LanguageDetector
from routing.llm import LLMClassifier, build_openai_client
from routing.ports import Clock, SystemClock, TicketStore


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
    """The decision pipeline for a config: local model and, if configured, the LLM.

    Both models are loaded here: the language detector's (0.6 s of CPU) was loaded by the
    first ticket, which waited for it, while the other tickets of a burst queued behind.
    """
    languages = LanguageDetector(
        candidates=config.languages.candidates, min_probability=config.languages.min_probability
    ).load()
    return build_pipeline(
        config, embedder=load_embedder(), llm=llm_layer(settings, config), languages=languages
    )


@dataclass(frozen=True)
class DeskTiming:
    """The desk's clock and delays: the runner's defaults, or a test's own."""

    # Every part of the desk reads the time through this one (routing.ports.Clock).
    clock: Clock = field(default_factory=SystemClock)
    lease_seconds: float = LEASE_SECONDS
    retry_delays: Sequence[float] = ROUTING_RETRY_DELAYS
    read_back_delays: Sequence[float] = READ_BACK_RETRY_DELAYS
    # Seconds between posts in a channel; None: the config's ([slack] post_spacing_seconds).
    post_spacing_seconds: float | None = None


@dataclass(frozen=True)
class Serving:
    """How the app takes requests: signed HTTP (a signing secret) or Socket Mode (none)."""

    signing_secret: str | None = None
    # True in the sandbox and tests: a dispatch returns after its listener ran.
    process_before_response: bool = False


@dataclass(frozen=True)
class BotServices:
    """Everything one bot is made of, built by build_services."""

    store: TicketStore
    desk: Desk
    app: AsyncApp


def app_for(desk: Desk, config: TriageConfig, client: AsyncWebClient, serving: Serving) -> AsyncApp:
    """The Bolt app and its listeners over a desk (a second app for the same desk included)."""
    return build_app(
        client=client,
        services=Services(desk=desk, config=config),
        signing_secret=serving.signing_secret,
        process_before_response=serving.process_before_response,
    )


def build_services(
    config: TriageConfig,
    slack: SlackConfig,
    *,
    pipeline: Pipeline,
    store: TicketStore,
    client: AsyncWebClient,
    timing: DeskTiming | None = None,
    serving: Serving | None = None,
) -> BotServices:
    """The desk over a store, its Slack outbox over a client, and the app; nothing started."""
    timing = timing or DeskTiming()
    spacing = timing.post_spacing_seconds
    pacer = PostPacer(
        store=store,
        clock=timing.clock,
        spacing_seconds=slack.post_spacing_seconds if spacing is None else spacing,
    )
    desk = Desk(
        config=config,
        slack=slack,
        pipeline=pipeline,
        store=store,
        outbox=SlackOutbox(client, pace=pacer.take_turn),
        clock=timing.clock,
        lease_seconds=timing.lease_seconds,
        retry_delays=timing.retry_delays,
        read_back_delays=timing.read_back_delays,
    )
    app = app_for(desk, config, client, serving or Serving())
    return BotServices(store=store, desk=desk, app=app)


@asynccontextmanager
async def running_services(
    config: TriageConfig,
    slack: SlackConfig,
    *,
    pipeline: Pipeline,
    client: AsyncWebClient,
    database: Path | str | None = None,
    store: TicketStore | None = None,
    timing: DeskTiming | None = None,
    serving: Serving | None = None,
) -> AsyncIterator[BotServices]:
    """The bot built and its desk started, over `store` or the one `database` names.

    On exit the desk stops and the store closes (a store handed in too: the bot owns it).
    """
    if store is None:
        if database is None:
            msg = "running_services needs a store or a database to open"
            raise ValueError(msg)
        store = await open_store(database)
    bot = build_services(
        config, slack, pipeline=pipeline, store=store, client=client, timing=timing, serving=serving
    )
    async with kept_alive(client):
        try:
            await bot.desk.start()
            yield bot
        finally:
            await bot.desk.stop()
            await store.close()
