"""Critical first: tickets are decided as they arrive and posted from per-channel priority queues.

The strict stand-in allows one post per channel, then answers 429 until the test lets Slack
through; its rate limiter reads a clock that stands still, and the client keeps retrying after
each Retry-After (no retry here gives up), so a channel stays busy exactly as long as the test
wants, however slow the machine.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bot import app, render
from bot.sandbox.shell import AGENT, INTAKE, ONCALL
from bot.sandbox.slack_api import RecordedCall
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from tests.slack_harness import Harness, running_bot
from tests.timekeeping import ManualClock, until

ORDINARY = "The export to CSV fails with an error since yesterday, report {n}"
CRITICAL = "Production is down for all our users, nothing loads at all"
BILLING = "I was charged twice for my subscription this month"
WAITING = 5


@pytest.fixture(autouse=True)
def _rate_limits_never_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client retries a 429 for as long as the test runs: only the test frees a channel."""
    monkeypatch.setattr(app, "RATE_LIMIT_RETRIES", 100_000)


@pytest.fixture
def config() -> TriageConfig:
    """The packaged default config."""
    return load_config()


def _posted(bot: Harness) -> list[RecordedCall]:
    """Successful chat.postMessage calls, in the order Slack took them."""
    return [call for call in bot.slack.calls_to("chat.postMessage") if call.ok]


def _card_of(call: RecordedCall) -> int | None:
    """The ticket a top-level post is the card of, else None (a thread note or a DM)."""
    metadata: Any = call.args.get("metadata")
    if call.args.get("thread_ts") or not isinstance(metadata, dict):
        return None
    if metadata.get("event_type") != render.TICKET_METADATA:
        return None  # an on-call's DM, tagged with its page
    return int(metadata["event_payload"]["ticket_id"])


async def _decided(bot: Harness, ts: str) -> bool:
    ticket = await bot.store.ticket_at(INTAKE, ts)
    return ticket is not None and ticket.decision is not None


async def _busy_engineering(bot: Harness) -> list[int]:
    """Ordinary engineering tickets: the first posted, the next held by a 429, the rest queued."""
    stamps = [await bot.customer_says(ORDINARY.format(n=n)) for n in range(WAITING)]
    for ts in stamps:
        await until(lambda t=ts: _decided(bot, t), what="an ordinary ticket decided")
    await until(
        lambda: any(call.http_status == 429 for call in bot.slack.calls),
        what="engineering's next post held back",
    )
    ids = [await bot.ticket_for(ts) for ts in stamps]
    for ticket_id in ids:
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.decision is not None
        assert (ticket.decision.team, ticket.decision.priority) != ("engineering", "critical")
        assert ticket.decision.team == "engineering"
    return ids


