"""Buttons carry a ticket's public id, checked against the post they sit on.

A recreated database hands out ticket numbers again, never public ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import render
from bot.sandbox.shell import AGENT, INTAKE
from bot.services import open_store
from routing.config import load_config
from routing.desk import STALE_POST
from routing.embedding_cache import CachingEmbedder
from tests.slack_harness import OUTSIDER, Harness, running_bot, standin_for

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
OTHER_CUSTOMER = "U0OTHERCUST"


async def test_a_public_id_is_random_kept_and_found_again(store_location: Path | str) -> None:
    """Each ticket's public id is made once and kept; it finds its ticket; others find nothing."""
    store = await open_store(store_location)
    try:
        first = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        second = await store.add_ticket(
            channel="C1", ts="1.2", author="U1", text="ho", received_at=NOW
        )
        assert first is not None
        assert second is not None
        key = await store.public_id(first)
        assert await store.public_id(first) == key
        assert await store.public_id(second) != key
        assert len(key) >= 20
        assert await store.ticket_by_public_id(key) == first
        assert await store.ticket_by_public_id(await store.public_id(second)) == second
        assert await store.ticket_by_public_id("1") is None
        assert await store.ticket_by_public_id("") is None
    finally:
        await store.close()
    # Read back after a restart: the same id.
    store = await open_store(store_location)
    try:
        assert await store.public_id(first) == key
    finally:
        await store.close()


async def test_two_stores_asking_at_once_get_the_same_public_id(
    store_location: Path | str,
) -> None:
    """Two processes on one database making a ticket's first public id agree on one."""
    stores = [await open_store(store_location) for _ in range(2)]
    try:
        ticket = await stores[0].add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        first, second = await asyncio.gather(*(store.public_id(ticket) for store in stores))
        assert first == second
        assert await stores[1].ticket_by_public_id(first) == ticket
    finally:
        for store in stores:
            await store.close()


async def test_a_recreated_database_gives_ticket_1_another_public_id(
    store_location: Path | str, tmp_path: Path
) -> None:
    """Ticket #1 of a new database has a public id the old database's ticket #1 did not."""
    ids = []
    for location in (store_location, tmp_path / "recreated.sqlite3"):
        store = await open_store(location)
        try:
            ticket = await store.add_ticket(
                channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
            )
            assert ticket == 1
            ids.append(await store.public_id(ticket))
            assert await store.ticket_by_public_id(ids[0]) == (1 if len(ids) == 1 else None)
        finally:
            await store.close()
    assert ids[0] != ids[1]


async def _old_post(bot: Harness) -> tuple[str, str, str, str]:
    """Ticket #1 posted by the first database: its post, its button value, the customer's ts."""
    ts = await bot.customer_says("I was charged twice this month")
    await bot.desk.drain()
    assert await bot.ticket_for(ts) == 1
    (post,) = await bot.store.posts(1)
    return post.channel, post.ts, bot.button_value(post.channel, post.ts), ts


async def test_a_button_from_a_recreated_database_is_refused_and_sends_nothing(
    tmp_path: Path, embedder: CachingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """Approve on a post of the old ticket #1 sends no reply to the new #1; the agent is told."""
    config = load_config()
    async with standin_for(config) as slack:
        slack.add_user(OTHER_CUSTOMER, "other customer")
        async with running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=tmp_path / "old.db"
        ) as old:
            channel, post_ts, value, first_ts = await _old_post(old)
        # The database is gone; the bot starts on a new one, and another customer writes.
        async with running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=tmp_path / "new.db"
        ) as new:
            second_ts = await new.customer_says(
                "I was charged twice for my subscription", user=OTHER_CUSTOMER
            )
            await new.desk.drain()
            assert await new.ticket_for(second_ts) == 1
            (new_post,) = await new.store.posts(1)
            assert (new_post.channel, new_post.ts) != (channel, post_ts)
            # The old post's own value, and the bare number an older version put there.
            for pressed in (value, "1"):
                for action in (render.APPROVE_ACTION, render.ESCALATE_ACTION):
                    caplog.clear()
                    before = len(slack.responses)
                    with caplog.at_level(logging.WARNING):
                        status = await new.form(
                            new.workspace.block_action(
                                user=AGENT,
                                action_id=action,
                                value=pressed,
                                channel=channel,
                                message_ts=post_ts,
                                trigger_id=slack.new_trigger_id(),
                            )
                        )
                    assert status == 200
                    (answer,) = slack.responses[before:]
                    assert answer["user"] == AGENT
                    assert answer["response_type"] == "ephemeral"
                    assert answer["text"] == STALE_POST
                    (line,) = [r.getMessage() for r in caplog.records]
                    assert "no ticket's here" in line
                    assert post_ts in line
            # Nothing reached either customer, and the new ticket was not paged or changed.
            assert new.thread_of(INTAKE, second_ts) == []
            assert new.thread_of(INTAKE, first_ts) == []
            draft = await new.store.draft(1)
            assert draft is not None
            assert draft.status == "pending"
            assert "escalated" not in [entry.action for entry in await new.store.audit_log(1)]
            # The new post's own button still works.
            assert await new.press(AGENT, render.APPROVE_ACTION, 1) == 200
            (reply,) = new.thread_of(INTAKE, second_ts)
            assert reply["text"]


