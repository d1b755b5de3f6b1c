"""Reports on its own: the in-memory store, a fake of the agents, and the desk's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routing.config import TriageConfig, load_config
from routing.desk.reports import Reports
from routing.desk.types import NotAllowedError
from routing.store import MemoryStore
from tests.fakes import FakeAgents

INTAKE = "C0INTAKE"
AGENT = "U0AGENT"
CUSTOMER = "U0CUSTOMER"
DAY = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


async def _tickets_on_both_sides_of_midnight(store: MemoryStore) -> None:
    """Two tickets on 30 November (UTC), one on 1 December."""
    for n, received_at in enumerate((DAY, DAY + timedelta(minutes=10), DAY + timedelta(hours=1))):
        ticket = await store.add_ticket(
            channel=INTAKE,
            ts=f"17000000{n:02d}.000100",
            author=CUSTOMER,
            text="refund please",
            received_at=received_at,
        )
        assert ticket is not None


async def test_stats_count_the_day_the_desks_clock_reads(config: TriageConfig) -> None:
    """`/triage stats` counts the UTC day of the desk's clock, not the machine's."""
    store = MemoryStore()
    await _tickets_on_both_sides_of_midnight(store)
    agents = FakeAgents(store, frozenset({AGENT}))
    before_midnight = Reports(config=config, store=store, agents=agents, now=lambda: DAY)
    after_midnight = Reports(
        config=config, store=store, agents=agents, now=lambda: DAY + timedelta(hours=2)
    )
    assert (await before_midnight.stats(user=AGENT)).splitlines()[0] == (
        "Today (2026-11-30, UTC): 2 tickets"
    )
    assert (await after_midnight.stats(user=AGENT)).splitlines()[0] == (
        "Today (2026-12-01, UTC): 1 ticket"
    )
    later = Reports(config=config, store=store, agents=agents, now=lambda: DAY + timedelta(days=2))
    assert await later.stats(user=AGENT) == "No tickets today (2026-12-02, UTC)."


async def test_stats_are_for_agents_only(config: TriageConfig) -> None:
    """Someone who is no agent is refused the figures."""
    store = MemoryStore()
    reports = Reports(
        config=config, store=store, agents=FakeAgents(store, frozenset({AGENT})), now=lambda: DAY
    )
    with pytest.raises(NotAllowedError):
        await reports.stats(user=CUSTOMER)