async def test_a_critical_ticket_is_posted_before_the_ordinary_ones_queued_ahead_of_it(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Behind ordinary tickets in its channel, a critical one is posted, paged and DMed first."""
    async with running_bot(
        tmp_path,
        embedder,
        config=config,
        post_rate_per_second=1.0,
        post_burst=1,
        clock=ManualClock(),
    ) as bot:
        ordinary = await _busy_engineering(bot)
        ts = await bot.customer_says(CRITICAL)
        await until(lambda: _decided(bot, ts), what="the critical ticket decided")
        critical = await bot.ticket_for(ts)
        decided = await bot.store.ticket(critical)
        assert decided is not None
        assert decided.decision is not None
        assert (decided.decision.team, decided.decision.priority) == ("engineering", "critical")
        # Slack lets everything through: what was queued goes out in the queue's order.
        bot.slack.post_rate_per_second = math.inf
        await bot.desk.drain()
        calls = _posted(bot)
        cards = [ticket for call in calls if (ticket := _card_of(call)) is not None]
        assert sorted(cards) == sorted([*ordinary, critical])
        # The first went out at once; one more may have been in flight (held by the 429).
        assert cards.index(critical) <= 2
        waited = cards[cards.index(critical) + 1 :]
        assert len(waited) >= WAITING - 2
        assert set(waited) <= set(ordinary)
        # Its page note in the thread and the on-call's DM come before the ordinary posts too.
        page = next(
            i
            for i, call in enumerate(calls)
            if call.args.get("thread_ts") and f"#{critical} needs a human" in str(call.args)
        )
        dm = next(
            i
            for i, call in enumerate(calls)
            if call.args.get("channel") == f"D{ONCALL[1:]}" and f"#{critical}" in str(call.args)
        )
        # The post a 429 held was already sent and retries on its own: it may land before the
        # note. The ones still queued may not.
        held = {_card_of(call) for call in bot.slack.calls_to("chat.postMessage") if not call.ok}
        queued = [ticket for ticket in waited if ticket not in held]
        first_queued = next(i for i, call in enumerate(calls) if _card_of(call) == queued[0])
        assert page < first_queued
        assert dm < first_queued


async def test_a_busy_channel_does_not_delay_another_channels_post(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Engineering held back by 429s: a billing ticket that came later is posted meanwhile."""
    async with running_bot(
        tmp_path,
        embedder,
        config=config,
        post_rate_per_second=1.0,
        post_burst=1,
        clock=ManualClock(),
    ) as bot:
        ordinary = await _busy_engineering(bot)
        billing = await bot.ticket_for(await bot.customer_says(BILLING))
        await until(
            lambda: any(_card_of(call) == billing for call in _posted(bot)),
            what="the billing ticket posted while engineering is held back",
        )
        # Engineering has not moved: its clock stands still, only its first post went out.
        engineering = [call for call in _posted(bot) if _card_of(call) in ordinary]
        assert len(engineering) == 1
        bot.slack.post_rate_per_second = math.inf
        await bot.desk.drain()
        cards = [ticket for call in _posted(bot) if (ticket := _card_of(call)) is not None]
        assert sorted(cards) == sorted([*ordinary, billing])


async def test_what_changes_while_a_post_waits_in_its_queue_decides_where_it_goes(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Queued posts: an agent's move stands, an edit re-routes, a deletion posts nothing."""
    async with running_bot(
        tmp_path,
        embedder,
        config=config,
        post_rate_per_second=1.0,
        post_burst=1,
        clock=ManualClock(),
    ) as bot:
        ordinary = await _busy_engineering(bot)
        # Three of them still wait in engineering's queue: not posted, nor the one held by 429s.
        tried = {_card_of(call) for call in bot.slack.calls_to("chat.postMessage")}
        moved, edited, deleted = [ticket for ticket in ordinary if ticket not in tried][:3]
        answer = await bot.command(AGENT, f"reclassify #{moved} team=billing")
        assert f"Ticket #{moved} is now" in answer
        edited_ticket = await bot.store.ticket(edited)
        assert edited_ticket is not None
        billing_text = "I was charged twice for my subscription this month, please fix the invoice"
        assert (
            await bot.customer_edits(edited_ticket.ts, billing_text, previous=edited_ticket.text)
            == 200
        )
        deleted_ticket = await bot.store.ticket(deleted)
        assert deleted_ticket is not None
        event = bot.workspace.message_deleted(
            channel=INTAKE, ts=deleted_ticket.ts, previous_text=deleted_ticket.text
        )
        assert await bot.event(event) == 200
        bot.slack.post_rate_per_second = math.inf
        await bot.desk.drain()
        cards: dict[int, list[str]] = {}
        for call in _posted(bot):
            ticket = _card_of(call)
            if ticket is not None:
                cards.setdefault(ticket, []).append(str(call.response["channel"]))
        assert cards[moved] == [bot.channel_of("billing")]
        assert cards[edited] == [bot.channel_of("billing")]
        assert deleted not in cards
        for ticket_id in (moved, edited):
            assert [post.team for post in await bot.store.posts(ticket_id)] == ["billing"]
            routed = await bot.store.ticket(ticket_id)
            assert routed is not None
            assert routed.status == "routed"
        withdrawn = await bot.store.ticket(deleted)
        assert withdrawn is not None
        assert withdrawn.status == "withdrawn"
