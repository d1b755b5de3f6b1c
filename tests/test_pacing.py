"""Posts spaced per channel across replicas, with the most urgent tickets' posts never waiting.

The pacers read a wall clock that stands still and their sleeps are only recorded, so the waits
asserted are the slots the store handed out, however slow the machine.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sandbox.shell import ONCALL
from routing.config import load_config
from routing.desk import PostPacer
from routing.desk.pacing import pace_posts_here
from routing.embedding_cache import CachingEmbedder
from routing.store.memory import MemoryStore
from tests.slack_harness import Harness, running_bot
from tests.timekeeping import DeskClock, until

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CRITICAL = "Production is down for all our users, nothing loads at all"
ORDINARY = "The export to CSV fails with an error since yesterday, report {n}"


class _Wall:
    """A wall clock that stands still; a pacer's sleep is recorded, not slept."""

    def __init__(self) -> None:
        self.now = START
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def _pacer(store: MemoryStore, wall: _Wall, spacing: float = 1.0) -> PostPacer:
    return PostPacer(
        store=store,
        clock=DeskClock(wall=lambda: wall.now),
        spacing_seconds=spacing,
        sleep=wall.sleep,
    )


async def _paced(pacer: PostPacer, channel: str, times: int) -> None:
    """A paced poster's turns: its task waits for each slot."""
    pace_posts_here()
    for _ in range(times):
        await pacer.take_turn(channel)


async def test_replicas_paced_posts_in_one_channel_wait_for_slots_a_spacing_apart() -> None:
    """Three replicas' paced posts in one channel are spaced one second apart, not at once."""
    shared = MemoryStore()
    wall = _Wall()
    replicas = [_pacer(shared.sibling(), wall) for _ in range(3)]
    await asyncio.gather(*(asyncio.create_task(_paced(r, "C1", 1)) for r in replicas))
    # The first slot is now; the others were handed one and two seconds later.
    assert sorted(wall.waits) == [1.0, 2.0]
    # Another channel is not held up by this one.
    await asyncio.create_task(_paced(replicas[0], "C2", 1))
    assert sorted(wall.waits) == [1.0, 2.0]


async def test_an_unpaced_post_goes_at_once_and_pushes_the_paced_ones_back() -> None:
    """An urgent post takes a slot without waiting; the next paced post waits one slot more."""
    store, wall = MemoryStore(), _Wall()
    pacer = _pacer(store, wall)
    await asyncio.create_task(_paced(pacer, "C1", 1))  # slot now
    await pacer.take_turn("C1")  # not in a paced task: no wait, but its slot is taken
    assert wall.waits == []
    await asyncio.create_task(_paced(pacer, "C1", 1))
    assert wall.waits == [2.0]


async def test_no_spacing_and_a_failing_store_post_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Spacing 0 never asks the store; a store that fails lets the post go, said in one line."""

    class _Refusing(MemoryStore):
        async def take_post_slot(self, channel: str, *, now: datetime, spacing: float) -> datetime:
            raise OSError("database is locked")

    wall = _Wall()
    await asyncio.create_task(_paced(_pacer(_Refusing(), wall, spacing=0.0), "C1", 3))
    with caplog.at_level(logging.WARNING, logger="routing.desk.pacing"):
        await asyncio.create_task(_paced(_pacer(_Refusing(), wall), "C1", 1))
    assert wall.waits == []
    assert [r.getMessage() for r in caplog.records] == [
        "could not take a post slot in C1: posting unpaced"
    ]


async def test_a_critical_ticket_is_posted_and_paged_while_the_paced_lane_waits(
    tmp_path: Path, embedder: CachingEmbedder
) -> None:
    """A paced channel whose next slot is an hour away: a critical ticket is posted and DMed."""
    async with running_bot(
        tmp_path, embedder, config=load_config(), post_spacing_seconds=3600.0
    ) as bot:
        engineering = bot.slack_config.teams["engineering"].channel
        first = await bot.new_ticket(ORDINARY.format(n=1))
        waiting = await bot.ticket_for(await bot.customer_says(ORDINARY.format(n=2)))
        critical = await bot.ticket_for(await bot.customer_says(CRITICAL))

        def shown() -> str:
            return " ".join(str(m.get("text")) for m in bot.slack.messages(engineering))

        await until(lambda: f"ticket #{critical} " in shown(), what="the critical card")
        await until(lambda: bool(_dms(bot, critical)), what="the critical ticket's DM")
        assert f"ticket #{first} " in shown()
        # The second ordinary ticket still waits for its slot, an hour from now.
        assert f"ticket #{waiting} " not in shown()


def _dms(bot: Harness, ticket_id: int) -> list[str]:
    return [m["text"] for m in bot.slack.messages(f"D{ONCALL[1:]}") if f"#{ticket_id}" in m["text"]]
