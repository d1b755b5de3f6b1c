"""Acknowledged means stored, in bounded time; a start settles only what no live replica sends.

Against the strict Slack stand-in, and for the store items on SQLite and PostgreSQL: thread
replies, edits and deletions are stored before Slack's ack (refused, Slack delivers again); a
store held by another process answers within Slack's 3 s; a starting replica leaves another's
reply in flight alone. A DM page Slack took but answered late is found in the bot's DM with
that person (conversations.open, then its history) and not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_client
from bot.compose import Serving, app_for
from bot.intake import customer_message
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL
from routing.config import TriageConfig, load_config
from routing.desk.limits import LEASE_SECONDS, SEND_STALE_SECONDS
from routing.embedding_cache import CachingEmbedder
from routing.errors import StoreUnavailableError
from routing.ports import TicketStore
from routing.records import utc_now
from routing.store.postgres import PostgresStore
from routing.store.retry import ACK_WRITE_SECONDS, with_retries
from routing.store.sqlite import SqliteStore
from tests.claims import age_follow_ups, age_send_claims, held_write_lock
from tests.slack_harness import Harness, running_bot, standin_for
from tests.timekeeping import HANG_GUARD_SECONDS, ManualClock, until

# The ack-path bound the tests' stores get: short, so a refusal comes at once. Their lock waits
# are otherwise as long as the hang guard: a write the bound does not cover hangs the test.
# Short, so the locked cases end quickly; long enough that a free store's write on a busy
# machine (a CI runner beside other jobs) still lands within it.
QUICK_ACK_SECONDS = 0.5
APP_TOKEN = "xapp-acks"  # the stand-in's app-level token for Socket Mode


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


def _reply_to_customer(args: dict[str, Any]) -> bool:
    return args.get("channel") == INTAKE and bool(args.get("thread_ts"))


async def _bounded_store(database: Path | str) -> TicketStore:
    """The store at database with a short ack bound, and lock waits otherwise unbounded."""
    if isinstance(database, Path):
        return await SqliteStore.open(
            database, busy_timeout=HANG_GUARD_SECONDS, ack_write_seconds=QUICK_ACK_SECONDS
        )
    return await PostgresStore.open(database, ack_write_seconds=QUICK_ACK_SECONDS)


@asynccontextmanager
async def _bot_as_run(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, database: Path | str
) -> AsyncIterator[Harness]:
    """The bot over HTTP with `triage run`'s ack (Bolt acks before listeners run)."""
    store = await _bounded_store(database)
    try:
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            store=store,
            process_before_response=False,
        ) as bot:
            yield bot
    finally:
        await store.close()


def _alerts(bot: Harness) -> list[str]:
    """The ops alerts (the bot's top-level, untagged messages in the fallback team's channel)."""
    channel = bot.channel_of(bot.config.fallback_team)
    return [
        str(message["text"])
        for message in bot.slack.messages(channel)
        if "metadata" not in message and "thread_ts" not in message
    ]


# --- the ack path is bounded ---------------------------------------------------------------------


def test_the_ack_bound_leaves_room_in_slacks_three_seconds() -> None:
    """ACK_WRITE_SECONDS, every attempt and pause included, leaves half a second of Slack's 3."""
    assert 0 < ACK_WRITE_SECONDS <= 2.5


async def test_no_retry_starts_that_would_pause_past_the_deadline() -> None:
    """An attempt that used up the time: refused after it, with no pause and no further try."""
    clock = ManualClock()
    attempts: list[float] = []

    async def slow_failure() -> None:
        attempts.append(clock())
        clock.advance(0.6)  # what a lock wait would take
        raise OSError("database is locked")

    with pytest.raises(StoreUnavailableError, match="database is locked"):
        await with_retries(
            slow_failure,
            transient=(OSError,),
            what="storing message",
            delays=(0.001, 0.001, 0.001),
            deadline=clock() + 1.0,
            clock=clock,
        )
    assert len(attempts) == 2  # at 0 and 0.6; a third would start past the deadline


