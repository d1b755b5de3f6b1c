"""No acknowledged event lost: stored before the ack, refused when the store refuses, read back.

The app is served as `triage run` serves it (Bolt acknowledges before its listeners run), so an
acknowledgement that came before the store would show here as a 200 with no ticket behind it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_client
from bot.compose import Serving, app_for
from bot.sandbox.shell import CUSTOMER, INTAKE, sandbox_slack_config
from routing.config import SlackConfig, TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from routing.records import utc_now
from routing.store.sqlite import SqliteStore
from tests.slack_harness import Harness, running_bot, standin_for
from tests.timekeeping import HANG_GUARD_SECONDS, until

APP_TOKEN = "xapp-store-first"  # the stand-in's app-level token for Socket Mode
# A write waits this long for another process's lock, then is tried twice more at once.
BUSY_SECONDS = 0.05


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


async def _impatient_store(database: Path) -> SqliteStore:
    """The bot's SQLite store, waiting only briefly for a lock (so a held lock fails fast)."""
    return await SqliteStore.open(database, busy_timeout=BUSY_SECONDS, write_retry_delays=(0, 0))


@contextmanager
def _write_lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the database's write lock until the block ends."""
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("ROLLBACK")
    finally:
        other.close()


@asynccontextmanager
async def _bot_as_run(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, **extra: Any
) -> AsyncIterator[Harness]:
    """The bot over HTTP with `triage run`'s ack, on an SQLite file that waits briefly."""
    database = tmp_path / "triage.sqlite3"
    store = await _impatient_store(database)
    try:
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            store=store,
            process_before_response=False,
            **extra,
        ) as bot:
            yield bot
    finally:
        await store.close()


