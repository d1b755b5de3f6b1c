"""An agent quicker than the store: approving a post whose ts is not stored yet.

Slack has the bot's team post (and shows its buttons) as soon as chat.postMessage answers; the
store write of the post's ts comes after, on this replica or another. An approval in between,
by the emoji or the button, is applied once the post is stored, or at once: never lost, never
sent twice, and never by someone who is no agent. The store write is held here by a gate, so
no test races a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import render
from bot.sandbox.shell import AGENT, INTAKE
from bot.services import open_store
from routing.config import load_config
from routing.desk import STALE_POST
from routing.desk.actions import HELD_REACTION_WINDOW
from routing.embedding_cache import CachingEmbedder
from routing.ports import TicketStore
from tests.slack_harness import OUTSIDER, Harness, running_bot, standin_for

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
TEXT = "I was charged twice this month"


@dataclass
class Gate:
    """Holds the store write of every post's ts until opened; says when one is waiting."""

    store: TicketStore
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def add_post(self, ticket_id: int, *, team: str, channel: str, ts: str) -> None:
        """The store write of a post, once the gate is open."""
        self.waiting.set()
        await self.opened.wait()
        await type(self.store).add_post(self.store, ticket_id, team=team, channel=channel, ts=ts)


@asynccontextmanager
async def gated_bot(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Harness, Gate]]:
    async with running_bot(
        tmp_path, embedder, config=load_config(), database=store_location
    ) as bot:
        gate = Gate(bot.store)
        monkeypatch.setattr(bot.store, "add_post", gate.add_post)
        yield bot, gate


async def _unrecorded_post(bot: Harness, gate: Gate) -> tuple[str, str, str]:
    """A customer writes; the bot's post is in Slack, its ts not stored: (ts, channel, post ts)."""
    ts = await bot.customer_says(TEXT)
    await asyncio.wait_for(gate.waiting.wait(), timeout=60)
    channel = bot.channel_of("billing")
    (message,) = bot.posts_in("billing")
    assert await bot.store.post_at(channel, message["ts"]) is None
    return ts, channel, str(message["ts"])


def _buttons(bot: Harness, channel: str, ts: str) -> set[str]:
    (message,) = [m for m in bot.slack.messages(channel) if m["ts"] == ts]
    return {
        str(element.get("action_id"))
        for block in message.get("blocks", [])
        for element in block.get("elements", [])
        if element.get("type") == "button"
    }


async def _react(bot: Harness, user: str, channel: str, ts: str, emoji: str) -> None:
    event = bot.workspace.reaction_added(
        user=user, reaction=emoji, channel=channel, ts=ts, item_user="U0BOT"
    )
    assert await bot.event(event) == 200


async def _press(bot: Harness, user: str, channel: str, ts: str, action: str) -> dict[str, Any]:
    """Press a button on the post; the answer the person was shown, if any."""
    before = len(bot.slack.responses)
    status = await bot.form(
        bot.workspace.block_action(
            user=user,
            action_id=action,
            value=bot.button_value(channel, ts),
            channel=channel,
            message_ts=ts,
            trigger_id=bot.slack.new_trigger_id(),
        )
    )
    assert status == 200
    answers = bot.slack.responses[before:]
    return answers[0] if answers else {}