async def test_a_button_value_that_names_another_ticket_of_the_post_is_refused(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """A value naming ticket B on ticket A's post (forged or mixed up) does nothing to either."""
    async with running_bot(tmp_path, embedder, config=load_config()) as bot:
        first = await bot.new_ticket("I was charged twice this month")
        second = await bot.new_ticket("My invoice shows the wrong VAT number")
        (post,) = await bot.store.posts(first)
        (other,) = await bot.store.posts(second)
        status = await bot.form(
            bot.workspace.block_action(
                user=AGENT,
                action_id=render.APPROVE_ACTION,
                value=bot.button_value(other.channel, other.ts),
                channel=post.channel,
                message_ts=post.ts,
                trigger_id=bot.slack.new_trigger_id(),
            )
        )
        assert status == 200
        assert bot.slack.responses[-1]["text"] == STALE_POST
        for ticket_id in (first, second):
            draft = await bot.store.draft(ticket_id)
            assert draft is not None
            assert draft.status == "pending"


async def test_an_edit_window_from_a_recreated_database_sends_nothing(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """The Edit modal opened on the old #1 and submitted after the database changed: refused."""
    config = load_config()
    async with standin_for(config) as slack:
        slack.add_user(OTHER_CUSTOMER, "other customer")
        async with running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=tmp_path / "old.db"
        ) as old:
            await _old_post(old)
            assert await old.press(AGENT, render.EDIT_ACTION, 1) == 200
            view = slack.views[-1]
            assert json.loads(view["private_metadata"])["ticket_id"] == 1
        async with running_bot(
            tmp_path, embedder, config=config, workspace=slack, database=tmp_path / "new.db"
        ) as new:
            second_ts = await new.customer_says("Why was I billed twice?", user=OTHER_CUSTOMER)
            await new.desk.drain()
            assert await new.ticket_for(second_ts) == 1
            assert await new.submit_edit(AGENT, view, "Sorry, refunded.") == 200
            assert new.thread_of(INTAKE, second_ts) == []
            dms = [
                str(call.args["text"])
                for call in slack.calls_to("chat.postMessage")
                if call.ok and call.args.get("channel") == AGENT
            ]
            assert dms[-1] == STALE_POST


async def test_buttons_carry_the_public_id_not_the_number(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """Every button on a post carries the ticket's public id; an outsider's press learns nothing."""
    async with running_bot(tmp_path, embedder, config=load_config()) as bot:
        ticket_id = await bot.new_ticket("I was charged twice this month")
        (post,) = await bot.store.posts(ticket_id)
        value = bot.button_value(post.channel, post.ts)
        assert value == await bot.store.public_id(ticket_id)
        assert value != str(ticket_id)
        assert await bot.press(OUTSIDER, render.APPROVE_ACTION, ticket_id) == 200
        assert bot.slack.responses[-1]["text"] == "Only agents can approve the reply."
        # A stale post answers an outsider the same: they cannot tell current from stale.
        await bot.form(
            bot.workspace.block_action(
                user=OUTSIDER,
                action_id=render.APPROVE_ACTION,
                value="no-such-id",
                channel=post.channel,
                message_ts="1.000001",
                trigger_id=bot.slack.new_trigger_id(),
            )
        )
        assert bot.slack.responses[-1]["text"] == "Only agents can approve the reply."
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert bot.thread_of(INTAKE, ticket.ts) == []