class _ReadClock(ManualClock):
    """A ManualClock that counts its readings: a test waits until the store has read it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self) -> float:
        """The current reading, counted."""
        self.reads += 1
        return self.now


async def test_a_write_queued_behind_a_held_lock_is_refused_at_the_ack_deadline(
    tmp_path: Path,
) -> None:
    """SQLite: a ticket's write queued behind a write waiting out a lock is refused in 2 s."""
    path = tmp_path / "triage.sqlite3"
    clock = _ReadClock()
    store = await SqliteStore.open(path, busy_timeout=HANG_GUARD_SECONDS, clock=clock)
    try:
        ticket_id = await store.add_ticket(
            channel=INTAKE,
            ts="1700000000.000100",
            author=CUSTOMER,
            text="hi",
            received_at=utc_now(),
        )
        assert ticket_id is not None
        with held_write_lock(path):
            # An ordinary write (no ack bound): it waits out the lock on the one connection.
            ahead = asyncio.create_task(store.set_permalink(ticket_id, "https://x.slack.com/p1"))
            await asyncio.sleep(0)  # queued on the connection first
            before = clock.reads
            queued = asyncio.create_task(
                store.add_ticket(
                    channel=INTAKE,
                    ts="1700000001.000100",
                    author=CUSTOMER,
                    text="queued behind it",
                    received_at=utc_now(),
                )
            )
            await until(lambda: clock.reads > before, what="the ack write's deadline set")
            clock.advance(ACK_WRITE_SECONDS + 0.01)
            with pytest.raises(StoreUnavailableError, match="queued behind another write"):
                async with asyncio.timeout(HANG_GUARD_SECONDS):
                    await queued
            assert not ahead.done()  # refused while the write ahead still waits
        await ahead
        # Refused means not stored: the withdrawn statement never ran.
        assert await store.ticket_at(INTAKE, "1700000001.000100") is None
        assert (await store.ticket(ticket_id)) is not None
    finally:
        await store.close()


async def test_every_write_before_the_ack_gives_up_within_the_bound_when_locked(
    store_location: Path | str,
) -> None:
    """Another connection holds the write lock: a ticket, reply, edit or deletion is refused."""
    store = await _bounded_store(store_location)
    try:
        ticket_id = await store.add_ticket(
            channel=INTAKE,
            ts="1700000000.000100",
            author=CUSTOMER,
            text="hi",
            received_at=utc_now(),
        )
        assert ticket_id is not None
        assert await store.add_reply(ticket_id, ts="1700000001.000100", author=CUSTOMER, text="a")
        writes = {
            "ticket": store.add_ticket(
                channel=INTAKE,
                ts="1700000002.000100",
                author=CUSTOMER,
                text="x",
                received_at=utc_now(),
            ),
            "reply": store.add_reply(ticket_id, ts="1700000003.000100", author=CUSTOMER, text="b"),
            "reply edit": store.set_reply_text(ticket_id, ts="1700000001.000100", text="c"),
            "edit": store.set_text(ticket_id, "hello"),
            "deletion": store.mark_withdrawn(ticket_id),
        }
        with held_write_lock(store_location):
            for write in writes.values():
                with pytest.raises(StoreUnavailableError):
                    async with asyncio.timeout(HANG_GUARD_SECONDS):
                        await write
        # The lock gone, the same writes land.
        assert await store.add_reply(ticket_id, ts="1700000003.000100", author=CUSTOMER, text="b")
        assert await store.mark_withdrawn(ticket_id)
        ticket = await store.ticket(ticket_id)
        assert ticket is not None
        assert (ticket.status, ticket.text) == ("withdrawn", "hi")
    finally:
        await store.close()


