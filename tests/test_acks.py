"""Acknowledged means stored, in bounded time; a start settles only what no live replica sends.

Against the strict Slack stand-in, and for the store items on SQLite and PostgreSQL: thread
replies, edits and deletions are stored before Slack's ack (refused, Slack delivers again); a
store held by another process answers within Slack's 3 s; a starting replica leaves another's
reply in flight alone; a DM page Slack took is found, not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.shell import AGENT, INTAKE
from routing.config import TriageConfig, load_config
from routing.desk.limits import SEND_STALE_SECONDS
from routing.embedding_cache import CachingEmbedder
from tests.claims import age_send_claims
from tests.slack_harness import running_bot, standin_for
from tests.timekeeping import until


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


def _reply_to_customer(args: dict[str, Any]) -> bool:
    return args.get("channel") == INTAKE and bool(args.get("thread_ts"))


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
