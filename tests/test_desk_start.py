"""A desk's start-up reads the time only through the Clock it is given (routing.ports.Clock).

The desk is the one the runner builds, over the in-memory store and a fake Outbox; its clock is
moved away from the machine's, so what it forgets, pages and takes over shows which clock it
read. The store stamps what it records (event ids, page claims) with the machine's time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk import Desk
from routing.desk.limits import EVENT_MEMORY, UNPAGED_LOOKBACK
from routing.models import Decision, Escalation, EscalationReason
from routing.records import utc_now
from routing.store import MemoryStore
from tests.fakes import FakeOutbox
from tests.timekeeping import DeskClock

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENT = "U0AGENT"
ONCALL = "U0ONCALL"
CUSTOMER = "U0CUSTOMER"
PAGE = "billing:critical"


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def slack() -> SlackConfig:
    return SlackConfig(
        intake_channels=(INTAKE,),
        teams={"billing": TeamChannelConfig(channel=BILLING, agents=(AGENT,), oncall=(ONCALL,))},
    )


async def _routed_critical(store: MemoryStore, ts: str, received_at: datetime) -> int:
    """A critical billing ticket, posted in its channel and routed, never paged."""
    ticket = await store.add_ticket(
        channel=INTAKE, ts=ts, author=CUSTOMER, text="the site is down", received_at=received_at
    )
    assert ticket is not None
    decision = Decision(
        category="billing",
        priority="critical",
        team="billing",
        sentiment="neutral",
        confidence=0.9,
        source="local",
    )
    reason = EscalationReason(code="critical_priority", detail="priority critical")
    escalation = Escalation(needs_human=True, reasons=(reason,))
    await store.record_triage(ticket, layers=(), decision=decision, escalation=escalation)
    await store.add_post(ticket, team="billing", channel=BILLING, ts=f"{ts[:-1]}9")
    await store.mark_routed(ticket)
    return ticket


async def _start_and_stop(
    config: TriageConfig, slack: SlackConfig, store: MemoryStore, outbox: FakeOutbox, now: datetime
) -> None:
    """Start a desk whose wall clock reads `now`, let it finish what it took up, stop it."""
    desk = Desk(
        config=config,
        slack=slack,
        pipeline=Pipeline(config=config, local=None),
        store=store,
        outbox=outbox,
        clock=DeskClock(wall=lambda: now),
    )
    try:
        await desk.start()
        await desk.drain()
    finally:
        await desk.stop()


async def test_a_start_a_week_later_by_its_clock_forgets_events_and_recovers_pages(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """By a clock 8 days ahead: event ids forgotten, the unsent page sent, a recent one paged."""
    store, outbox = MemoryStore(), FakeOutbox()
    later = utc_now() + EVENT_MEMORY + timedelta(days=1)
    assert await store.first_delivery("Ev0SEEN")
    claimed = await _routed_critical(store, "1700000000.000100", utc_now())
    assert await store.claim_page(claimed, team=PAGE, people=(ONCALL,), reasons=("critical",))
    # Received a minute before the desk's now: within the lookback by its clock.
    recent = await _routed_critical(store, "1700000000.000200", later - timedelta(minutes=1))
    # Within the lookback by the machine's clock, but not by the desk's: left alone.
    old = await _routed_critical(
        store, "1700000000.000300", later - UNPAGED_LOOKBACK - timedelta(hours=1)
    )
    await _start_and_stop(config, slack, store, outbox, later)
    assert await store.first_delivery("Ev0SEEN")  # forgotten: a delivery like a new one
    for ticket in (claimed, recent):
        page = await store.page(ticket, team=PAGE)
        assert page is not None
        assert page.sent_at is not None
    assert sorted(call["ticket_id"] for call in outbox.called("post_page")) == [claimed, recent]
    assert await store.pages(old) == []


async def test_a_start_an_hour_behind_by_its_clock_keeps_events_and_leaves_pages(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """By a clock an hour behind, the page claimed just now is no earlier claim: not taken over."""
    store, outbox = MemoryStore(), FakeOutbox()
    earlier = utc_now() - timedelta(hours=1)
    assert await store.first_delivery("Ev0SEEN")
    ticket = await _routed_critical(store, "1700000000.000100", utc_now())
    assert await store.claim_page(ticket, team=PAGE, people=(ONCALL,), reasons=("critical",))
    await _start_and_stop(config, slack, store, outbox, earlier)
    assert not await store.first_delivery("Ev0SEEN")  # still remembered: a retry
    page = await store.page(ticket, team=PAGE)
    assert page is not None
    assert page.sent_at is None
    assert outbox.called("post_page") == []