async def test_replies_edits_and_deletions_are_stored_before_the_ack(
    tmp_path: Path,
    embedder: CachingEmbedder,
    config: TriageConfig,
    store_location: Path | str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Locked store: a reply, an edit, a deletion get 503, a line each, one alert; retries land."""
    async with _bot_as_run(tmp_path, embedder, config, store_location) as bot:
        first_ts = await bot.customer_says("I was charged twice this month")
        second_ts = await bot.customer_says("My invoice shows the wrong VAT")
        await bot.desk.drain()
        first, second = await bot.ticket_for(first_ts), await bot.ticket_for(second_ts)
        reply = bot.slack.add_message(
            INTAKE, user=CUSTOMER, text="and it happened again today", thread_ts=first_ts
        )
        events = {
            "reply": bot.workspace.message(
                channel=INTAKE,
                user=CUSTOMER,
                text=reply["text"],
                ts=reply["ts"],
                thread_ts=first_ts,
            ),
            "edit": bot.workspace.message_changed(
                channel=INTAKE,
                user=CUSTOMER,
                ts=first_ts,
                text="I was charged three times this month",
                previous_text="I was charged twice this month",
            ),
            "deletion": bot.workspace.message_deleted(
                channel=INTAKE, ts=second_ts, previous_text="My invoice shows the wrong VAT"
            ),
        }
        caplog.clear()
        with held_write_lock(store_location):
            for what, event in events.items():
                async with asyncio.timeout(HANG_GUARD_SECONDS):
                    assert await bot.event(event, event_id=f"Ev{what}") == 503, what
        refusals = [r for r in caplog.records if "not acknowledged" in r.getMessage()]
        assert len(refusals) == 3
        assert all(r.levelno == logging.ERROR and r.exc_info is None for r in refusals)
        assert await bot.store.replies(first) == []
        # Slack delivers each again with the same event id: never handled, so handled now.
        for what, event in events.items():
            statuses = []
            for retry in (1, 2, 3):  # Slack retries an unacknowledged event up to three times
                statuses.append(await bot.event(event, event_id=f"Ev{what}", retry=retry))
                if statuses[-1] == 200:
                    break
            assert statuses[-1] == 200, (what, statuses)
        # The moment Slack has the 200s, the store has what the customer did.
        (stored_reply,) = await bot.store.replies(first)
        assert stored_reply.text == "and it happened again today"
        edited, withdrawn = await bot.store.ticket(first), await bot.store.ticket(second)
        assert edited is not None
        assert withdrawn is not None
        assert edited.text == "I was charged three times this month"
        assert withdrawn.status == "withdrawn"
        await bot.desk.drain()
        (post,) = await bot.store.posts(first)
        await until(
            lambda: any(
                "happened again today" in note["text"]
                for note in bot.thread_of(post.channel, post.ts)
            ),
            what="the reply shown under the team post",
        )
        (withdrawn_post,) = await bot.store.posts(second, active_only=False)
        await until(
            lambda: any(
                call.args.get("ts") == withdrawn_post.ts
                for call in bot.slack.calls_to("chat.update")
            ),
            what="the withdrawn ticket's post redrawn",
        )

        async def post_withdrawn() -> bool:
            # Read again: the after-ack work marks the post as it redraws it.
            (post,) = await bot.store.posts(second, active_only=False)
            return post.status == "withdrawn"

        await until(post_withdrawn, what="the withdrawn ticket's post marked withdrawn")
        await until(lambda: len(_alerts(bot)) == 1, what="the ops alert posted")
        assert "Free the database" in _alerts(bot)[0]


async def test_socket_mode_acks_a_thread_reply_only_once_it_is_stored(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Socket Mode: a customer's thread reply is not acked while the store refuses it."""
    database = tmp_path / "triage.sqlite3"
    async with _bot_as_run(tmp_path, embedder, config, database) as bot:
        parent_ts = await bot.customer_says("I was charged twice this month")
        await bot.desk.drain()
        ticket_id = await bot.ticket_for(parent_ts)
        bot.slack.app_token = APP_TOKEN
        client = build_client(token=bot.slack.bot_token, base_url=bot.slack.base_url)
        app = app_for(bot.desk, bot.config, client, Serving())
        handler = AsyncSocketModeHandler(
            app, APP_TOKEN, web_client=AsyncWebClient(base_url=bot.slack.base_url)
        )
        unacked: list[str] = []
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt is untyped
            reply = bot.slack.add_message(
                INTAKE, user=CUSTOMER, text="still charged twice", thread_ts=parent_ts
            )
            envelope = bot.workspace.envelope(
                bot.workspace.message(
                    channel=INTAKE,
                    user=CUSTOMER,
                    text=reply["text"],
                    ts=reply["ts"],
                    thread_ts=parent_ts,
                )
            )
            with held_write_lock(database):
                try:
                    await bot.slack.send_envelope(
                        "events_api", envelope, connect_timeout=HANG_GUARD_SECONDS
                    )
                except TimeoutError:
                    unacked.append(reply["ts"])
            stored_before = await bot.store.replies(ticket_id)
            await bot.slack.send_envelope(
                "events_api",
                envelope,
                retry_attempt=1,
                retry_reason="timeout",
                connect_timeout=HANG_GUARD_SECONDS,
                ack_timeout=HANG_GUARD_SECONDS,
            )
            stored = await bot.store.replies(ticket_id)
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
        assert unacked == [reply["ts"]]
        assert stored_before == []
        assert [r.text for r in stored] == ["still charged twice"]


# --- a start settles only stale send claims -----------------------------------------------------


async def test_a_starting_replica_leaves_alone_a_reply_another_replica_is_sending(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, postgres_url: str
) -> None:
    """Replica A is mid-send when B starts on the same PostgreSQL: B neither resets it nor DMs."""
    async with (
        standin_for(config) as slack,
        running_bot(
            tmp_path, embedder, config=config, database=postgres_url, workspace=slack
        ) as first,
    ):
        ts = await first.customer_says("I was charged twice this month")
        await first.desk.drain()
        ticket_id = await first.ticket_for(ts)
        # Slack holds A's reply: A's send is in flight for as long as this test looks.
        slack.never_answer("chat.postMessage", when=_reply_to_customer)
        # The agent's approval, as the button runs it (cancelled below: no answer is waited).
        sending = asyncio.create_task(first.desk.approve(ticket_id, user=AGENT))
        try:
            await until(lambda: bool(slack.held), what="replica A's reply on its way")
            async with running_bot(
                tmp_path, embedder, config=config, database=postgres_url, workspace=slack
            ) as second:
                draft = await second.store.draft(ticket_id)
                assert draft is not None
                assert (draft.status, draft.decided_by) == ("sending", AGENT)
                assert slack.messages(f"D{AGENT[1:]}") == []
                assert second.slack.calls_to("conversations.replies") == []
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending


async def test_a_start_settles_a_send_claim_older_than_a_send_can_take(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """A claim SEND_STALE_SECONDS old whose sender is gone: the start makes it a draft again."""
    async with standin_for(config) as slack:
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            ticket_id = await bot.new_ticket("My invoice shows the wrong VAT")
            assert await bot.store.claim_draft(ticket_id, AGENT)
        age_send_claims(store_location, SEND_STALE_SECONDS + 5)
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            draft = await bot.store.draft(ticket_id)
            assert draft is not None
            assert draft.status == "pending"
            (told,) = [m["text"] for m in slack.messages(f"D{AGENT[1:]}")]
            assert f"ticket #{ticket_id}" in told


# --- a DM page Slack took but answered late -------------------------------------------------------


async def test_a_dm_page_answered_after_the_timeout_is_not_sent_twice(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Slack takes the on-call's DM but answers after the client's timeout: one DM, not two."""
    async with running_bot(
        tmp_path, embedder, config=config, client_timeout=5, retry_delays=(0.01, 0.01, 0.01)
    ) as bot:
        dm = f"D{ONCALL[1:]}"  # the bot's IM with the on-call, as conversations.open opens it
        bot.slack.answer_late("chat.postMessage", when=lambda args: args.get("channel") == dm)
        ts = await bot.customer_says("Our production API is down, all requests fail, urgent")
        await bot.desk.drain()
        ticket_id = await bot.ticket_for(ts)
        assert bot.slack.held
        dms = [m["text"] for m in bot.slack.messages(dm)]
        assert [f"ticket #{ticket_id}" in text for text in dms] == [True]
        assert [sent for _, sent in (await bot.store.direct_pages(ticket_id)).values()] == [True]


# --- a crash between the ack and the follow-up's work --------------------------------------------


async def test_a_reply_stored_before_a_crash_is_shown_and_rechecked_at_the_next_start(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """A reply stored before the ack, the process gone before its note: a later start posts it."""
    async with standin_for(config) as slack:
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            ticket_id = await bot.new_ticket("My invoice shows the wrong VAT")
            ticket = await bot.store.ticket(ticket_id)
            assert ticket is not None
            posted = slack.add_message(
                INTAKE,
                user=CUSTOMER,
                text="Still wrong, and it is urgent now: our production API is down",
                thread_ts=ticket.ts,
            )
            message = customer_message(INTAKE, posted)
            assert message is not None
            # As the listener stores it before Slack's ack; the process dies before the rest.
            assert await bot.desk.store_reply(message) is not None
            (post,) = await bot.store.posts(ticket_id)
        assert not any("replied" in m["text"] for m in slack.thread(post.channel, post.ts))
        age_follow_ups(store_location, LEASE_SECONDS + 5)
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            notes = [m["text"] for m in bot.thread_of(post.channel, post.ts)]
            (shown,) = [note for note in notes if "The customer replied in their thread" in note]
            assert "production API is down" in shown
            # The re-check ran: the reply's urgency reached the ticket, its on-call is paged.
            rechecked = await bot.store.ticket(ticket_id)
            assert rechecked is not None
            assert rechecked.escalation is not None
            assert rechecked.escalation.needs_human
            assert any("needs a human" in note for note in notes)
            later = utc_now() + timedelta(days=1)
            assert await bot.store.pending_follow_ups(stored_before=later) == []