async def test_an_approve_emoji_before_the_post_is_stored_sends_the_reply_once(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The emoji is held while the post's ts is not stored, and applied once it is."""
    async with gated_bot(tmp_path, embedder, store_location, monkeypatch) as (bot, gate):
        customer_ts, channel, post_ts = await _unrecorded_post(bot, gate)
        await _react(bot, AGENT, channel, post_ts, "white_check_mark")
        assert bot.thread_of(INTAKE, customer_ts) == []  # nothing can be sent yet
        gate.opened.set()
        await bot.desk.drain()
        (reply,) = bot.thread_of(INTAKE, customer_ts)
        assert reply["text"]
        (post,) = await bot.store.posts(1)
        draft = await bot.store.draft(post.ticket_id)
        assert draft is not None
        assert draft.status == "sent"
        assert draft.decided_by == AGENT
        assert render.APPROVE_ACTION not in _buttons(bot, channel, post_ts)
        # The emoji again, now on a stored post: nothing more is sent.
        await _react(bot, AGENT, channel, post_ts, "white_check_mark")
        assert len(bot.thread_of(INTAKE, customer_ts)) == 1


async def test_approve_pressed_before_the_post_is_stored_is_sent_and_the_post_redrawn(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The button names its ticket: answered at once, not refused as a stale post."""
    async with gated_bot(tmp_path, embedder, store_location, monkeypatch) as (bot, gate):
        customer_ts, channel, post_ts = await _unrecorded_post(bot, gate)
        answer = await _press(bot, AGENT, channel, post_ts, render.APPROVE_ACTION)
        assert answer.get("text") != STALE_POST
        (reply,) = bot.thread_of(INTAKE, customer_ts)
        # The emoji too, and the button again: still one reply.
        await _react(bot, AGENT, channel, post_ts, "white_check_mark")
        await _press(bot, AGENT, channel, post_ts, render.APPROVE_ACTION)
        gate.opened.set()
        await bot.desk.drain()
        assert bot.thread_of(INTAKE, customer_ts) == [reply]
        # The post, drawn before the approval, is redrawn once stored: it shows the send.
        assert render.APPROVE_ACTION not in _buttons(bot, channel, post_ts)


async def test_reclassify_before_the_post_is_stored_asks_to_try_again(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Buttons that act on the ticket's posts wait for the post: the agent is told so."""
    async with gated_bot(tmp_path, embedder, store_location, monkeypatch) as (bot, gate):
        customer_ts, channel, post_ts = await _unrecorded_post(bot, gate)
        for action in (render.RECLASSIFY_ACTION, render.ESCALATE_ACTION):
            answer = await _press(bot, AGENT, channel, post_ts, action)
            assert "still being recorded" in answer["text"]
        gate.opened.set()
        await bot.desk.drain()
        assert bot.thread_of(INTAKE, customer_ts) == []


async def test_no_one_but_an_agent_approves_a_post_not_stored_yet(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outsider's emoji, held like any, is refused once applied; their button at once."""
    async with gated_bot(tmp_path, embedder, store_location, monkeypatch) as (bot, gate):
        customer_ts, channel, post_ts = await _unrecorded_post(bot, gate)
        await _react(bot, OUTSIDER, channel, post_ts, "white_check_mark")
        answer = await _press(bot, OUTSIDER, channel, post_ts, render.APPROVE_ACTION)
        assert "agent" in answer["text"]
        gate.opened.set()
        await bot.desk.drain()
        assert bot.thread_of(INTAKE, customer_ts) == []
        draft = await bot.store.draft(1)
        assert draft is not None
        assert draft.status == "pending"
        told = [e for e in bot.slack.ephemerals if e["user"] == OUTSIDER]
        assert told
        assert all("agent" in e["text"] for e in told)


async def test_an_emoji_on_another_message_is_let_go_after_a_while(
    tmp_path: Path, embedder: CachingEmbedder, store_location: Path | str
) -> None:
    """An approve emoji on a team channel's chat message sends nothing, now or later."""
    async with running_bot(
        tmp_path, embedder, config=load_config(), database=store_location
    ) as bot:
        channel = bot.channel_of("billing")
        await _react(bot, AGENT, channel, "1700000000.999999", "white_check_mark")
        ticket = await bot.new_ticket(TEXT)
        draft = await bot.store.draft(ticket)
        assert draft is not None
        assert draft.status == "pending"
        assert bot.slack.ephemerals == []


async def test_an_emoji_another_replica_received_is_applied_by_the_one_storing_the_post(
    tmp_path: Path,
    embedder: CachingEmbedder,
    store_location: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two replicas on one database: B gets the emoji, A is still storing its post's ts."""
    config = load_config()
    async with (
        standin_for(config) as slack,
        running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=store_location
        ) as first,
        running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=store_location
        ) as second,
    ):
        gate = Gate(first.store)
        monkeypatch.setattr(first.store, "add_post", gate.add_post)
        customer_ts, channel, post_ts = await _unrecorded_post(first, gate)
        await _react(second, AGENT, channel, post_ts, "white_check_mark")
        await second.desk.drain()
        assert first.thread_of(INTAKE, customer_ts) == []
        gate.opened.set()
        await first.desk.drain()
        (reply,) = first.thread_of(INTAKE, customer_ts)
        assert reply["text"]
        draft = await second.store.draft(1)
        assert draft is not None
        assert draft.status == "sent"


# --- the store's part, on each backend ------------------------------------------------------


async def test_a_held_emoji_is_taken_once_oldest_first(store_location: Path | str) -> None:
    """hold, take (each held emoji goes to one taker, even racing), forget the old ones."""
    stores = [await open_store(store_location) for _ in range(2)]
    first, second = stores
    try:
        await first.hold_reaction("C1", "1.1", user="U1", reaction="x", at=NOW)
        await first.hold_reaction("C1", "1.1", user="U2", reaction="ok", at=NOW)
        await first.hold_reaction("C1", "1.2", user="U3", reaction="ok", at=NOW)
        await first.hold_reaction(
            "C2", "1.1", user="U4", reaction="ok", at=NOW - HELD_REACTION_WINDOW - timedelta(1)
        )
        taken = await asyncio.gather(*(s.take_held_reactions("C1", "1.1") for s in stores * 3))
        got = [held for each in taken for held in each]
        assert [(held.user, held.reaction) for held in got] == [("U1", "x"), ("U2", "ok")]
        assert [held.at for held in got] == [NOW, NOW]
        assert await second.take_held_reactions("C1", "1.1") == []
        assert await second.forget_held_reactions(before=NOW - HELD_REACTION_WINDOW) == 1
        assert await second.take_held_reactions("C2", "1.1") == []
        (left,) = await second.take_held_reactions("C1", "1.2")
        assert (left.channel, left.ts, left.user) == ("C1", "1.2", "U3")
    finally:
        for store in stores:
            await store.close()