def _message_event(
    bot: Harness, text: str, fields: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """A customer's message in the intake channel (in Slack's history too) and its event."""
    message = bot.slack.add_message(INTAKE, user=CUSTOMER, text=text)
    event = bot.workspace.message(
        channel=INTAKE, user=CUSTOMER, text=text, ts=message["ts"], extra=fields
    )
    return str(message["ts"]), event


def _alerts(bot: Harness, slack_config: SlackConfig | None = None) -> list[str]:
    """The bot's messages in the ops channel (by default the fallback team's channel)."""
    channel = bot.channel_of(bot.config.fallback_team)
    if slack_config is not None and slack_config.ops_channel is not None:
        channel = slack_config.ops_channel
    return [
        str(message["text"])
        for message in bot.slack.messages(channel)
        if "metadata" not in message and "thread_ts" not in message
    ]


def _cards(bot: Harness) -> list[dict[str, Any]]:
    """The ticket posts in every team channel (the ops alerts are no ticket posts)."""
    return [post for post in bot.all_ticket_posts() if "metadata" in post]


async def test_an_acknowledged_message_is_already_stored(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """When Slack gets its 200 the ticket exists: the ack comes after the store, not before."""
    async with _bot_as_run(tmp_path, embedder, config) as bot:
        for n in range(5):
            ts, event = _message_event(bot, f"I was charged twice this month, order {n}")
            assert await bot.event(event) == 200
            assert await bot.store.ticket_at(INTAKE, ts) is not None


async def test_a_locked_store_refuses_the_event_and_slacks_retry_stores_it(
    tmp_path: Path,
    embedder: CachingEmbedder,
    config: TriageConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process holds the write lock: 503, one log line, one ops alert; the retry lands."""
    async with _bot_as_run(tmp_path, embedder, config) as bot:
        ts, event = _message_event(bot, "I was charged twice this month")
        with _write_lock(tmp_path / "triage.sqlite3"):
            assert await bot.event(event, event_id="EvLOCKED") == 503
            other_ts, other = _message_event(bot, "My invoice shows the wrong VAT")
            assert await bot.event(other) == 503
        refusals = [r for r in caplog.records if "not acknowledged" in r.getMessage()]
        assert len(refusals) == 2
        assert all(r.levelno == logging.ERROR and r.exc_info is None for r in refusals)
        assert "database is locked" in refusals[0].getMessage()
        assert await bot.store.ticket_at(INTAKE, ts) is None
        # Slack retries the same event id: it was never handled, so it is not a duplicate now.
        assert await bot.event(event, event_id="EvLOCKED", retry=1) == 200
        assert await bot.event(other, retry=1) == 200
        await bot.desk.drain()
        for message_ts in (ts, other_ts):
            ticket = await bot.store.ticket_at(INTAKE, message_ts)
            assert ticket is not None
            assert ticket.status == "routed"
        # Said once in the ops channel (rate-limited), naming the problem and what to do.
        await until(lambda: len(_alerts(bot)) == 1, what="the ops alert posted")
        (alert,) = _alerts(bot)
        assert "database is locked" in alert
        assert "Free the database" in alert


async def test_socket_mode_sends_no_ack_while_the_store_refuses(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Socket Mode: no ack for a message the store refused, an ack once Slack redelivers it."""
    async with _bot_as_run(tmp_path, embedder, config) as bot:
        bot.slack.app_token = APP_TOKEN
        client = build_client(token=bot.slack.bot_token, base_url=bot.slack.base_url)
        app = app_for(bot.desk, bot.config, client, Serving())
        handler = AsyncSocketModeHandler(
            app, APP_TOKEN, web_client=AsyncWebClient(base_url=bot.slack.base_url)
        )
        refused: list[str] = []
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt is untyped
            ts, event = _message_event(bot, "I was charged twice this month")
            envelope = bot.workspace.envelope(event)
            with _write_lock(tmp_path / "triage.sqlite3"):
                try:
                    # Slack's own 3 s: the refusal takes a busy timeout and two quick retries.
                    await bot.slack.send_envelope(
                        "events_api", envelope, connect_timeout=HANG_GUARD_SECONDS
                    )
                except TimeoutError:
                    refused.append(ts)
            ack = await bot.slack.send_envelope(
                "events_api",
                envelope,
                retry_attempt=1,
                retry_reason="timeout",
                connect_timeout=HANG_GUARD_SECONDS,
                ack_timeout=HANG_GUARD_SECONDS,
            )
            # The ack came after the store: the ticket is there the moment Slack has it.
            stored = await bot.store.ticket_at(INTAKE, ts)
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
        assert refused == [ts]
        assert ack["envelope_id"] == bot.slack.envelopes[-1]["envelope_id"]
        assert stored is not None


async def test_what_the_store_refused_is_read_back_once_it_takes_a_ticket(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Slack stopped redelivering a refused message: the next stored ticket reads it back."""
    async with _bot_as_run(tmp_path, embedder, config) as bot:
        await bot.new_ticket("Would love a dark mode for the dashboard")
        lost_ts, lost = _message_event(bot, "I was charged twice this month")
        with _write_lock(tmp_path / "triage.sqlite3"):
            assert await bot.event(lost) == 503
        # Slack's retries ran out while the store refused; a later message is stored.
        later_ts, later = _message_event(bot, "My invoice shows the wrong VAT")
        assert await bot.event(later) == 200

        async def lost_is_routed() -> bool:
            ticket = await bot.store.ticket_at(INTAKE, lost_ts)
            return ticket is not None and ticket.status == "routed"

        await until(lost_is_routed, what="the refused message read back and routed")
        await bot.desk.drain()
        assert await bot.store.ticket_at(INTAKE, later_ts) is not None
        assert len(_cards(bot)) == 3


async def test_the_start_reads_back_a_refused_message_older_than_newer_tickets(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """Refused an hour before the newest ticket and never redelivered: the next start finds it."""
    database = store_location
    now = time.time()
    async with standin_for(config) as slack:
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            stamps = {"first": now - 7200, "refused": now - 3600, "newest": now - 60}
            for name, at in stamps.items():
                message = slack.add_message(
                    INTAKE, user=CUSTOMER, text=f"I was charged twice, {name}", ts=f"{at:.6f}"
                )
                if name != "refused":  # the one the store refused, then the bot stopped
                    event = bot.workspace.message(
                        channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"]
                    )
                    assert await bot.event(event) == 200
            await bot.desk.drain()
            assert await bot.store.ticket_at(INTAKE, f"{stamps['refused']:.6f}") is None
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            await bot.desk.drain()
            ticket = await bot.store.ticket_at(INTAKE, f"{stamps['refused']:.6f}")
            assert ticket is not None
            assert ticket.status == "routed"
            assert len(_cards(bot)) == 3


# --- malformed messages ---------------------------------------------------------------------------

NESTED = json.loads("[" * 900 + "]" * 900)


async def test_malformed_messages_are_stored_sanitised_or_rejected_with_a_log_line(
    tmp_path: Path,
    embedder: CachingEmbedder,
    config: TriageConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lone surrogate, 900-deep blocks, text as a list: tickets; a ts 'abc': one log line."""
    async with _bot_as_run(tmp_path, embedder, config) as bot:
        surrogate_ts, surrogate = _message_event(bot, "my invoice \ud800 is wrong")
        assert await bot.event(surrogate) == 200
        deep_ts, deep = _message_event(bot, "I was charged twice", {"blocks": NESTED})
        assert await bot.event(deep) == 200
        listed_ts, listed = _message_event(bot, "x", {"text": ["my card", "was declined"]})
        assert await bot.event(listed) == 200
        bad = bot.workspace.message(channel=INTAKE, user=CUSTOMER, text="refund me", ts="abc")
        assert await bot.event(bad) == 200
        await bot.desk.drain()
        surrogate_ticket = await bot.store.ticket_at(INTAKE, surrogate_ts)
        assert surrogate_ticket is not None
        assert surrogate_ticket.text == "my invoice \ufffd is wrong"
        deep_ticket = await bot.store.ticket_at(INTAKE, deep_ts)
        assert deep_ticket is not None
        assert deep_ticket.text == "I was charged twice"
        listed_ticket = await bot.store.ticket_at(INTAKE, listed_ts)
        assert listed_ticket is not None
        assert listed_ticket.text == ""  # no text: a ticket for a human (test_malformed_text)
        assert await bot.store.ticket_at(INTAKE, "abc") is None
        assert len(_cards(bot)) == 3
        (rejected,) = [r for r in caplog.records if "rejected a message" in r.getMessage()]
        assert "'abc'" in rejected.getMessage()


async def test_a_restart_reads_back_malformed_messages_without_dying(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """A surrogate, 900-deep blocks, a list text in history, a stored ts 'abc': it starts."""
    database = store_location
    async with standin_for(config) as slack:
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            await bot.new_ticket("Would love a dark mode for the dashboard")
            # What an older version stored from an event whose ts was not Slack's.
            await bot.store.add_ticket(
                channel=INTAKE, ts="abc", author=CUSTOMER, text="hi", received_at=utc_now()
            )
        # Written while the bot was down.
        written = [
            slack.add_message(INTAKE, user=CUSTOMER, text="my invoice \ud800 is wrong"),
            slack.add_message(
                INTAKE, user=CUSTOMER, text="I was charged twice", fields={"blocks": NESTED}
            ),
            slack.add_message(
                INTAKE, user=CUSTOMER, text="x", fields={"text": ["my card", "was declined"]}
            ),
        ]
        for _ in range(2):  # and the start after that, with them stored
            async with running_bot(
                tmp_path, embedder, config=config, database=database, workspace=slack
            ) as bot:
                await bot.desk.drain()
                texts = []
                for message in written:
                    ticket = await bot.store.ticket_at(INTAKE, message["ts"])
                    assert ticket is not None
                    texts.append(ticket.text)
                assert texts == [
                    "my invoice \ufffd is wrong",
                    "I was charged twice",
                    "",
                ]
                # The three, the first ticket, and the 'abc' one (stored unrouted) routed now.
                assert len(_cards(bot)) == 5


# --- Slack refusing posts or history --------------------------------------------------------------


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel"])
async def test_a_team_channel_slack_always_refuses_posts_in_the_fallback_and_alerts(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, error: str
) -> None:
    """Every post in #billing refused: the ticket goes to the fallback team, the alert names it."""
    async with running_bot(tmp_path, embedder, config=config, retry_delays=()) as bot:
        billing = bot.channel_of("billing")
        bot.slack.fail_posts_in(billing, error)
        ticket_id = await bot.new_ticket("I was charged twice this month")
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.status == "routed"
        assert ticket.decision is not None
        assert ticket.decision.team == "billing"
        fallback = bot.channel_of(config.fallback_team)
        (post,) = await bot.store.posts(ticket_id)
        assert post.channel == fallback
        assert post.team == "billing"
        (note,) = bot.thread_of(fallback, post.ts)[:1]
        assert billing in note["text"]
        assert error in note["text"]
        await until(lambda: len(_alerts(bot)) == 1, what="the ops alert posted")
        (alert,) = _alerts(bot)
        assert billing in alert
        assert "[slack.teams.billing]" in alert
        # A second ticket for the same channel: posted in the fallback too, no second alert.
        second = await bot.new_ticket("My invoice shows the wrong VAT")
        (second_post,) = await bot.store.posts(second)
        assert second_post.channel == fallback
        assert len(_alerts(bot)) == 1


async def test_the_ops_alert_goes_to_the_configured_ops_channel(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """[slack] ops_channel set: the alert is said there, not in the fallback team's channel."""
    slack_config = sandbox_slack_config(config).model_copy(update={"ops_channel": "C0OPS"})
    async with standin_for(config, slack_config) as slack:
        slack.add_channel("C0OPS", "ops")
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            slack_config=slack_config,
            workspace=slack,
            retry_delays=(),
        ) as bot:
            bot.slack.fail_posts_in(bot.channel_of("billing"))
            await bot.new_ticket("I was charged twice this month")
            await until(lambda: len(_alerts(bot, slack_config)) == 1, what="the ops alert")
            assert _alerts(bot) == []


async def test_a_history_read_that_fails_at_start_is_retried_and_reads_the_missed_message(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """conversations.history fails once at start: tried again, the missed message is a ticket."""
    database = store_location
    async with standin_for(config) as slack:
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            await bot.new_ticket("Would love a dark mode for the dashboard")
        missed = slack.add_message(INTAKE, user=CUSTOMER, text="I was charged twice this month")
        slack.fail_next("conversations.history", "internal_error", status=500)
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            await bot.desk.drain()
            history = bot.slack.calls_to("conversations.history")
            assert [call.http_status for call in history][:2] == [500, 200]
            ticket = await bot.store.ticket_at(INTAKE, missed["ts"])
            assert ticket is not None
            assert ticket.status == "routed"
